/**
 * The queue of a Redis deployment as an API instance sees it (QueueService): prompts are BullMQ jobs (id = the
 * prompt id) that worker processes take in queue order; ids, the history, who runs what and the files live in
 * Redis (keys.ts). Every API instance is alike and keeps nothing of its own: any of them answers any route, and
 * one restarting loses nothing.
 *
 * Order: ComfyUI's, for what clients send: prompts run in arrival order; `front: true` goes before everything
 * pending (BullMQ's LIFO insertion, at the head of the waiting list), a later front prompt before an earlier one,
 * as ComfyUI's decreasing negative numbers order them. An explicit `number` is recorded but ordered like any
 * prompt (BullMQ's order is a list, not a sort).
 *
 * A worker that dies mid-prompt: BullMQ's stall check (in the workers) fails its job once its lock lapses; the
 * API instances then record it in the history as interrupted, with the reason, and send its client the terminal
 * `execution_interrupted` and `executing {node: null}`. It is not run again: ComfyUI clients expect one terminal
 * message per prompt, and a prompt that killed its worker (out of memory, say) would kill the next one too.
 */
import { EventEmitter } from 'node:events';
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@gategraph/core';
import { DuplicatePromptIdError, type EnqueueRequest } from '../queue.ts';
import type { FreeRequest } from '../memory-actions.ts';
import type { HistoryEntry, QueueItem } from '../store.ts';
import type { QueueService, RunningItem, WorkerInfo } from '../queue-service.ts';
import { RedisHistory } from './history.ts';
import { PublishingSink, type ControlMessage } from './message-bus.ts';
import { QUEUE_NAME, type RedisKeys } from './keys.ts';

/** What a job carries: the queue item and the models it loads (for routing). */
export interface PromptJobData extends QueueItem {
  models: string[];
  /** Where it runs: -seq for a front prompt, seq otherwise (BullMQ's list order; `number` may be the client's). */
  order: number;
}

/** What a worker records in `<prefix>:running` for a prompt it runs. */
export interface RunningRecord {
  worker: string;
  node: string | null;
  displayNode: string | null;
  started: number;
}

/** The message recorded for a prompt whose worker stopped answering. */
export function workerLostMessage(worker: string | undefined, lockSeconds: number): string {
  return `The worker running this prompt${worker ? ` (${worker})` : ''} stopped answering (its process ended, or it lost Redis for more than ${lockSeconds} s); the prompt did not finish. Queue it again to run it.`;
}

/** Model names a prompt loads (its loaders' file inputs), which workers advertise and routing prefers. */
export function promptModels(prompt: Record<string, { inputs?: Record<string, unknown> }>): string[] {
  const names = new Set<string>();
  for (const node of Object.values(prompt)) {
    for (const [input, value] of Object.entries(node.inputs ?? {})) {
      if (typeof value === 'string' && /^(ckpt|unet|clip|vae|lora)_name\d?$/.test(input)) names.add(value);
    }
  }
  return [...names].sort();
}

export interface RedisQueueOptions {
  redis: Redis;
  keys: RedisKeys;
  maxHistory: number;
  /** The workers' lock time, seconds (for the lost-worker message). */
  lockSeconds: number;
  logger: Logger;
}

/** Workers not heard from for this long are left out of /system_stats. */
const WORKER_SEEN_MS = 15_000;

