/**
 * The server's side of the execution thread (executor-thread-entry.ts): starts it, sends it prompts, turns its
 * messages back into execution events on this event loop, and stops it when it must.
 *
 * Interrupts reach a node two ways: a flag in shared memory (Atomics), which the executor polls at every check
 * (`ctx.throwIfAborted()`, `ctx.progress()`, between nodes) even while the node keeps the thread busy, and a
 * message that aborts the run's AbortSignal for nodes awaiting something. A node that checks neither is stopped
 * by terminating the thread `hardStopMs` after the interrupt: its prompt (and any other prompt running in the
 * thread) is reported interrupted with the reason, and a fresh thread is started, which loads the packs again;
 * models load again on the next prompt that needs them, as after `POST /free`.
 */
import { Worker } from 'node:worker_threads';
import type { ExecutionEvent, Logger, RunResult, UiOutput } from '@gategraph/core';
import type { FromThread, ThreadInit, ToThread } from './executor-thread-protocol.ts';
import type { PromptRunner, RunCallbacks, RunRequest } from './prompt-runner.ts';

/** After an interrupt, how long a node may go on before its thread is terminated (default of `hardStopMs`). */
export const DEFAULT_HARD_STOP_MS = 5000;

export interface ExecutorThreadOptions {
  init: Omit<ThreadInit, 'interruptFlags'>;
  logger: Logger;
  hardStopMs?: number;
  /** Names of the packs the server loads itself: a pack that fails only in the thread is reported. */
  serverPacks?: Promise<readonly string[]>;
}

/** The `reason` of an execution_interrupted whose thread had to be terminated. */
export const HARD_STOP_REASON = 'node_did_not_stop';
/** The `reason` for another prompt running in the thread that was terminated. */
export const THREAD_RESTARTED_REASON = 'execution_thread_restarted';

interface InFlight {
  slot: number;
  seq: number;
  request: RunRequest;
  callbacks: RunCallbacks;
  resolve: (result: RunResult) => void;
  reject: (error: Error) => void;
  /** Nodes started and not finished (id -> class), for the report of a run that is cut short. */
  runningNodes: Map<string, string | null>;
  /** The last `executing` node: what was running when the executor reports no lifecycle events. */
  executing: string | null;
  executed: string[];
  cached: string[];
  outputs: Record<string, UiOutput>;
  hardStopTimer?: NodeJS.Timeout;
  onAbort: () => void;
}

export class ExecutorThread {
  readonly #init: Omit<ThreadInit, 'interruptFlags'>;
  readonly #logger: Logger;
  readonly #hardStopMs: number;
  readonly #serverPacks: Promise<readonly string[]> | undefined;
  readonly #flagMemory: SharedArrayBuffer;
  readonly #flags: Int32Array;
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  readonly #runs = new Map<number, InFlight>();
  readonly #replies = new Map<number, (message: Extract<FromThread, { type: 'reply' }>) => void>();
  #nextId = 1;
  #nextSeq = 1;
  #closed = false;
  /** Threads started so far (1 + restarts); for logs and tests. */
  starts = 0;

  private constructor(options: ExecutorThreadOptions) {
    this.#init = options.init;
    this.#logger = options.logger;
    this.#hardStopMs = options.hardStopMs ?? DEFAULT_HARD_STOP_MS;
    this.#serverPacks = options.serverPacks;
    this.#flagMemory = new SharedArrayBuffer(4 * Math.max(1, options.init.executors));
    this.#flags = new Int32Array(this.#flagMemory);
  }

  /** Starts the thread and resolves once it has loaded its packs; rejects when it cannot start. */
  static async start(options: ExecutorThreadOptions): Promise<ExecutorThread> {
    const thread = new ExecutorThread(options);
    await thread.#ensureStarted();
    return thread;
  }

  /** The runner for one server worker (one executor and output cache in the thread). */
  runner(slot: number): PromptRunner {
    return { run: (request, callbacks) => this.run(slot, request, callbacks), clearCache: () => this.clearCache(slot) };
  }

