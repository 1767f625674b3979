/**
 * What the HTTP routes and the websocket ask of the queue, whichever holds it: this process (LocalQueueService:
 * the durable local store and the workers in this process) or Redis (redis/redis-queue.ts: API instances and
 * workers on other machines). Every answer is a promise, since Redis answers over the network.
 */
import { EventEmitter } from 'node:events';
import type { EnqueueRequest, PromptQueue } from './queue.ts';
import type { FreeRequest, MemoryActions } from './memory-actions.ts';
import type { HistoryEntry, QueueItem } from './store.ts';
import type { PromptWorker } from './worker.ts';

/** A running prompt, and where it runs. */
export interface RunningItem extends QueueItem {
  /** The worker running it (`<host>:<pid>` in a Redis deployment, `local-<n>` in this process). */
  worker: string;
  /** The node executing now, and the node the editor shows it on (null between nodes). */
  node: string | null;
  displayNode: string | null;
}

/** A worker as /system_stats lists it. */
export interface WorkerInfo {
  id: string;
  host: string;
  /** The prompt it runs, or null when idle. */
  running: string | null;
  /** Models it has open (checkpoint names as prompts name them). */
  models: string[];
  /** Models it says it can load (`--models`); absent when it takes any. */
  canLoad?: string[];
  /** When it last reported, ms since the epoch. */
  seen: number;
}

export interface QueueService extends EventEmitter<{ change: [] }> {
  /** True once the service stopped accepting prompts (shutdown). */
  readonly closed: boolean;
  /** True when the id names a pending, running or finished prompt. */
  has(promptId: string): Promise<boolean>;
  /** Adds a prompt durably (acknowledged only once stored). Throws DuplicatePromptIdError when the id is taken. */
  enqueue(request: EnqueueRequest): Promise<QueueItem>;
  /** Pending prompts in the order they will run. */
  pending(): Promise<QueueItem[]>;
  running(): Promise<RunningItem[]>;
  /** ComfyUI's `queue_remaining`: pending plus running. */
  remaining(): Promise<number>;
  /** Removes these pending prompts; returns the ids removed (running ones are interrupted, not deleted). */
  deletePending(ids: string[]): Promise<string[]>;
  clearPending(): Promise<string[]>;
  /** ComfyUI's `GET /history` selection, oldest first. */
  historyEntries(maxItems?: number, offset?: number): Promise<Array<[string, HistoryEntry]>>;
  historyEntry(promptId: string): Promise<HistoryEntry | undefined>;
  deleteHistory(ids: string[]): Promise<void>;
  clearHistory(): Promise<void>;
  /** Interrupts the running prompt `promptId`, or every running prompt; true when one was running. */
  interrupt(promptId?: string): Promise<boolean>;
  /** `POST /free`: carried out by every worker between prompts. */
  free(request: FreeRequest): Promise<void>;
  workers(): Promise<WorkerInfo[]>;
}

/** The single-machine queue: the local durable store, and the workers of this process. */
export class LocalQueueService extends EventEmitter<{ change: [] }> implements QueueService {
  constructor(
    readonly queue: PromptQueue,
    readonly localWorkers: () => readonly PromptWorker[],
    readonly memory: MemoryActions,
  ) {
    super();
    queue.on('change', () => this.emit('change'));
  }

  get closed(): boolean {
    return this.queue.closed;
  }

  async has(promptId: string): Promise<boolean> {
    return this.queue.has(promptId);
  }

  async enqueue(request: EnqueueRequest): Promise<QueueItem> {
    return this.queue.enqueue(request);
  }

  async pending(): Promise<QueueItem[]> {
    return this.queue.pending();
  }

  async running(): Promise<RunningItem[]> {
    const byId = new Map(this.localWorkers().flatMap((w, slot) => (w.current ? [[w.current.item.promptId, { slot, current: w.current }] as const] : [])));
    return this.queue.running().map((item) => {
      const at = byId.get(item.promptId);
      return { ...item, worker: at ? `local-${at.slot}` : 'local', node: at?.current.node ?? null, displayNode: at?.current.displayNode ?? null };
    });
  }

  async remaining(): Promise<number> {
    return this.queue.remaining();
  }

  async deletePending(ids: string[]): Promise<string[]> {
    const pending = new Set(this.queue.pending().map((i) => i.promptId));
    this.queue.deletePending(ids);
    return ids.filter((id) => pending.has(id));
  }

  async clearPending(): Promise<string[]> {
    const ids = this.queue.pending().map((i) => i.promptId);
    this.queue.clearPending();
    return ids;
  }

  async historyEntries(maxItems?: number, offset = -1): Promise<Array<[string, HistoryEntry]>> {
    return this.queue.historyEntries(maxItems, offset);
  }

  async historyEntry(promptId: string): Promise<HistoryEntry | undefined> {
    return this.queue.historyEntry(promptId);
  }

  async deleteHistory(ids: string[]): Promise<void> {
    this.queue.deleteHistory(ids);
  }

  async clearHistory(): Promise<void> {
    this.queue.clearHistory();
  }

  async interrupt(promptId?: string): Promise<boolean> {
    let interrupted = false;
    for (const worker of this.localWorkers()) interrupted = worker.interrupt(promptId) || interrupted;
    return interrupted;
  }

  free(request: FreeRequest): Promise<void> {
    return this.memory.request(request);
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.localWorkers().map((w, slot) => ({ id: `local-${slot}`, host: 'local', running: w.current?.item.promptId ?? null, models: [], seen: Date.now() }));
  }
}
