/**
 * A worker of a Redis deployment (`gategraph worker --redis ...`): takes prompts from the BullMQ queue in queue
 * order, runs them with its own executors (model sessions, output cache), sends their websocket messages to the
 * API instances (message-bus.ts), copies their output files into Redis (file-store.ts), records the history entry
 * and only then sends the final `executing {node: null}`, as the single-machine worker does.
 *
 * Jobs are fetched by hand (BullMQ's manual processing) so that the worker can let another one go first:
 * before it takes the next prompt, a worker that does not have that prompt's models open (or says it cannot load
 * them, `--models`) waits a moment when an idle worker that has them (or can load them) is there to take it.
 * While a prompt runs its lock is renewed; if the process dies the lock lapses and BullMQ's stall check (run by
 * every worker) fails the job, which the API instances record as interrupted (redis-queue.ts).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@gategraph/core';
import { MemoryActions, type ModelUnloader } from '../memory-actions.ts';
import { clientIdOf, executePrompt, type MessageSink, type RunningPrompt } from '../prompt-execution.ts';
import type { PromptRunner } from '../prompt-runner.ts';
import type { WorkerInfo } from '../queue-service.ts';
import { RedisHistory } from './history.ts';
import { QUEUE_NAME, type RedisKeys } from './keys.ts';
import { PublishingSink, subscribe, type ControlMessage } from './message-bus.ts';
import { readWorkers, type PromptJobData, type RunningRecord } from './redis-queue.ts';
import type { RedisFileStore } from './file-store.ts';

export interface RedisWorkerOptions {
  redis: Redis;
  /** A connection for the control channel only (a subscribed connection can do nothing else). */
  subscriber: Redis;
  keys: RedisKeys;
  /** One runner per prompt run at the same time. */
  runners: PromptRunner[];
  unloadModels: ModelUnloader;
  logger: Logger;
  /** How long a lock lasts without renewal, ms: a dead worker's prompt is declared lost after about this long. */
  lockMs: number;
  maxHistory: number;
  /** Copies inputs and outputs through Redis; undefined with shared folders. */
  files: RedisFileStore | undefined;
  /** Models this worker can load (`--models`, names or * wildcards); undefined: any. */
  canLoad?: string[];
  /** How long an unsuited worker leaves the next prompt to a better one, ms. */
  routingWaitMs?: number;
  /** Default `<host>:<pid>`. */
  id?: string;
}

/** How often a worker says it is alive (and what it has open). */
const HEARTBEAT_MS = 2000;
/** An idle worker looks at the queue at least this often, even without a "queue changed" message (a lost one). */
const IDLE_POLL_MS = 1000;
/** Models remembered as open per worker (its model cache keeps about as many). */
const OPEN_MODELS = 8;
const WORKER_STOPPED_MESSAGE = 'The worker running this prompt was stopped; the prompt did not finish. Queue it again to run it.';

interface Slot {
  runner: PromptRunner;
  current: RunningPrompt | undefined;
}

export class RedisWorker {
  readonly id: string;
  readonly #o: RedisWorkerOptions;
  readonly #bull: Worker<PromptJobData>;
  readonly #queue: Queue<PromptJobData>;
  readonly #history: RedisHistory;
  readonly #sink: PublishingSink;
  readonly #slots: Slot[];
  readonly #memory: MemoryActions;
  readonly #open: string[] = [];
  #stopping = false;
  #loops: Promise<void>[] = [];
  #heartbeat: NodeJS.Timeout | undefined;
  /** Idle slots waiting for a prompt to be queued. */
  readonly #wakers = new Set<() => void>();

