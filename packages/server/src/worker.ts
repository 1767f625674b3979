/**
 * Runs queued prompts through the executor, forwards its events to the prompt's websocket client, writes
 * the history entry, and only then sends ComfyUI's final `executing {node: null}`: a client that asks for
 * the history on that message always finds it.
 *
 * One worker by default. Each worker owns a runner, i.e. an Executor (an executor runs one prompt at a time) in
 * the execution thread or in this one (prompt-runner.ts); with one worker the output cache is therefore shared
 * by every prompt, which is what makes an unchanged resubmitted prompt instant.
 */
import type { ExecutionEvent, Logger, RunResult } from '@gategraph/core';
import { SERVER_STOPPED_MESSAGE, type PromptQueue } from './queue.ts';
import type { HistoryEntry, QueueItem, StatusMessage } from './store.ts';
import type { WsHub } from './ws-hub.ts';
import { withoutServerPaths } from './client-text.ts';
import type { MemoryActions } from './memory-actions.ts';
import { PromptProgressState } from './progress-state.ts';
import type { PromptRunner } from './prompt-runner.ts';

/** Events kept in the history entry's `status.messages`, as ComfyUI keeps them. */
const STATUS_EVENTS = new Set(['execution_start', 'execution_cached', 'execution_success', 'execution_error', 'execution_interrupted']);

/** Said when a prompt ran nothing because every node's output was cached ("why did my prompt do nothing"). */
export const ALL_CACHED_NOTE =
  'Nothing was executed: every node of this prompt had the same inputs as in an earlier run, so all outputs came from the cache. Change an input (e.g. the seed) to generate again, or POST /free {"free_memory": true} to empty the cache.';

/** What one worker is doing right now. */
export interface RunningPrompt {
  item: QueueItem;
  clientId: string | undefined;
  /** The node executing now (null between nodes). */
  node: string | null;
  /** The node the editor shows it on (the expanding node for a node an expansion made). */
  displayNode: string | null;
  controller: AbortController;
  /** Set when the server interrupts the prompt because it is stopping. */
  stopping?: boolean;
}

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
    const clientId = typeof item.extraData.client_id === 'string' ? item.extraData.client_id : undefined;
    const current: RunningPrompt = { item, clientId, node: null, displayNode: null, controller: new AbortController() };
    this.#current = current;
    const messages: StatusMessage[] = [];
    let executedCount = 0;
    const started = performance.now();

    const progress = new PromptProgressState(item.promptId);
    const onEvent = (event: ExecutionEvent) => {
      if (event.type === 'node_started' || event.type === 'node_finished') {
        // For progress_state only: not a ComfyUI message.
        const state = progress.apply(event);
        if (state) this.#hub.send(clientId, 'progress_state', state);
        return;
      }
      if (event.type === 'preview') {
        this.#hub.sendPreview(clientId, event.data.image.format, event.data.image.data);
        return;
      }
      let data: Record<string, unknown> = event.data;
      if (event.type === 'executing') {
        current.node = event.data.node;
        current.displayNode = event.data.display_node;
        if (event.data.node !== null) executedCount++;
      }
      if (event.type === 'execution_success' && executedCount === 0) data = { ...data, note: ALL_CACHED_NOTE };
      if (event.type === 'execution_error') data = forClients(data);
      if (event.type === 'execution_interrupted' && current.stopping) {
        data = { ...data, reason: 'server_stopped', message: SERVER_STOPPED_MESSAGE };
      }
      // A blocker's message is sent as an error event but does not fail the prompt; ComfyUI keeps it out of
      // the history's status too.
      const blockedNote = event.type === 'execution_error' && event.data.exception_type === 'ExecutionBlocked';
      if (STATUS_EVENTS.has(event.type) && !blockedNote) messages.push([event.type, data]);
      this.#hub.send(clientId, event.type, data);
      // After the event it follows from, to the prompt's client only (as ComfyUI's WebUIProgressHandler).
      const state = progress.apply(event);
      if (state) this.#hub.send(clientId, 'progress_state', state);
    };

    let result: RunResult;
    try {
      result = await this.runner.run(
        { prompt: item.prompt, promptId: item.promptId, outputs: item.outputs, extraData: item.extraData },
        { signal: current.controller.signal, onEvent },
      );
    } catch (error) {
      // The runner rejects only on misuse (a second concurrent run) or when the execution thread cannot start;
      // report it like a failed prompt.
      const message = (error as Error).message;
      const data = {
        prompt_id: item.promptId,
        node_id: null,
        node_type: null,
        executed: [],
        exception_message: message,
        exception_type: (error as Error).name,
        traceback: [],
        current_inputs: {},
        current_outputs: {},
        timestamp: Date.now(),
      };
      messages.push(['execution_error', data]);
      this.#hub.send(clientId, 'execution_error', data);
      result = { status: 'error', outputs: {}, executed: [], cached: [] };
    }

    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    if (result.status === 'success' && result.executed.length === 0) {
      this.#logger.info(`Prompt ${item.promptId}: all ${result.cached.length} node(s) were cached, nothing executed (${seconds}s)`);
    } else if (result.status === 'success') {
      this.#logger.info(`Prompt ${item.promptId} executed in ${seconds}s (${result.executed.length} run, ${result.cached.length} cached)`);
    } else if (result.status === 'interrupted') {
      this.#logger.info(`Prompt ${item.promptId} interrupted after ${seconds}s`);
    } else {
      const at = result.error ? ` at node ${result.error.node_id} (${result.error.node_type}): ${result.error.message}` : '';
      this.#logger.warn(`Prompt ${item.promptId} failed${at}`);
    }

    const entry = historyEntry(item, result, messages);
    try {
      this.#queue.finish(item.promptId, entry);
    } finally {
      this.#current = undefined;
      // After the history is written: "this prompt is done, its history is there".
      this.#hub.send(clientId, 'executing', { node: null, display_node: null, prompt_id: item.promptId });
    }
  }
}

function historyEntry(item: QueueItem, result: RunResult, messages: StatusMessage[]): HistoryEntry {
  const meta: HistoryEntry['meta'] = {};
  for (const nodeId of Object.keys(result.outputs)) {
    // An expanded output node is shown on the node that made it (the executor says which).
    meta[nodeId] = result.meta?.[nodeId] ?? { node_id: nodeId, display_node: nodeId, parent_node: null, real_node_id: nodeId };
  }
  return {
    prompt: [item.number, item.promptId, item.prompt, item.extraData, item.outputs],
    outputs: result.outputs,
    status: {
      status_str: result.status === 'success' ? 'success' : 'error',
      completed: result.status === 'success',
      messages,
    },
    meta,
  };
}

/** An execution_error's data as clients get it (websocket and history): no server paths in it. */
function forClients(data: Record<string, unknown>): Record<string, unknown> {
  const out = { ...data };
  if (typeof out.exception_message === 'string') out.exception_message = withoutServerPaths(out.exception_message);
  if (Array.isArray(out.traceback)) out.traceback = out.traceback.map((line) => (typeof line === 'string' ? withoutServerPaths(line) : line));
  return out;
}
