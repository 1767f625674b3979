/**
 * The prompt queue and its history, durable through `store.ts`.
 *
 * Order follows ComfyUI: the lowest `number` runs first. A prompt without a number gets the next value of a
 * counter; `front: true` gets a number below everything pending (ComfyUI uses a negative number for this);
 * equal numbers run in arrival order. Every change is written to the store before it becomes visible, and
 * `change` is emitted so the server can broadcast the queue status.
 */
import { EventEmitter } from 'node:events';
import { setOwn, type ApiPrompt, type Logger } from '@gategraph/core';
import { applyRecord, boundedHistoryEntry, DurableStore, type HistoryEntry, type QueueItem, type StoreRecord, type StoreState } from './store.ts';

export interface EnqueueRequest {
  promptId: string;
  prompt: ApiPrompt;
  extraData: Record<string, unknown>;
  outputs: string[];
  /** Explicit queue number (ComfyUI's `number`). */
  number?: number;
  /** Queue before everything pending (ComfyUI's `front`). */
  front?: boolean;
}

/** A prompt id that already names a queued, running or finished prompt. */
export class DuplicatePromptIdError extends Error {
  override name = 'DuplicatePromptIdError';
  constructor(
    readonly promptId: string,
    where: 'queue' | 'history',
  ) {
    super(
      `prompt_id "${promptId}" is already used by a prompt in the ${where}; send a new unique id (e.g. a UUID) or leave prompt_id out`,
    );
  }
}

export interface QueueOptions {
  dataDir: string;
  /** History entries kept (ComfyUI's 10,000), oldest dropped first. */
  maxHistory: number;
  /** Bytes of history kept (the entries as stored), oldest dropped first; default DEFAULT_MAX_HISTORY_BYTES. */
  maxHistoryBytes?: number;
  logger: Logger;
  /** See StoreOptions.fsync. */
  fsync?: boolean;
}

/**
 * The history's default byte budget. Entries hold the client's whole workflow (ComfyUI's frontend sends it in
 * `extra_pnginfo`), so 10,000 of them can reach gigabytes; this keeps the history's memory, the snapshot and a
 * full `GET /history` bounded (V8 parses JSON into objects a few times the size of the text).
 */
export const DEFAULT_MAX_HISTORY_BYTES = 256 * 1024 * 1024;

/** The message recorded for a prompt that was running when the server stopped. */
export const SERVER_STOPPED_MESSAGE =
  'The server stopped while this prompt was running; it did not finish. Queue it again to run it.';

export class PromptQueue extends EventEmitter<{ change: [] }> {
  readonly #store: DurableStore;
  readonly #state: StoreState;
  readonly #waiters: Array<(item: QueueItem | undefined) => void> = [];
  #closed = false;
  #stopped = false;

  private constructor(store: DurableStore, state: StoreState) {
    super();
    this.#store = store;
    this.#state = state;
  }

  /**
   * Opens the store in `dataDir`. Prompts that were running when the previous process died are moved to the
   * history as interrupted (status `error`, an `execution_interrupted` message saying the server stopped);
   * pending prompts stay pending.
   */
  static open(options: QueueOptions): { queue: PromptQueue; recovered: string[] } {
    const { store, state, crashed } = DurableStore.open({
      dir: options.dataDir,
      history: { maxEntries: options.maxHistory, maxBytes: options.maxHistoryBytes ?? DEFAULT_MAX_HISTORY_BYTES },
      logger: options.logger,
      ...(options.fsync !== undefined ? { fsync: options.fsync } : {}),
    });
    const queue = new PromptQueue(store, state);
    for (const item of crashed) {
      queue.#commit({ op: 'finish', id: item.promptId, entry: interruptedByStopEntry(item) });
      options.logger.warn(`Prompt ${item.promptId} was running when the server stopped; recorded in history as interrupted`);
    }
    return { queue, recovered: crashed.map((item) => item.promptId) };
  }

  /** True when the id names a pending, running or finished prompt. */
  has(promptId: string): boolean {
    return this.#state.pending.has(promptId) || this.#state.running.has(promptId) || this.#state.history.has(promptId);
  }

