/**
 * `POST /free` as ComfyUI's worker carries it out: the request only sets flags, and they take effect between
 * prompts, never under a running one. Unloading models releases the sessions a running sampler holds, so it
 * waits until no worker runs a prompt; emptying a worker's output cache waits until that worker's prompt is done.
 */
import type { Executor, Logger } from '@gategraph/core';

export interface FreeRequest {
  /** Empty the output cache (ComfyUI's `free_memory`; `unload_models` implies it). */
  freeMemory: boolean;
  /** Release the models the packs hold (their `onFree` hooks). */
  unloadModels: boolean;
}

/** What the memory actions need of a worker: whether it runs a prompt, and its executor's cache. */
export interface WorkerState {
  readonly current: unknown;
  readonly executor: Pick<Executor, 'cache'>;
}

export class MemoryActions {
  /** Workers whose cache is still to be emptied. */
  readonly #cachesToFree = new Set<WorkerState>();
  #unloadPending = false;
  #applying: Promise<void> | undefined;

  constructor(
    readonly workers: () => readonly WorkerState[],
    readonly freeHooks: ReadonlyArray<() => void | Promise<void>>,
    readonly logger: Logger,
  ) {}

  /** Records a request; what can be done now (idle workers) is done before this resolves. */
  async request(request: FreeRequest): Promise<void> {
    if (request.freeMemory || request.unloadModels) for (const worker of this.workers()) this.#cachesToFree.add(worker);
    if (request.unloadModels) this.#unloadPending = true;
    const running = this.workers().filter((w) => w.current !== undefined).length;
    if (running) this.logger.info(`Memory will be freed when the running prompt${running > 1 ? 's finish' : ' finishes'}`);
    await this.applyPending();
  }

  /** True while an unload waits for running prompts. */
  get pending(): boolean {
    return this.#unloadPending || this.#cachesToFree.size > 0;
  }

  /** Called by a worker between prompts (after one, before taking the next): does what is due. */
  applyPending(): Promise<void> {
    // One application at a time: a request during a hook's await joins the next round.
    this.#applying = (this.#applying ?? Promise.resolve()).then(() => this.#apply());
    return this.#applying;
  }

  async #apply(): Promise<void> {
    let freed = 0;
    for (const worker of [...this.#cachesToFree]) {
      if (worker.current !== undefined) continue;
      worker.executor.cache.clear();
      this.#cachesToFree.delete(worker);
      freed++;
    }
    if (freed) this.logger.info('Freed the output cache');
    if (!this.#unloadPending || this.workers().some((w) => w.current !== undefined)) return;
    this.#unloadPending = false;
    // A pack hook that fails must not fail the others: the cache is already free.
    const results = await Promise.allSettled(this.freeHooks.map(async (hook) => hook()));
    for (const r of results) if (r.status === 'rejected') this.logger.warn(`a pack failed to free its models: ${String(r.reason)}`);
    this.logger.info(`Unloaded models (${results.length} pack hook${results.length === 1 ? '' : 's'})`);
  }
}
