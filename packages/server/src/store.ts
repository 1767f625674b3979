/**
 * Durable queue and history: an append-only JSON-lines log of state changes plus a periodic snapshot.
 *
 * Files in the data folder:
 * - `snapshot.jsonl`: line 1 `{"version":1,"generation":g,...}`, then one record per pending item / history
 *   entry. Replaced atomically (write `snapshot.jsonl.tmp`, fsync, rename, fsync the folder).
 * - `log-<g>.jsonl`: the records committed since snapshot generation g, one per line, fsynced before the
 *   change is acknowledged (a queued prompt is on disk before POST /prompt answers).
 *
 * Only the log named by the snapshot's generation is replayed, so a crash between writing a new snapshot and
 * deleting the old log cannot apply a change twice. A new generation is past every log ever seen in the
 * folder, and its log is created exclusively, so an old file is never continued. A torn last line (crash
 * mid-write) is ignored; any other damaged record is skipped and reported with its file and line. A missing
 * snapshot (with a log that has records) or a missing log stops the start with a message saying what is lost
 * and what to do, never a quiet loss. Files are read line by line, never as one string, and history entries
 * keep at most HISTORY_EXTRA_DATA_LIMIT of `extra_data`, so neither the files nor memory grow with it.
 * Items that were running when the process died come back as `crashed`: the queue reports them as interrupted.
 *
 * `applyRecord` is the one definition of what each record means; the queue uses it for live changes too, so
 * replay and live state cannot drift apart.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt, Logger, UiOutput } from '@gategraph/core';
import { lockDataDir, type DataDirLock } from './data-lock.ts';
import { forEachLine } from './line-reader.ts';
import { parseHeader, parseRecord, parseSnapshotEntry, StoreDamagedError } from './store-records.ts';

export { boundedHistoryEntry, HISTORY_EXTRA_DATA_LIMIT } from './store-records.ts';
export { StoreDamagedError };

/** A queued prompt. */
export interface QueueItem {
  /** ComfyUI's queue number: lower runs first. */
  number: number;
  promptId: string;
  prompt: ApiPrompt;
  /** `extra_data` of the request, with `client_id` set when the request had one. */
  extraData: Record<string, unknown>;
  /** Output node ids to run. */
  outputs: string[];
  /** Arrival order; breaks ties between equal numbers (first come, first served). */
  seq: number;
}

/** A status message as ComfyUI stores it in history: `[event type, data]`. */
export type StatusMessage = [string, Record<string, unknown>];

/** ComfyUI's history entry for one prompt. */
export interface HistoryEntry {
  /** The queue item as ComfyUI's 5-tuple: `[number, prompt_id, prompt, extra_data, outputs]`. */
  prompt: [number, string, ApiPrompt, Record<string, unknown>, string[]];
  outputs: Record<string, UiOutput>;
  status: { status_str: 'success' | 'error'; completed: boolean; messages: StatusMessage[] };
  meta: Record<string, { node_id: string; display_node: string; parent_node: string | null; real_node_id: string }>;
}

export type StoreRecord =
  | { op: 'enqueue'; item: QueueItem }
  | { op: 'start'; id: string }
  | { op: 'finish'; id: string; entry: HistoryEntry }
  | { op: 'remove'; ids: string[] }
  | { op: 'history_delete'; ids: string[] }
  | { op: 'history_clear' };

export interface StoreState {
  pending: Map<string, QueueItem>;
  running: Map<string, QueueItem>;
  /** In completion order (Map keeps insertion order), oldest first. */
  history: Map<string, HistoryEntry>;
  /** Bytes of each history entry's record, and their sum: what the history's byte budget counts. */
  historySizes: Map<string, number>;
  historyBytes: number;
  /** Next ComfyUI queue number handed out to a prompt without an explicit one. */
  counter: number;
  /** Next arrival sequence number. */
  seq: number;
}

export function emptyState(): StoreState {
  return { pending: new Map(), running: new Map(), history: new Map(), historySizes: new Map(), historyBytes: 0, counter: 0, seq: 0 };
}

