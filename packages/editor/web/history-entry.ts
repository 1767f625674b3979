/**
 * What a history entry says about its run, read from its `status.messages` (ComfyUI's format): how it ended
 * (success, error or interrupted: the server writes `status_str: "error"` for both failures and interrupts, so
 * the message list decides), why (the failing node and its message, or the interrupt's reason), and how long it
 * took (from `execution_start` to the last status message). No DOM here: queue-panel.ts shows it.
 */

export type StatusMessage = [string, Record<string, unknown>];

export interface HistoryEntry {
  prompt: [number, string, Record<string, unknown>, { extra_pnginfo?: { workflow?: unknown }; client_id?: string }, string[]];
  // Written out rather than api.ts's ImageRef: this module stays free of DOM code, so Node tests can import it.
  outputs: Record<string, { images?: { filename: string; subfolder?: string; type?: string }[] }>;
  status?: { status_str?: string; completed?: boolean; messages?: StatusMessage[] };
}

export type RunOutcome = 'success' | 'error' | 'interrupted' | 'unknown';

export interface RunSummary {
  outcome: RunOutcome;
  /** One line saying why it failed or stopped ("KSampler #3: ..."), when the messages say. */
  reason?: string;
  /** The node it failed or stopped at. */
  node?: { id: string; type?: string };
  /** Milliseconds from execution_start to the last status message, when both carry timestamps. */
  durationMs?: number;
}

export function summarizeRun(entry: HistoryEntry): RunSummary {
  const messages = entry.status?.messages ?? [];
  const find = (type: string) => messages.find(([t]) => t === type)?.[1];
  const times = messages.map(([, data]) => data?.timestamp).filter((t): t is number => typeof t === 'number');
  const start = find('execution_start')?.timestamp;
  const durationMs = typeof start === 'number' && times.length ? Math.max(...times) - start : undefined;
  const timing = durationMs !== undefined && durationMs >= 0 ? { durationMs } : {};
  const nodeOf = (data: Record<string, unknown>) =>
    data.node_id !== null && data.node_id !== undefined && data.node_id !== ''
      ? { node: { id: String(data.node_id), ...(typeof data.node_type === 'string' && data.node_type ? { type: data.node_type } : {}) } }
      : {};

  const error = find('execution_error');
  if (error) {
    const where = nodeOf(error);
    const type = typeof error.exception_type === 'string' && error.exception_type ? `${error.exception_type}: ` : '';
    const message = typeof error.exception_message === 'string' ? error.exception_message : 'failed';
    return { outcome: 'error', reason: `${label(where.node)}${type}${message}`, ...where, ...timing };
  }
  const interrupted = find('execution_interrupted');
  if (interrupted) {
    const where = nodeOf(interrupted);
    const said = [interrupted.message, interrupted.reason].find((v): v is string => typeof v === 'string' && v !== '');
    const reason = `${where.node ? `at ${label(where.node).replace(/: $/, '')}` : ''}${where.node && said ? ': ' : ''}${said ?? ''}`;
    return { outcome: 'interrupted', ...(reason ? { reason } : {}), ...where, ...timing };
  }
  if (entry.status?.status_str === 'success' || entry.status?.completed) return { outcome: 'success', ...timing };
  if (entry.status?.status_str === 'error') return { outcome: 'error', ...timing };
  return { outcome: 'unknown', ...timing };
}

function label(node: { id: string; type?: string } | undefined): string {
  return node ? `${node.type ?? 'node'} #${node.id}: ` : '';
}

/** "0.8 s", "12 s", "3 min 5 s". */
export function formatDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