  async run(slot: number, request: RunRequest, callbacks: RunCallbacks): Promise<RunResult> {
    if (this.#runs.has(slot)) throw new Error(`executor ${slot} is already running a prompt`);
    await this.#ensureStarted();
    const seq = this.#nextSeq++;
    return new Promise<RunResult>((resolve, reject) => {
      const run: InFlight = {
        slot,
        seq,
        request,
        callbacks,
        resolve,
        reject,
        runningNodes: new Map(),
        executing: null,
        executed: [],
        cached: [],
        outputs: {},
        onAbort: () => this.#interrupt(run),
      };
      this.#runs.set(slot, run);
      this.#send({ type: 'run', slot, seq, ...request });
      if (callbacks.signal.aborted) this.#interrupt(run);
      else callbacks.signal.addEventListener('abort', run.onAbort, { once: true });
    });
  }

  /** Empties one executor's output cache. A thread that is not running holds no cache: nothing to do. */
  async clearCache(slot: number): Promise<void> {
    if (!this.#worker) return;
    await this.#request({ type: 'clear_cache', id: 0, slot });
  }

  /** Runs the packs' `onFree` hooks in the thread (where their sessions are). */
  async unloadModels(): Promise<{ hooks: number; failures: string[] }> {
    if (!this.#worker) return { hooks: 0, failures: [] };
    const reply = await this.#request({ type: 'unload_models', id: 0 });
    return { hooks: reply.hooks ?? 0, failures: reply.failures ?? [] };
  }

  /** Terminates the thread; runs still in it are left unfinished (the server records them on its next start). */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#dropThread();
    for (const run of [...this.#runs.values()]) this.#settle(run);
    await worker?.terminate();
  }

  #ensureStarted(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the server is stopping'));
    if (!this.#ready) {
      this.#ready = this.#spawn();
      // A thread that failed to start is tried again by the next prompt.
      this.#ready.catch(() => {
        this.#ready = undefined;
      });
    }
    return this.#ready;
  }

  #spawn(): Promise<void> {
    this.starts++;
    const worker = new Worker(new URL('./executor-thread-boot.mjs', import.meta.url), {
      workerData: { ...this.#init, interruptFlags: this.#flagMemory } satisfies ThreadInit,
      name: 'gategraph-executor',
    });
    this.#worker = worker;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (message: FromThread) => {
        if (this.#worker !== worker) return;
        if (message.type === 'ready') {
          ready = true;
          void this.#reportPacks(message.packs, message.failed);
          resolve();
        } else this.#receive(message);
      });
      worker.on('error', (error) => {
        if (this.#worker !== worker) return;
        if (!ready) reject(new Error(`the execution thread could not start: ${error.stack ?? error.message}`));
        else this.#lost(`the execution thread failed: ${error.message}`);
      });
      worker.on('exit', (code) => {
        if (this.#worker !== worker) return;
        if (!ready) reject(new Error(`the execution thread exited with code ${code} while loading the packs`));
        else this.#lost(`the execution thread exited with code ${code}`);
      });
    });
  }