/**
 * How much history is kept: ComfyUI's count (10,000 entries), and a byte budget, since entries carry the
 * client's workflow (`extra_pnginfo`) and 10,000 of them can add up to gigabytes in memory, in the store's
 * files and in every `GET /history`. The oldest entries go first when either is exceeded; the newest entry
 * is always kept.
 */
export interface HistoryLimits {
  maxEntries: number;
  maxBytes: number;
}

/** Adds (or moves to the newest place) a history entry of `bytes` serialized bytes, then trims to the limits. */
function keepHistoryEntry(state: StoreState, id: string, entry: HistoryEntry, bytes: number, limits: HistoryLimits): void {
  dropHistoryEntry(state, id); // re-insert at the end: completion order
  state.history.set(id, entry);
  state.historySizes.set(id, bytes);
  state.historyBytes += bytes;
  while (state.history.size > limits.maxEntries || (state.historyBytes > limits.maxBytes && state.history.size > 1)) {
    dropHistoryEntry(state, state.history.keys().next().value as string);
  }
}

/**
 * A history entry's size: the bytes of its record's line less the line's framing, so an entry counts the same
 * whether it is read from the log (a `finish` record) or from the snapshot.
 */
function historyEntryBytes(lineBytes: number, id: string, framing: 'finish' | 'snapshot'): number {
  const prefix = framing === 'finish' ? '{"op":"finish","id":' : '{"kind":"history","id":';
  return Math.max(0, lineBytes - Buffer.byteLength(`${prefix}${JSON.stringify(id)},"entry":}`));
}

/**
 * The size of an entry from its record's line. An entry whose extra data was cut (when recorded, or when read
 * back from a file written before entries were bounded) is measured itself: its line may be larger.
 */
function entryBytesOf(lineBytes: number, id: string, framing: 'finish' | 'snapshot', entry: HistoryEntry): number {
  const extra = entry.prompt[3];
  if (extra && typeof extra === 'object' && Object.hasOwn(extra, 'gategraph_dropped')) return Buffer.byteLength(JSON.stringify(entry));
  return historyEntryBytes(lineBytes, id, framing);
}

function dropHistoryEntry(state: StoreState, id: string): void {
  if (!state.history.delete(id)) return;
  state.historyBytes -= state.historySizes.get(id) ?? 0;
  state.historySizes.delete(id);
}

/**
 * Applies one record to the state. Unknown ids are ignored, so replaying a consistent log never throws.
 * `recordBytes` is the size of the record's line as written (without its newline); for a `finish`, what the
 * entry in it adds to the history's byte budget follows from it.
 */
export function applyRecord(state: StoreState, record: StoreRecord, limits: HistoryLimits, recordBytes: number): void {
  switch (record.op) {
    case 'enqueue':
      state.pending.set(record.item.promptId, record.item);
      state.seq = Math.max(state.seq, record.item.seq + 1);
      // Every prompt advances the counter, as ComfyUI's does; an explicit number does not move it, so a
      // prompt queued with a large number stays behind the prompts queued after it.
      state.counter += 1;
      return;
    case 'start': {
      const item = state.pending.get(record.id);
      if (!item) return;
      state.pending.delete(record.id);
      state.running.set(record.id, item);
      return;
    }
    case 'finish':
      state.running.delete(record.id);
      state.pending.delete(record.id);
      keepHistoryEntry(state, record.id, record.entry, entryBytesOf(recordBytes, record.id, 'finish', record.entry), limits);
      return;
    case 'remove':
      for (const id of record.ids) state.pending.delete(id);
      return;
    case 'history_delete':
      for (const id of record.ids) dropHistoryEntry(state, id);
      return;
    case 'history_clear':
      state.history.clear();
      state.historySizes.clear();
      state.historyBytes = 0;
      return;
  }
}

export interface StoreOptions {
  dir: string;
  history: HistoryLimits;
  logger: Logger;
  /** Records appended before the log is folded into a new snapshot. */
  compactEvery?: number;
  /** fsync after each commit (default true). Only tests of throughput may turn it off. */
  fsync?: boolean;
}

const SNAPSHOT = 'snapshot.jsonl';
const logName = (generation: number) => `log-${generation}.jsonl`;

