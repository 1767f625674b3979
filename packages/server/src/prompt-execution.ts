/**
 * One queued prompt through a runner: its execution events turned into ComfyUI's websocket messages for the
 * prompt's client (progress_state, previews, the all-cached note, errors without server paths), the log line of
 * how it ended, and the history entry to record. The same for the single-machine worker (worker.ts) and the
 * workers of a Redis deployment (redis/worker-process.ts): only where the messages go differs (a MessageSink).
 */
import type { ExecutionEvent, Logger, RunResult } from '@gategraph/core';
import { SERVER_STOPPED_MESSAGE } from './queue.ts';
import type { HistoryEntry, QueueItem, StatusMessage } from './store.ts';
import { withoutServerPaths } from './client-text.ts';
import { PromptProgressState } from './progress-state.ts';
import type { PromptRunner } from './prompt-runner.ts';

/** Events kept in the history entry's `status.messages`, as ComfyUI keeps them. */
const STATUS_EVENTS = new Set(['execution_start', 'execution_cached', 'execution_success', 'execution_error', 'execution_interrupted']);

/** Said when a prompt ran nothing because every node's output was cached ("why did my prompt do nothing"). */
export const ALL_CACHED_NOTE =
  'Nothing was executed: every node of this prompt had the same inputs as in an earlier run, so all outputs came from the cache. Change an input (e.g. the seed) to generate again, or POST /free {"free_memory": true} to empty the cache.';

/** Where a prompt's websocket messages go: the local hub (ws-hub.ts), or Redis to the API instances. */
export interface MessageSink {
  send(clientId: string | undefined, type: string, data: unknown): void;
  /** A binary image frame; `mustDeliver` (a node's result, not a preview) forbids dropping it for a slow client. */
  sendPreview(clientId: string | undefined, format: 'JPEG' | 'PNG', image: Uint8Array, mustDeliver?: boolean): void;
}

/** What one worker is doing right now. */
export interface RunningPrompt {
  item: QueueItem;
  clientId: string | undefined;
  /** The node executing now (null between nodes). */
  node: string | null;
  /** The node the editor shows it on (the expanding node for a node an expansion made). */
  displayNode: string | null;
  controller: AbortController;
  /** Set when the prompt is interrupted because its process is stopping. */
  stopping?: boolean;
  /** What the interrupted message says then (default: the server stopped). */
  stoppingMessage?: string;
}

/** The prompt's client id (ComfyUI's `client_id` in extra_data), if any. */
export function clientIdOf(item: QueueItem): string | undefined {
  return typeof item.extraData.client_id === 'string' ? item.extraData.client_id : undefined;
}

/** Runs `current.item` to its end (success, error, interruption) and returns its history entry. */
export async function executePrompt(current: RunningPrompt, runner: PromptRunner, sink: MessageSink, logger: Logger): Promise<HistoryEntry> {
  const { item, clientId } = current;
  const messages: StatusMessage[] = [];
  let executedCount = 0;
  const started = performance.now();

  const progress = new PromptProgressState(item.promptId);
  const onEvent = (event: ExecutionEvent) => {
    if (event.type === 'node_started' || event.type === 'node_finished') {
      // For progress_state only: not a ComfyUI message.
      const state = progress.apply(event);
      if (state) sink.send(clientId, 'progress_state', state);
      return;
    }
    if (event.type === 'preview') {
      sink.sendPreview(clientId, event.data.image.format, event.data.image.data, event.data.image.result === true);
      return;
    }
    let data: Record<string, unknown> = event.data;
    if (event.type === 'executing') {
      current.node = event.data.node;
      current.displayNode = event.data.display_node;
      if (event.data.node !== null) executedCount++;
    }
    if (event.type === 'execution_success' && executedCount === 0) data = { ...data, note: ALL_CACHED_NOTE };
    if (event.type === 'execution_error') data = forClients(data);
    if (event.type === 'execution_interrupted' && current.stopping) {
      data = { ...data, reason: 'server_stopped', message: current.stoppingMessage ?? SERVER_STOPPED_MESSAGE };
    }
    // A blocker's message is sent as an error event but does not fail the prompt; ComfyUI keeps it out of
    // the history's status too.
    const blockedNote = event.type === 'execution_error' && event.data.exception_type === 'ExecutionBlocked';
    if (STATUS_EVENTS.has(event.type) && !blockedNote) messages.push([event.type, data]);
    sink.send(clientId, event.type, data);
    // After the event it follows from, to the prompt's client only (as ComfyUI's WebUIProgressHandler).
    const state = progress.apply(event);
    if (state) sink.send(clientId, 'progress_state', state);
  };

  let result: RunResult;
  try {
    result = await runner.run(
      { prompt: item.prompt, promptId: item.promptId, outputs: item.outputs, extraData: item.extraData },
      { signal: current.controller.signal, onEvent },
    );
  } catch (error) {
    // The runner rejects only on misuse (a second concurrent run) or when the execution thread cannot start;
    // report it like a failed prompt.
    const message = (error as Error).message;
    const data = {
      prompt_id: item.promptId,
      node_id: null,
      node_type: null,
      executed: [],
      exception_message: message,
      exception_type: (error as Error).name,
      traceback: [],
      current_inputs: {},
      current_outputs: {},
      timestamp: Date.now(),
    };
    messages.push(['execution_error', data]);
    sink.send(clientId, 'execution_error', data);
    result = { status: 'error', outputs: {}, executed: [], cached: [] };
  }

  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (result.status === 'success' && result.executed.length === 0) {
    logger.info(`Prompt ${item.promptId}: all ${result.cached.length} node(s) were cached, nothing executed (${seconds}s)`);
  } else if (result.status === 'success') {
    logger.info(`Prompt ${item.promptId} executed in ${seconds}s (${result.executed.length} run, ${result.cached.length} cached)`);
  } else if (result.status === 'interrupted') {
    logger.info(`Prompt ${item.promptId} interrupted after ${seconds}s`);
  } else {
    const at = result.error ? ` at node ${result.error.node_id} (${result.error.node_type}): ${result.error.message}` : '';
    logger.warn(`Prompt ${item.promptId} failed${at}`);
  }
  return historyEntry(item, result, messages);
}

function historyEntry(item: QueueItem, result: RunResult, messages: StatusMessage[]): HistoryEntry {
  const meta: HistoryEntry['meta'] = {};
  for (const nodeId of Object.keys(result.outputs)) {
    // An expanded output node is shown on the node that made it (the executor says which).
    meta[nodeId] = result.meta?.[nodeId] ?? { node_id: nodeId, display_node: nodeId, parent_node: null, real_node_id: nodeId };
  }
  return {
    prompt: [item.number, item.promptId, item.prompt, item.extraData, item.outputs],
    outputs: result.outputs,
    status: {
      status_str: result.status === 'success' ? 'success' : 'error',
      completed: result.status === 'success',
      messages,
    },
    meta,
  };
}

/** An execution_error's data as clients get it (websocket and history): no server paths in it. */
function forClients(data: Record<string, unknown>): Record<string, unknown> {
  const out = { ...data };
  if (typeof out.exception_message === 'string') out.exception_message = withoutServerPaths(out.exception_message);
  if (Array.isArray(out.traceback)) out.traceback = out.traceback.map((line) => (typeof line === 'string' ? withoutServerPaths(line) : line));
  return out;
}