  /** Says what the thread failed to load that the server did load (the server reported its own failures). */
  async #reportPacks(packs: string[], failed: Array<{ name: string; error: string }>): Promise<void> {
    const serverPacks = await this.#serverPacks?.catch(() => undefined);
    if (!serverPacks) return;
    for (const failure of failed) {
      if (!serverPacks.includes(failure.name)) continue;
      this.#logger.error(`pack "${failure.name}" failed to load in the execution thread (its nodes will fail there): ${failure.error}`);
    }
    const missing = serverPacks.filter((name) => !packs.includes(name) && !failed.some((f) => f.name === name));
    if (missing.length) this.#logger.warn(`the execution thread did not load pack(s) ${missing.join(', ')}`);
  }

  #receive(message: FromThread): void {
    switch (message.type) {
      case 'event': {
        const run = this.#runs.get(message.slot);
        if (run?.seq === message.seq) this.#event(run, message.event);
        break;
      }
      case 'result': {
        const run = this.#runs.get(message.slot);
        if (run?.seq === message.seq) this.#settle(run, message.result);
        break;
      }
      case 'run_failed': {
        const run = this.#runs.get(message.slot);
        if (run?.seq !== message.seq) break;
        this.#settle(run);
        run.reject(Object.assign(new Error(message.message), { name: message.name }));
        break;
      }
      case 'log': {
        const logger = message.scopes.reduce((l, scope) => l.child(scope), this.#logger);
        logger[message.level](message.message, ...message.details);
        break;
      }
      case 'reply': {
        const reply = this.#replies.get(message.id);
        this.#replies.delete(message.id);
        reply?.(message);
        break;
      }
      case 'ready':
        break;
    }
  }

  #event(run: InFlight, event: ExecutionEvent): void {
    if (event.type === 'node_started') run.runningNodes.set(event.data.node, run.request.prompt[event.data.real_node]?.class_type ?? null);
    else if (event.type === 'node_finished') {
      run.runningNodes.delete(event.data.node);
      if (event.data.outcome === 'executed') run.executed.push(event.data.node);
    } else if (event.type === 'execution_cached') run.cached.push(...event.data.nodes);
    else if (event.type === 'executed') run.outputs[event.data.node] = event.data.output;
    else if (event.type === 'executing') run.executing = event.data.node;
    run.callbacks.onEvent(event);
  }

  #interrupt(run: InFlight): void {
    if (this.#runs.get(run.slot) !== run) return;
    Atomics.store(this.#flags, run.slot, run.seq);
    this.#send({ type: 'interrupt', slot: run.slot, seq: run.seq });
    run.hardStopTimer ??= setTimeout(() => {
      if (this.#runs.get(run.slot) === run) this.#hardStop(run);
    }, this.#hardStopMs);
  }

  /** Terminates a thread whose node did not stop, reports its prompts interrupted, and starts a fresh one. */
  #hardStop(stuck: InFlight): void {
    const node = firstRunning(stuck);
    const seconds = this.#hardStopMs / 1000;
    const where = node ? `node ${node.id}${node.type ? ` (${node.type})` : ''}` : 'the prompt';
    const message =
      `${where} did not stop within ${seconds} s of the interrupt (a node stops at its next ctx.throwIfAborted() or ` +
      'ctx.progress()), so its execution thread was terminated and a fresh one started; models and cached results load again';
    this.#logger.warn(`Prompt ${stuck.request.promptId}: ${message}`);
    this.#restart((run) =>
      run === stuck
        ? { reason: HARD_STOP_REASON, message }
        : { reason: THREAD_RESTARTED_REASON, message: `interrupted: the execution thread was restarted to stop prompt ${stuck.request.promptId}` },
    );
  }

  /** The thread died on its own (a crash in a node's native code, an uncaught error): its prompts failed. */
  #lost(why: string): void {
    this.#logger.error(`${why}; starting a fresh one`);
    this.#dropThread();
    for (const run of [...this.#runs.values()]) {
      const { node, base } = stopAt(run);
      const data = {
        ...base,
        exception_message: why,
        exception_type: 'ExecutionThreadError',
        traceback: [],
        current_inputs: {},
        current_outputs: {},
      };
      run.callbacks.onEvent({ type: 'execution_error', data } as unknown as ExecutionEvent);
      this.#settle(run, {
        status: 'error',
        outputs: run.outputs,
        executed: run.executed,
        cached: run.cached,
        ...(node ? { error: { node_id: node.id, node_type: node.type ?? '', message: why, exception_type: 'ExecutionThreadError', traceback: [], current_inputs: {} } } : {}),
      });
    }
    if (!this.#closed) void this.#ensureStarted().catch((error: Error) => this.#logger.error(error.message));
  }

  #restart(why: (run: InFlight) => { reason: string; message: string }): void {
    this.#dropThread();
    for (const run of [...this.#runs.values()]) {
      const data = { ...stopAt(run).base, ...why(run) };
      run.callbacks.onEvent({ type: 'execution_interrupted', data } as ExecutionEvent);
      this.#settle(run, { status: 'interrupted', outputs: run.outputs, executed: run.executed, cached: run.cached });
    }
    // Started now, not by the next prompt: the packs load while nothing waits for them.
    if (!this.#closed) void this.#ensureStarted().catch((error: Error) => this.#logger.error(error.message));
  }

  /**
   * Terminates the thread (what it held goes with it: caches, sessions) and answers the requests waiting on it:
   * a cache that no longer exists is as free as it gets.
   */
  #dropThread(): void {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#ready = undefined;
    void worker?.terminate();
    for (const reply of this.#replies.values()) reply({ type: 'reply', id: 0 });
    this.#replies.clear();
  }

  /** Ends a run: no more events or timers for it; resolves it when a result is given. */
  #settle(run: InFlight, result?: RunResult): void {
    if (this.#runs.get(run.slot) === run) this.#runs.delete(run.slot);
    clearTimeout(run.hardStopTimer);
    run.callbacks.signal.removeEventListener('abort', run.onAbort);
    if (result) run.resolve(result);
  }

  #send(message: ToThread): void {
    this.#worker?.postMessage(message);
  }

  #request(message: Extract<ToThread, { id: number }>): Promise<Extract<FromThread, { type: 'reply' }>> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.#send({ ...message, id });
    });
  }
}

/** Where a prompt stopped when its thread went away: the node it was in, and the fields its last event starts with. */
function stopAt(run: InFlight) {
  const node = firstRunning(run);
  const base = { prompt_id: run.request.promptId, node_id: node?.id ?? null, node_type: node?.type ?? null, executed: run.executed, timestamp: Date.now() };
  return { node, base };
}

function firstRunning(run: InFlight): { id: string; type: string | null } | undefined {
  const first = run.runningNodes.entries().next();
  if (!first.done) return { id: first.value[0], type: first.value[1] };
  return run.executing === null ? undefined : { id: run.executing, type: run.request.prompt[run.executing]?.class_type ?? null };
}