export interface OpenedStore {
  store: DurableStore;
  state: StoreState;
  /** Items that were running when the previous process stopped without finishing them. */
  crashed: QueueItem[];
}

export class DurableStore {
  readonly #dir: string;
  readonly #history: HistoryLimits;
  readonly #logger: Logger;
  readonly #compactEvery: number;
  readonly #fsync: boolean;
  #generation = 0;
  /** The highest log generation present in the folder (or written by this process). */
  #highestGeneration = 0;
  #fd: number | undefined;
  #appended = 0;

  readonly #lock: DataDirLock;

  private constructor(options: StoreOptions, lock: DataDirLock) {
    this.#lock = lock;
    this.#dir = options.dir;
    this.#history = options.history;
    this.#logger = options.logger;
    this.#compactEvery = options.compactEvery ?? 2000;
    this.#fsync = options.fsync ?? true;
  }

  get historyLimits(): HistoryLimits {
    return this.#history;
  }

  /**
   * Reads the snapshot and its log, returns the state and the items that were running, then writes a fresh
   * snapshot (so the next start does not replay the same log again) and opens a new log.
   * The running items stay in `state.running`: the caller records how they ended, then they leave it.
   */
  static open(options: StoreOptions): OpenedStore {
    mkdirSync(options.dir, { recursive: true });
    // Before anything is read or written: a second server on this folder must not touch the first one's files.
    const lock = lockDataDir(options.dir);
    try {
      const store = new DurableStore(options, lock);
      const state = store.#replay();
      const crashed = [...state.running.values()];
      store.#writeSnapshot(state);
      return { store, state, crashed };
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  /**
   * Appends a record durably and returns the bytes of its line (without the newline). Call `applyRecord` after it: a change is visible
   * only once it is on disk.
   */
  commit(record: StoreRecord): number {
    if (this.#fd === undefined) throw new Error('The queue store is closed');
    const bytes = writeAll(this.#fd, JSON.stringify(record) + '\n') - 1;
    if (this.#fsync) fdatasyncSync(this.#fd);
    this.#appended++;
    return bytes;
  }

  /** True when the log is long enough that the caller should call `compact` with the current state. */
  get wantsCompaction(): boolean {
    return this.#appended >= this.#compactEvery;
  }

  /** Folds the log into a new snapshot. */
  compact(state: StoreState): void {
    this.#writeSnapshot(state);
  }

  /** Flushes and closes the log. Running items stay recorded as running: a restart reports them. */
  close(): void {
    if (this.#fd === undefined) return;
    try {
      fsyncSync(this.#fd);
    } finally {
      closeSync(this.#fd);
      this.#fd = undefined;
      this.#lock.release();
    }
  }

  #replay(): StoreState {
    const state = emptyState();
    const snapshotPath = join(this.#dir, SNAPSHOT);
    const logs = logGenerations(this.#dir);
    this.#highestGeneration = Math.max(0, ...logs.map((l) => l.generation));
    if (!existsSync(snapshotPath)) {
      // A new folder has neither; a first start that crashed leaves an empty log. A log with records but no
      // snapshot means the snapshot was deleted or moved: replaying the log alone would drop everything before
      // it, so the start is refused rather than losing it quietly.
      const withRecords = logs.filter((l) => l.bytes > 0);
      if (withRecords.length) {
        throw new StoreDamagedError(
          `${snapshotPath} is missing, but ${withRecords.map((l) => join(this.#dir, l.name)).join(', ')} holds changes made after it. ` +
            'Put the snapshot back (from a backup), or move this folder away to start with an empty queue and history.',
        );
      }
      return state;
    }

    let header: ReturnType<typeof parseHeader> | undefined;
    forEachLine(
      snapshotPath,
      (text, line, info) => {
        if (line === 1) {
          header = parseHeader(text, `${snapshotPath}:1`);
          return;
        }
        if (text === undefined || text.trim() === '') {
          if (text === undefined) this.#damaged(snapshotPath, line, `a record of ${info.bytes} bytes, over the limit`);
          return;
        }
        const entry = parseSnapshotEntry(text);
        if (typeof entry === 'string') return this.#damaged(snapshotPath, line, entry);
        if (entry.kind === 'history') keepHistoryEntry(state, entry.id, entry.entry, entryBytesOf(info.bytes, entry.id, 'snapshot', entry.entry), this.#history);
        else state[entry.kind].set(entry.item.promptId, entry.item);
      },
      MAX_RECORD_BYTES,
    );
    if (!header) throw new StoreDamagedError(`${snapshotPath} is empty; move this folder away to start with an empty queue and history`);
    this.#generation = header.generation;
    state.counter = typeof header.counter === 'number' ? header.counter : 0;
    state.seq = typeof header.seq === 'number' ? header.seq : 0;

    const logPath = join(this.#dir, logName(this.#generation));
    if (!existsSync(logPath)) {
      // Every snapshot's log is created before the snapshot that names it, so a missing one was deleted: the
      // changes since the snapshot are gone. Say so instead of starting as if nothing happened.
      throw new StoreDamagedError(
        `${logPath} is missing: it holds the changes made after ${snapshotPath} was written (prompts queued and finished since). ` +
          `Put it back (from a backup); or, to go on with the snapshot alone and lose those changes, create it empty (touch ${logPath}).`,
      );
    }
    forEachLine(
      logPath,
      (text, line, info) => {
        if (text !== undefined && text.trim() === '') return;
        const record = text === undefined ? `a record of ${info.bytes} bytes, over the limit` : parseRecord(text);
        if (typeof record !== 'string') return void applyRecord(state, record, this.#history, info.bytes);
        // Only the last line can be torn by a crash; anything else is damage worth a louder message.
        if (info.lastLine && record.startsWith('not JSON')) this.#logger.warn(`${logPath}:${line}: skipping a record cut short when the server stopped`);
        else this.#damaged(logPath, line, record);
      },
      MAX_RECORD_BYTES,
    );
    return state;
  }

  /** A damaged record is skipped (the others still count) and reported with where it is. */
  #damaged(path: string, line: number, problem: string): void {
    this.#logger.error(`${path}:${line}: skipping a damaged record (${problem})`);
  }

  #writeSnapshot(state: StoreState): void {
    // Past every generation ever seen in this folder, so a new log never continues an old file.
    const next = Math.max(this.#generation, this.#highestGeneration) + 1;
    this.#highestGeneration = next;
    const tmp = join(this.#dir, `${SNAPSHOT}.tmp`);
    const fd = openSync(tmp, 'w');
    try {
      writeAll(fd, JSON.stringify({ version: 1, generation: next, counter: state.counter, seq: state.seq }) + '\n');
      // Written line by line: a long history is never built as one giant string.
      for (const item of state.running.values()) writeAll(fd, JSON.stringify({ kind: 'running', item }) + '\n');
      for (const item of state.pending.values()) writeAll(fd, JSON.stringify({ kind: 'pending', item }) + '\n');
      for (const [id, entry] of state.history) writeAll(fd, JSON.stringify({ kind: 'history', id, entry }) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // The new log exists (empty) before the snapshot that names it, so a crash in between loses nothing.
    const newLog = openSync(join(this.#dir, logName(next)), 'wx');
    fsyncSync(newLog);
    renameSync(tmp, join(this.#dir, SNAPSHOT));
    syncDirectory(this.#dir);
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = newLog;
    this.#generation = next;
    this.#appended = 0;
    for (const name of readdirSync(this.#dir)) {
      if (/^log-\d+\.jsonl$/.test(name) && name !== logName(next)) rmSync(join(this.#dir, name), { force: true });
    }
  }
}

/** `writeSync` may write less than asked (a full disk, a signal); a record must be written whole or fail. */
function writeAll(fd: number, text: string): number {
  const data = Buffer.from(text);
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
  return data.length;
}

/** Makes a rename durable: on Linux the directory entry is only on disk once the directory is fsynced. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}


/** One record (a log line or a snapshot line) is never bigger than a request body can make it, with room. */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

interface LogFile {
  name: string;
  generation: number;
  bytes: number;
}

function logGenerations(dir: string): LogFile[] {
  return readdirSync(dir)
    .map((name) => /^log-(\d+)\.jsonl$/.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ name: match[0], generation: Number(match[1]), bytes: statSync(join(dir, match[0])).size }));
}