  /** Adds a prompt durably. Throws DuplicatePromptIdError when the id is taken. */
  enqueue(request: EnqueueRequest): QueueItem {
    if (this.#state.pending.has(request.promptId) || this.#state.running.has(request.promptId)) {
      throw new DuplicatePromptIdError(request.promptId, 'queue');
    }
    if (this.#state.history.has(request.promptId)) throw new DuplicatePromptIdError(request.promptId, 'history');
    let number = request.number ?? this.#state.counter;
    if (request.front) {
      let lowest = 0;
      for (const pending of this.#state.pending.values()) lowest = Math.min(lowest, pending.number);
      number = Math.min(-this.#state.counter, lowest - 1);
    }
    const item: QueueItem = {
      number,
      promptId: request.promptId,
      prompt: request.prompt,
      extraData: request.extraData,
      outputs: request.outputs,
      seq: this.#state.seq,
    };
    this.#commit({ op: 'enqueue', item });
    this.#wakeWorker();
    return item;
  }

  /** Pending items in the order they will run. */
  pending(): QueueItem[] {
    return [...this.#state.pending.values()].sort(byRunOrder);
  }

  running(): QueueItem[] {
    return [...this.#state.running.values()];
  }

  /** ComfyUI's `queue_remaining`: pending plus running. */
  remaining(): number {
    return this.#state.pending.size + this.#state.running.size;
  }

  /**
   * Waits for the next pending prompt and marks it running. Resolves `undefined` once the queue is closed.
   * Used by the workers; each call takes a different item.
   */
  take(): Promise<QueueItem | undefined> {
    if (this.#stopped) return Promise.resolve(undefined);
    const next = this.#takeNow();
    if (next) return Promise.resolve(next);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Records how a running prompt ended; it leaves the queue and enters the history. */
  finish(promptId: string, entry: HistoryEntry): void {
    this.#commit({ op: 'finish', id: promptId, entry });
  }

  /** Removes pending prompts (running ones are interrupted, not deleted). Returns how many were removed. */
  deletePending(ids: string[]): number {
    const found = ids.filter((id) => this.#state.pending.has(id));
    if (found.length) this.#commit({ op: 'remove', ids: found });
    return found.length;
  }

  clearPending(): number {
    return this.deletePending([...this.#state.pending.keys()]);
  }

  /** ComfyUI's `GET /history` selection: all, the last `maxItems`, or `maxItems` from index `offset`, oldest first. */
  historyEntries(maxItems?: number, offset = -1): Array<[string, HistoryEntry]> {
    const entries = [...this.#state.history];
    const start = offset < 0 ? (maxItems !== undefined ? Math.max(0, entries.length - maxItems) : 0) : offset;
    const end = maxItems !== undefined ? start + maxItems : entries.length;
    return entries.slice(start, end);
  }

  /** `historyEntries` as ComfyUI's object, keyed by prompt id. */
  history(maxItems?: number, offset = -1): Record<string, HistoryEntry> {
    const out: Record<string, HistoryEntry> = {};
    for (const [id, entry] of this.historyEntries(maxItems, offset)) setOwn(out, id, entry);
    return out;
  }

  /** Bytes the history takes as stored (what `maxHistoryBytes` bounds). */
  historyBytes(): number {
    return this.#state.historyBytes;
  }

  historyEntry(promptId: string): HistoryEntry | undefined {
    return this.#state.history.get(promptId);
  }

  deleteHistory(ids: string[]): void {
    const found = ids.filter((id) => this.#state.history.has(id));
    if (found.length) this.#commit({ op: 'history_delete', ids: found });
  }

  clearHistory(): void {
    if (this.#state.history.size) this.#commit({ op: 'history_clear' });
  }

  /** Stops handing out work: waiting and later `take` calls resolve `undefined`. Changes are still recorded. */
  stopTaking(): void {
    this.#stopped = true;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  /** Closes the store (after the workers finished). Items still running stay recorded as running. */
  close(): void {
    if (this.#closed) return;
    this.stopTaking();
    this.#closed = true;
    this.#store.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #takeNow(): QueueItem | undefined {
    const next = this.pending()[0];
    if (!next) return undefined;
    this.#commit({ op: 'start', id: next.promptId });
    return next;
  }

  #wakeWorker(): void {
    while (!this.#stopped && this.#waiters.length && this.#state.pending.size) {
      const waiter = this.#waiters.shift()!;
      waiter(this.#takeNow());
    }
  }

  #commit(change: StoreRecord): void {
    if (this.#closed) throw new Error('The queue is closed (the server is shutting down)');
    // A history entry is bounded before it is written, so the log and the state hold the same small entry.
    const record = change.op === 'finish' ? { ...change, entry: boundedHistoryEntry(change.entry) } : change;
    const bytes = this.#store.commit(record);
    applyRecord(this.#state, record, this.#store.historyLimits, bytes);
    if (this.#store.wantsCompaction) this.#store.compact(this.#state);
    this.emit('change');
  }
}

function byRunOrder(a: QueueItem, b: QueueItem): number {
  return a.number - b.number || a.seq - b.seq;
}

/** The history entry of a prompt whose process died under it. */
export function interruptedByStopEntry(item: QueueItem): HistoryEntry {
  const timestamp = Date.now();
  return {
    prompt: [item.number, item.promptId, item.prompt, item.extraData, item.outputs],
    outputs: {},
    status: {
      status_str: 'error',
      completed: false,
      messages: [
        [
          'execution_interrupted',
          {
            prompt_id: item.promptId,
            node_id: null,
            node_type: null,
            executed: [],
            timestamp,
            reason: 'server_stopped',
            message: SERVER_STOPPED_MESSAGE,
          },
        ],
      ],
    },
    meta: {},
  };
}