  constructor(options: RedisWorkerOptions) {
    this.#o = options;
    this.id = options.id ?? `${hostname()}:${process.pid}`;
    const connection = options.redis;
    this.#bull = new Worker<PromptJobData>(QUEUE_NAME, null, {
      connection,
      prefix: options.keys.prefix,
      autorun: false,
      lockDuration: options.lockMs,
      stalledInterval: options.lockMs,
      // A prompt whose worker died is recorded as interrupted, never run a second time (redis-queue.ts).
      maxStalledCount: 0,
      drainDelay: 2,
    });
    this.#bull.on('error', (error) => options.logger.debug(`BullMQ worker: ${error.message}`));
    this.#queue = new Queue<PromptJobData>(QUEUE_NAME, { connection, prefix: options.keys.prefix });
    this.#history = new RedisHistory(options.redis, options.keys, options.maxHistory);
    this.#sink = new PublishingSink(options.redis, options.keys);
    this.#slots = options.runners.map((runner) => ({ runner, current: undefined }));
    this.#memory = new MemoryActions(() => this.#slots, options.unloadModels, options.logger);
  }

  /** Starts taking prompts; resolves once it listens. */
  async start(): Promise<void> {
    await subscribe(this.#o.subscriber, {
      [this.#o.keys.control]: (message) => void this.#onControl(message as ControlMessage),
      [this.#o.keys.changed]: () => this.#wake(),
    });
    await this.#bull.startStalledCheckTimer();
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat().catch(() => {}), HEARTBEAT_MS);
    this.#loops = this.#slots.map((slot, n) => this.#loop(slot, n));
    this.#o.logger.info(`worker ${this.id} takes prompts (${this.#slots.length} at a time)${this.#o.canLoad ? `; models: ${this.#o.canLoad.join(', ')}` : ''}`);
  }

  /** What this worker reports (heartbeat, /system_stats). */
  info(): WorkerInfo {
    return {
      id: this.id,
      host: hostname(),
      running: this.#slots.find((s) => s.current)?.current?.item.promptId ?? null,
      models: [...this.#open],
      ...(this.#o.canLoad ? { canLoad: this.#o.canLoad } : {}),
      seen: Date.now(),
    };
  }

  /**
   * Stops taking prompts, interrupts the running ones (recorded as interrupted: the worker was stopped) and
   * leaves once they are recorded.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake();
    for (const slot of this.#slots) {
      if (!slot.current) continue;
      slot.current.stopping = true;
      slot.current.stoppingMessage = WORKER_STOPPED_MESSAGE;
      slot.current.controller.abort();
    }
    await Promise.allSettled(this.#loops);
    clearInterval(this.#heartbeat);
    await this.#o.redis.hdel(this.#o.keys.workers, this.id).catch(() => {});
    await Promise.allSettled([this.#bull.close(true), this.#queue.close()]);
  }

  /**
   * Idle, a slot waits for "the queue changed" (or a second at most), lets a better worker go first, then fetches
   * without blocking: a fetch that blocked would take the next prompt the moment it arrives, before the routing
   * check could leave it to a worker that has its model open.
   */
  async #loop(slot: Slot, n: number): Promise<void> {
    const token = `${this.id}:${n}:${randomUUID()}`;
    while (!this.#stopping) {
      let job: Job<PromptJobData> | undefined;
      try {
        await this.#memory.applyPending();
        await this.#leaveToBetterWorker();
        if (this.#stopping) return;
        job = await this.#bull.getNextJob(token, { block: false });
      } catch (error) {
        // Redis is away (ioredis reconnects by itself): try again shortly.
        if (!this.#stopping) this.#o.logger.debug(`worker ${this.id}: could not fetch a prompt: ${(error as Error).message}`);
        await sleep(500);
        continue;
      }
      if (!job) {
        await this.#queueChange(IDLE_POLL_MS);
        continue;
      }
      await this.#process(slot, job, token);
    }
  }

  /** Resolves on the next "queue changed" message, or after `ms`. */
  #queueChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(done);
    });
  }

  async #process(slot: Slot, job: Job<PromptJobData>, token: string): Promise<void> {
    const { keys, redis, logger } = this.#o;
    const item = job.data;
    const current: RunningPrompt = { item, clientId: clientIdOf(item), node: null, displayNode: null, controller: new AbortController() };
    slot.current = current;
    const record = (): RunningRecord => ({ worker: this.id, node: current.node, displayNode: current.displayNode, started });
    const started = Date.now();
    // The lock says "alive": renewed well before it lapses, so only a dead (or cut off) worker loses its prompt.
    const renew = setInterval(() => {
      job.extendLock(token, this.#o.lockMs).catch((error: Error) => logger.debug(`prompt ${item.promptId}: lock not renewed: ${error.message}`));
    }, Math.max(200, Math.floor(this.#o.lockMs / 3)));
    try {
      await redis.hset(keys.running, item.promptId, JSON.stringify(record()));
      this.#changed();
      void this.#beat().catch(() => {});
      await this.#o.files?.materializeInputs(item.prompt).catch((error: Error) => logger.warn(`prompt ${item.promptId}: inputs not copied: ${error.message}`));
      // Where the prompt is, for /queue and for a client that reconnects to any API instance.
      const sink: MessageSink = {
        send: (clientId, type, data) => {
          if (type === 'executing') redis.hset(keys.running, item.promptId, JSON.stringify(record())).catch(() => {});
          this.#sink.send(clientId, type, data);
        },
        sendPreview: (clientId, format, image, mustDeliver) => this.#sink.sendPreview(clientId, format, image, mustDeliver),
      };
      const entry = await executePrompt(current, slot.runner, sink, logger);
      await this.#o.files?.putOutputs(entry);
      const recorded = await this.#history.record(item.promptId, entry);
      if (!recorded) logger.warn(`prompt ${item.promptId}: already recorded (taken as lost while this worker was cut off); this run's result is dropped`);
      if (entry.status.completed || entry.status.status_str === 'success') for (const model of item.models) this.#remember(model);
      clearInterval(renew);
      await job.moveToCompleted('recorded', token, false).catch((error: Error) => logger.debug(`prompt ${item.promptId}: ${error.message}`));
      if (recorded) await this.#sink.sendNow(current.clientId, 'executing', { node: null, display_node: null, prompt_id: item.promptId });
    } catch (error) {
      // Redis went away at the end: the lock lapses, and the prompt is recorded as lost.
      logger.warn(`prompt ${item.promptId}: could not record its result: ${(error as Error).message}`);
    } finally {
      clearInterval(renew);
      slot.current = undefined;
      this.#changed();
      void this.#beat().catch(() => {});
    }
  }

  #wake(): void {
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const wake of wakers) wake();
  }

  async #onControl(message: ControlMessage): Promise<void> {
    if (message.type === 'interrupt') {
      for (const slot of this.#slots) {
        if (slot.current && (message.promptId === undefined || slot.current.item.promptId === message.promptId)) {
          this.#o.logger.info(`Interrupting prompt ${slot.current.item.promptId}`);
          slot.current.controller.abort();
        }
      }
    } else if (message.type === 'free') {
      if (message.unloadModels) this.#open.splice(0);
      await this.#memory.request({ freeMemory: message.freeMemory === true, unloadModels: message.unloadModels === true });
    }
  }

  /** Waits (up to routingWaitMs) while the next prompt is better taken by another idle worker. */
  async #leaveToBetterWorker(): Promise<void> {
    const limit = this.#o.routingWaitMs ?? 1500;
    const deadline = Date.now() + limit;
    while (!this.#stopping && Date.now() < deadline) {
      const next = await this.#nextPending();
      if (!next || next.models.length === 0) return;
      const mine = next.models.every((m) => this.#open.includes(m));
      if (mine) return;
      const canLoad = canLoadAll(this.#o.canLoad, next.models);
      const others = await this.#idleOthers();
      const better = others.some((w) => next.models.every((m) => w.models.includes(m)) && canLoadAll(w.canLoad, next.models));
      const abler = !canLoad && others.some((w) => canLoadAll(w.canLoad, next.models));
      if (!better && !abler) return;
      await sleep(100);
    }
  }

  async #nextPending(): Promise<PromptJobData | undefined> {
    const jobs = await this.#queue.getJobs(['wait'], 0, 99);
    let next: PromptJobData | undefined;
    for (const job of jobs) if (job?.data && (!next || job.data.order < next.order)) next = job.data;
    return next;
  }

  async #idleOthers(): Promise<WorkerInfo[]> {
    const now = Date.now();
    return (await readWorkers(this.#o.redis, this.#o.keys)).filter((w) => w.id !== this.id && w.running === null && now - w.seen < 3 * HEARTBEAT_MS);
  }

  #remember(model: string): void {
    const at = this.#open.indexOf(model);
    if (at >= 0) this.#open.splice(at, 1);
    this.#open.unshift(model);
    this.#open.splice(OPEN_MODELS);
  }

  async #beat(): Promise<void> {
    await this.#o.redis.hset(this.#o.keys.workers, this.id, JSON.stringify(this.info()));
  }

  #changed(): void {
    this.#o.redis.publish(this.#o.keys.changed, '{}').catch(() => {});
  }
}

/** Whether a worker advertising `canLoad` (undefined: anything) can load every model. */
export function canLoadAll(canLoad: readonly string[] | undefined, models: readonly string[]): boolean {
  if (!canLoad) return true;
  return models.every((model) => canLoad.some((pattern) => globMatch(pattern, model)));
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
