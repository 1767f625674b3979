/**
 * Runs queued prompts through the executor (prompt-execution.ts), forwards its events to the prompt's websocket
 * client, writes the history entry, and only then sends ComfyUI's final `executing {node: null}`: a client that
 * asks for the history on that message always finds it.
 *
 * One worker by default. Each worker owns a runner, i.e. an Executor (an executor runs one prompt at a time) in
 * the execution thread or in this one (prompt-runner.ts); with one worker the output cache is therefore shared
 * by every prompt, which is what makes an unchanged resubmitted prompt instant.
 */
import type { Logger } from '@gategraph/core';
import type { PromptQueue } from './queue.ts';
import type { QueueItem } from './store.ts';
import type { WsHub } from './ws-hub.ts';
import type { MemoryActions } from './memory-actions.ts';
import { clientIdOf, executePrompt, type RunningPrompt } from './prompt-execution.ts';
import type { PromptRunner } from './prompt-runner.ts';

export { ALL_CACHED_NOTE, type RunningPrompt } from './prompt-execution.ts';

export interface WorkerOptions {
  queue: PromptQueue;
  runner: PromptRunner;
  hub: WsHub;
  logger: Logger;
  /** `POST /free`'s actions, carried out between prompts. */
  memory?: MemoryActions;
}

export class PromptWorker {
  readonly runner: PromptRunner;
  readonly #queue: PromptQueue;
  readonly #hub: WsHub;
  readonly #logger: Logger;
  readonly #memory: MemoryActions | undefined;
  #current: RunningPrompt | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.runner = options.runner;
    this.#queue = options.queue;
    this.#hub = options.hub;
    this.#logger = options.logger;
    this.#memory = options.memory;
  }

  get current(): RunningPrompt | undefined {
    return this.#current;
  }

  /** Starts taking prompts; the returned promise settles when the queue stops handing them out. */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /**
   * Interrupts the running prompt; with `promptId`, only if that is the one running. `stopping` marks the
   * interrupt as the server's own (shutdown): the `execution_interrupted` message then says so.
   */
  interrupt(promptId?: string, stopping = false): boolean {
    const current = this.#current;
    if (!current || (promptId !== undefined && current.item.promptId !== promptId)) return false;
    if (stopping) current.stopping = true;
    current.controller.abort();
    return true;
  }

  async #run(): Promise<void> {
    for (;;) {
      // What POST /free asked for while a prompt ran is done before the next one starts.
      await this.#memory?.applyPending();
      const item = await this.#queue.take();
      if (!item) return;
      try {
        await this.#runOne(item);
      } catch (error) {
        // Only a failure to write the history lands here (the executor reports node errors in its result).
        this.#logger.error(`Prompt ${item.promptId}: could not record its result: ${(error as Error).message}`);
      }
    }
  }

  async #runOne(item: QueueItem): Promise<void> {
    const current: RunningPrompt = { item, clientId: clientIdOf(item), node: null, displayNode: null, controller: new AbortController() };
    this.#current = current;
    try {
      const entry = await executePrompt(current, this.runner, this.#hub, this.#logger);
      this.#queue.finish(item.promptId, entry);
    } finally {
      this.#current = undefined;
      // After the history is written: "this prompt is done, its history is there".
      this.#hub.send(current.clientId, 'executing', { node: null, display_node: null, prompt_id: item.promptId });
    }
  }
}
