/**
 * Reading the store's records back: each line of the snapshot and the log is parsed and its shape checked, so
 * a damaged record is named (by store.ts, with its file and line) and skipped instead of breaking the state.
 * Also what a history entry keeps: entries are bounded once, when the queue records them and when an older
 * file's records are read back.
 */
import type { HistoryEntry, QueueItem, StoreRecord } from './store.ts';

/** Thrown when the store's files cannot be replayed safely; the message names the file and what to do. */
export class StoreDamagedError extends Error {
  override name = 'StoreDamagedError';
}

/**
 * What a history entry keeps of `extra_data`: all of it up to this size. Clients read `client_id` and, to
 * reload a prompt's graph, `extra_pnginfo.workflow`; a few prompts with huge extra data (a 20 MiB workflow)
 * must not make the history, its log and every `GET /history` that large. The prompt itself ran with all of it
 * (its images carry the whole workflow).
 */
export const HISTORY_EXTRA_DATA_LIMIT = 1024 * 1024;

/** The entry with its `extra_data` cut to HISTORY_EXTRA_DATA_LIMIT: keys that do not fit are replaced by a note. */
export function boundedHistoryEntry(entry: HistoryEntry): HistoryEntry {
  const extra = entry.prompt[3];
  if (!extra || typeof extra !== 'object' || JSON.stringify(extra).length <= HISTORY_EXTRA_DATA_LIMIT) return entry;
  const kept: Record<string, unknown> = {};
  const dropped: string[] = [];
  let size = 2;
  // Small keys first (client_id), then the rest while they fit.
  const sized = Object.entries(extra).map(([key, value]) => ({ key, value, bytes: JSON.stringify(value ?? null).length + key.length + 4 }));
  for (const { key, value, bytes } of sized.sort((a, b) => a.bytes - b.bytes)) {
    if (size + bytes <= HISTORY_EXTRA_DATA_LIMIT) {
      kept[key] = value;
      size += bytes;
    } else dropped.push(key);
  }
  kept.gategraph_dropped = { keys: dropped.sort(), reason: `extra_data over ${HISTORY_EXTRA_DATA_LIMIT} bytes is not kept in history` };
  const [number, id, prompt, , outputs] = entry.prompt;
  return { ...entry, prompt: [number, id, prompt, kept, outputs] };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    return new SyntaxError((error as Error).message);
  }
}

export function parseHeader(text: string | undefined, where: string): { version: number; generation: number; counter?: unknown; seq?: unknown } {
  const header = text === undefined ? undefined : parseJson(text);
  if (!isObject(header) || header instanceof SyntaxError) {
    throw new StoreDamagedError(`${where}: the snapshot's header is unreadable; move this folder away to start with an empty queue and history`);
  }
  if (header.version !== 1) {
    throw new StoreDamagedError(`${where}: unknown store version ${JSON.stringify(header.version)}; move the folder away to start empty`);
  }
  if (typeof header.generation !== 'number' || !Number.isInteger(header.generation) || header.generation < 0) {
    throw new StoreDamagedError(`${where}: the snapshot's header has no generation; move this folder away to start with an empty queue and history`);
  }
  return header as { version: number; generation: number };
}

/** Why a value is not a QueueItem, or undefined when it is one. */
function queueItemProblem(item: unknown): string | undefined {
  if (!isObject(item)) return 'the item is not an object';
  if (typeof item.promptId !== 'string' || item.promptId === '') return 'the item has no prompt id';
  if (typeof item.number !== 'number' || typeof item.seq !== 'number') return `item ${item.promptId} has no number or seq`;
  if (!isObject(item.prompt) || !isObject(item.extraData) || !isStringList(item.outputs)) return `item ${item.promptId} is missing its prompt, extra data or outputs`;
  return undefined;
}

function historyEntryProblem(entry: unknown): string | undefined {
  if (!isObject(entry)) return 'the history entry is not an object';
  if (!Array.isArray(entry.prompt) || entry.prompt.length !== 5 || !isObject(entry.outputs) || !isObject(entry.status)) {
    return 'the history entry lacks its prompt, outputs or status';
  }
  return undefined;
}

/** A snapshot line, or why it is not one. */
export function parseSnapshotEntry(text: string):
  | { kind: 'pending' | 'running'; item: QueueItem }
  | { kind: 'history'; id: string; entry: HistoryEntry }
  | string {
  const value = parseJson(text);
  if (value instanceof SyntaxError) return `not JSON: ${value.message}`;
  if (!isObject(value)) return 'not an object';
  if (value.kind === 'history') {
    if (typeof value.id !== 'string') return 'a history record without an id';
    return historyEntryProblem(value.entry) ?? { kind: 'history', id: value.id, entry: boundedHistoryEntry(value.entry as unknown as HistoryEntry) };
  }
  if (value.kind === 'pending' || value.kind === 'running') {
    return queueItemProblem(value.item) ?? { kind: value.kind, item: value.item as unknown as QueueItem };
  }
  return `unknown kind ${JSON.stringify(value.kind)}`;
}

/** A log line, or why it is not a record. */
export function parseRecord(text: string): StoreRecord | string {
  const value = parseJson(text);
  if (value instanceof SyntaxError) return `not JSON: ${value.message}`;
  if (!isObject(value)) return 'not an object';
  switch (value.op) {
    case 'enqueue':
      return queueItemProblem(value.item) ?? (value as unknown as StoreRecord);
    case 'start':
      return typeof value.id === 'string' ? (value as unknown as StoreRecord) : 'a start record without an id';
    case 'finish':
      if (typeof value.id !== 'string') return 'a finish record without an id';
      return historyEntryProblem(value.entry) ?? { op: 'finish', id: value.id, entry: boundedHistoryEntry(value.entry as unknown as HistoryEntry) };
    case 'remove':
    case 'history_delete':
      return isStringList(value.ids) ? (value as unknown as StoreRecord) : `a ${value.op} record without a list of ids`;
    case 'history_clear':
      return value as unknown as StoreRecord;
    default:
      return `unknown operation ${JSON.stringify(value.op)}`;
  }
}
