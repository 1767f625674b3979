/**
 * The executor: runs a validated API prompt for a set of output nodes, one prompt at a time, reusing cached
 * outputs and reporting ComfyUI-shaped events. A run's steps are in `execution/prompt-run.ts`; the order
 * nodes run in (ComfyUI's ready-set, output-first, concurrent async nodes) in `execution/scheduler.ts`; one
 * node (inputs, lists, lazy inputs, blockers, expansion) in `execution/node-run.ts`; error reports in
 * `execution/run-report.ts`.
 *
 * Interruption: the signal is checked before each node and each mapped call, `ctx.throwIfAborted()` checks
 * it inside a node, and `ctx.progress()` checks it too (as ComfyUI's progress hook does), so a sampler that
 * reports every step stops at the next step. An `InterruptedError` thrown by a node, or any error thrown
 * after the signal was aborted, ends the run as `interrupted`.
 */
import { OutputCache, type OutputCacheOptions } from './cache.ts';
import { consoleLogger, type Logger } from './logger.ts';
import type { ExecutionEvent } from './events.ts';
import type { HostPaths, UiOutput } from './node-definition.ts';
import type { NodeRegistry } from './registry.ts';
import type { ApiPrompt } from './workflow/api-format.ts';
import { PromptRun } from './execution/prompt-run.ts';

export { summarizeValue } from './execution/error-report.ts';
export { NodeFailure } from './execution/node-run.ts';

export interface ExecutorOptions {
  /** Output cache settings; default `classic` mode, unbounded. */
  cache?: OutputCacheOptions;
  paths: HostPaths;
  /** Default: info level to stderr. Nodes log through `ctx.log`, a child scoped `<class_type>#<id>`. */
  logger?: Logger;
}

export interface RunOptions {
  promptId: string;
  /** Output node ids to run (from validation: the outputs that passed). */
  outputs: string[];
  extraData?: { extra_pnginfo?: Record<string, unknown>; client_id?: string; [key: string]: unknown };
  /** Abort to interrupt the run. */
  signal?: AbortSignal;
  /**
   * Polled wherever the signal is checked (`ctx.throwIfAborted()`, `ctx.progress()`, between nodes): an
   * interrupt a host can raise while a node runs synchronously (a flag in shared memory set by another
   * thread), which an AbortSignal cannot deliver until the node yields.
   */
  interruptRequested?: () => boolean;
  /** Receives every event, synchronously, in order. A listener that throws is logged and ignored. */
  onEvent?: (event: ExecutionEvent) => void;
}

export interface RunError {
  node_id: string;
  node_type: string;
  message: string;
  exception_type: string;
  /** Stack frames; for a `NodeInputError` (a user error) only its message. */
  traceback: string[];
  /** The failing node's resolved inputs, summarised (see `summarizeValue`): input name -> list of values. */
  current_inputs: Record<string, unknown[]>;
}

export interface RunResult {
  status: 'success' | 'error' | 'interrupted';
  /** UI outputs by node id (executed nodes that returned UI output, and cached output nodes), for history. */
  outputs: Record<string, UiOutput>;
  /** Nodes whose `execute` ran, in order. */
  executed: string[];
  /** Nodes whose outputs came from the cache: those found when the run started, then any found later. */
  cached: string[];
  /** For each node in `outputs`: the node it is shown on and, for an expanded node, its parent (ComfyUI's history `meta`). */
  meta?: Record<string, { node_id: string; display_node: string; parent_node: string | null; real_node_id: string }>;
  error?: RunError;
}

/** Runs prompts for a host; holds the output cache between runs. One run at a time. */
export class Executor {
  readonly cache: OutputCache;
  readonly #registry: NodeRegistry;
  readonly #paths: HostPaths;
  readonly #logger: Logger;
  #running = false;

  constructor(registry: NodeRegistry, options: ExecutorOptions) {
    this.#registry = registry;
    this.cache = new OutputCache(options.cache);
    this.#paths = options.paths;
    this.#logger = options.logger ?? consoleLogger();
  }

  /** True while a prompt runs. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Runs `options.outputs` of a validated prompt. Never rejects for a problem in the prompt or a node (those
   * are in the result, and in the events); rejects only when called while another run is in progress.
   */
  async run(prompt: ApiPrompt, options: RunOptions): Promise<RunResult> {
    if (this.#running) {
      throw new Error(
        `Executor.run() was called for prompt ${options.promptId} while another prompt is running; an executor runs one prompt at a time, so queue prompts and await each run.`,
      );
    }
    this.#running = true;
    try {
      return await new PromptRun(this.#registry, this.cache, this.#paths, this.#logger, prompt, options).run();
    } finally {
      this.#running = false;
    }
  }
}
