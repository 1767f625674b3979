/**
 * `POST /free` as ComfyUI's worker carries it out: the request only sets flags, and they take effect between
 * prompts, never under a running one. Unloading models releases the sessions a running sampler holds, so it
 * waits until no worker runs a prompt; emptying a worker's output cache waits until that worker's prompt is done.
 */
import type { Logger } from '@gategraph/core';
import type { PromptRunner } from './prompt-runner.ts';

export interface FreeRequest {
  /** Empty the output cache (ComfyUI's `free_memory`; `unload_models` implies it). */
  freeMemory: boolean;
  /** Release the models the packs hold (their `onFree` hooks). */
  unloadModels: boolean;
}

/** What the memory actions need of a worker: whether it runs a prompt, and its runner's output cache. */
export interface WorkerState {
  readonly current: unknown;
  readonly runner: Pick<PromptRunner, 'clearCache'>;
}

/**
 * Releases the models the packs hold, where they hold them: this thread's packs' hooks (in-process), or the
 * execution thread's (executor-thread.ts). Says how many hooks ran and which failed.
 */
export type ModelUnloader = () => Promise<{ hooks: number; failures: string[] }>;

/** The unloader for packs loaded in this thread: runs their `onFree` hooks; one that fails does not stop the others. */
export function packHooksUnloader(hooks: ReadonlyArray<() => void | Promise<void>>): ModelUnloader {
  return async () => {
    const results = await Promise.allSettled(hooks.map(async (hook) => hook()));
    return { hooks: results.length, failures: results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : [])) };
  };
}

export class MemoryActions {
  /** Workers whose cache is still to be emptied. */
  readonly #cachesToFree = new Set<WorkerState>();
  #unloadPending = false;
  #applying: Promise<void> | undefined;

  constructor(
    readonly workers: () => readonly WorkerState[],
    readonly unloadModels: ModelUnloader,
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
      await worker.runner.clearCache();
      this.#cachesToFree.delete(worker);
      freed++;
    }
    if (freed) this.logger.info('Freed the output cache');
    if (!this.#unloadPending || this.workers().some((w) => w.current !== undefined)) return;
    this.#unloadPending = false;
    // A pack hook that fails must not fail the others: the cache is already free.
    const { hooks, failures } = await this.unloadModels();
    for (const failure of failures) this.logger.warn(`a pack failed to free its models: ${failure}`);
    this.logger.info(`Unloaded models (${hooks} pack hook${hooks === 1 ? '' : 's'})`);
  }
}