export class RedisQueueService extends EventEmitter<{ change: [] }> implements QueueService {
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly history: RedisHistory;
  readonly queue: Queue<PromptJobData>;
  readonly #events: QueueEvents;
  readonly #eventsConnection: Redis;
  readonly #sink: PublishingSink;
  readonly #logger: Logger;
  readonly #lockSeconds: number;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: RedisQueueOptions) {
    super();
    this.redis = options.redis;
    this.keys = options.keys;
    this.#logger = options.logger;
    this.#lockSeconds = options.lockSeconds;
    this.history = new RedisHistory(options.redis, options.keys, options.maxHistory);
    this.queue = new Queue<PromptJobData>(QUEUE_NAME, { connection: options.redis, prefix: options.keys.prefix });
    const eventsConnection = (this.#eventsConnection = options.redis.duplicate());
    // A duplicate has none of the original's listeners: without one, an outage would print unhandled errors.
    eventsConnection.on('error', () => {});
    this.#events = new QueueEvents(QUEUE_NAME, { connection: eventsConnection, prefix: options.keys.prefix });
    this.#sink = new PublishingSink(options.redis, options.keys);
    this.#events.on('failed', ({ jobId }) => void this.#recordLost(jobId));
    this.queue.on('error', (error) => this.#logger.debug(`BullMQ queue: ${error.message}`));
    this.#events.on('error', (error) => this.#logger.debug(`BullMQ events: ${error.message}`));
  }

  /** Records prompts whose worker was lost while no API instance listened; then keeps checking now and then. */
  async start(): Promise<void> {
    await this.#events.waitUntilReady();
    await this.sweepLost();
    this.#sweeper = setInterval(() => void this.sweepLost().catch(() => {}), 10_000);
    this.#sweeper.unref();
  }

  /** Tells this instance (the status broadcast) that the queue changed, here or elsewhere. */
  notifyChanged(): void {
    this.emit('change');
  }

  get closed(): boolean {
    return this.#closed;
  }

  async has(promptId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.id(promptId))) === 1;
  }

  async enqueue(request: EnqueueRequest): Promise<QueueItem> {
    const idKey = this.keys.id(request.promptId);
    if ((await this.redis.set(idKey, 'queued', 'NX')) !== 'OK') {
      throw new DuplicatePromptIdError(request.promptId, (await this.redis.get(idKey)) === 'history' ? 'history' : 'queue');
    }
    try {
      const seq = await this.redis.incr(this.keys.counter);
      const item: PromptJobData = {
        number: request.number ?? (request.front ? -seq : seq),
        order: request.front ? -seq : seq,
        promptId: request.promptId,
        prompt: request.prompt,
        extraData: request.extraData,
        outputs: request.outputs,
        seq,
        models: promptModels(request.prompt),
      };
      // Acknowledged once Redis has it (with appendfsync always, once it is on disk: docs/scaling.md).
      await this.queue.add('prompt', item, { jobId: request.promptId, lifo: request.front === true, removeOnComplete: true, removeOnFail: false });
      this.#changed();
      return item;
    } catch (error) {
      await this.redis.del(idKey).catch(() => {});
      throw error;
    }
  }

  async pending(): Promise<QueueItem[]> {
    const jobs = await this.queue.getJobs(['wait', 'paused', 'prioritized'], 0, -1);
    return jobs
      .filter((j): j is Job<PromptJobData> => Boolean(j?.data))
      .sort((a, b) => a.data.order - b.data.order)
      .map((j) => itemOf(j.data));
  }

  async running(): Promise<RunningItem[]> {
    const [jobs, records] = await Promise.all([this.queue.getActive(), this.redis.hgetall(this.keys.running)]);
    return jobs
      .filter((j): j is Job<PromptJobData> => Boolean(j?.data))
      .sort((a, b) => a.data.order - b.data.order)
      .map((j) => {
        const record = parseRecord(records[j.data.promptId]);
        return { ...itemOf(j.data), worker: record?.worker ?? 'starting', node: record?.node ?? null, displayNode: record?.displayNode ?? null };
      });
  }

  async remaining(): Promise<number> {
    const counts = await this.queue.getJobCounts('wait', 'paused', 'prioritized', 'active');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  async deletePending(ids: string[]): Promise<string[]> {
    const removed: string[] = [];
    for (const id of ids) {
      const job = await this.queue.getJob(id);
      if (!job) continue;
      const state = await job.getState();
      if (state !== 'waiting' && state !== 'prioritized') continue;
      try {
        await job.remove();
      } catch {
        continue; // a worker took it meanwhile: it is running now, not pending
      }
      await this.redis.del(this.keys.id(id));
      removed.push(id);
    }
    if (removed.length) this.#changed();
    return removed;
  }

  async clearPending(): Promise<string[]> {
    return this.deletePending((await this.pending()).map((item) => item.promptId));
  }

  historyEntries(maxItems?: number, offset = -1): Promise<Array<[string, HistoryEntry]>> {
    return this.history.entries(maxItems, offset);
  }

  historyEntry(promptId: string): Promise<HistoryEntry | undefined> {
    return this.history.get(promptId);
  }

  deleteHistory(ids: string[]): Promise<void> {
    return this.history.delete(ids);
  }

  clearHistory(): Promise<void> {
    return this.history.clear();
  }

  async interrupt(promptId?: string): Promise<boolean> {
    const running = await this.redis.hkeys(this.keys.running);
    const hit = promptId === undefined ? running.length > 0 : running.includes(promptId);
    if (hit) await this.#control(promptId === undefined ? { type: 'interrupt' } : { type: 'interrupt', promptId });
    return hit;
  }

  async free(request: FreeRequest): Promise<void> {
    await this.#control({ type: 'free', ...request });
  }

  async workers(): Promise<WorkerInfo[]> {
    const now = Date.now();
    return (await readWorkers(this.redis, this.keys)).filter((w) => now - w.seen < WORKER_SEEN_MS).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Records every failed job (a worker lost mid-prompt) that has no history entry yet. */
  async sweepLost(): Promise<void> {
    for (const job of await this.queue.getFailed(0, 999)) if (job) await this.#recordLost(job.id!);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    await Promise.allSettled([this.#events.close(), this.queue.close()]);
    this.#eventsConnection.disconnect();
  }

  /**
   * A failed job is a prompt whose worker was lost (workers finish every prompt they run themselves): recorded
   * as interrupted by whichever API instance gets there first, which also tells its client.
   */
  async #recordLost(jobId: string | undefined): Promise<void> {
    if (!jobId) return;
    try {
      const job = await this.queue.getJob(jobId);
      if (!job?.data) return;
      const item = itemOf(job.data);
      const record = parseRecord(await this.redis.hget(this.keys.running, item.promptId));
      const message = workerLostMessage(record?.worker, this.#lockSeconds);
      const data = { prompt_id: item.promptId, node_id: record?.node ?? null, node_type: null, executed: [], timestamp: Date.now(), reason: 'worker_lost', message };
      const entry: HistoryEntry = {
        prompt: [item.number, item.promptId, item.prompt, item.extraData, item.outputs],
        outputs: {},
        status: { status_str: 'error', completed: false, messages: [['execution_interrupted', data]] },
        meta: {},
      };
      if (await this.history.record(item.promptId, entry)) {
        this.#logger.warn(`Prompt ${item.promptId}: ${message}`);
        const client = typeof item.extraData.client_id === 'string' ? item.extraData.client_id : undefined;
        await this.#sink.sendNow(client, 'execution_interrupted', data);
        await this.#sink.sendNow(client, 'executing', { node: null, display_node: null, prompt_id: item.promptId });
      }
      await job.remove().catch(() => {});
      this.#changed();
    } catch (error) {
      this.#logger.warn(`could not record the lost prompt ${jobId}: ${(error as Error).message}`);
    }
  }

  async #control(message: ControlMessage): Promise<void> {
    await this.redis.publish(this.keys.control, JSON.stringify(message));
  }

  #changed(): void {
    this.redis.publish(this.keys.changed, '{}').catch(() => {});
  }
}

/** What the workers last reported (their heartbeats); a record that is not JSON is left out. */
export async function readWorkers(redis: Redis, keys: RedisKeys): Promise<WorkerInfo[]> {
  return Object.values(await redis.hgetall(keys.workers)).flatMap((json) => {
    try {
      return [JSON.parse(json) as WorkerInfo];
    } catch {
      return [];
    }
  });
}

function itemOf(data: PromptJobData): QueueItem {
  return { number: data.number, promptId: data.promptId, prompt: data.prompt, extraData: data.extraData, outputs: data.outputs, seq: data.seq };
}

function parseRecord(json: string | undefined | null): RunningRecord | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as RunningRecord;
  } catch {
    return undefined;
  }
}
