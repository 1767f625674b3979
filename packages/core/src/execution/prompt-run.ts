/**
 * One run of a prompt: made and discarded by `Executor.run`.
 *
 * 1. `execution_start`; the prompt graph is built, the requested outputs and everything they link to (lazy
 *    links included, since a node may ask for them) are signed (`signature.ts`), and the cache pins those
 *    entries for the run.
 * 2. `execution_cached {nodes}`: the signed nodes whose outputs are in the cache. They are not executed, and
 *    nothing upstream of them runs on their behalf: a re-queued unchanged prompt executes no node at all.
 *    A cached output node still gets an `executed` event with its cached UI output (as ComfyUI does).
 * 3. The scheduler (`scheduler.ts`) runs what the outputs need; each node (`node-run.ts`) sends
 *    `executing {node}`, `progress` / `preview`, and `executed {node, output}` if it returned UI output.
 * 4. `execution_success`, or `execution_error` / `execution_interrupted` (`run-report.ts`).
 * The final `executing {node: null}` is NOT sent here: the host sends it once it has recorded the result.
 */
import { randomUUID } from 'node:crypto';
import type { CacheEntry, OutputCache } from '../cache.ts';
import { InterruptedError } from '../errors.ts';
import type { ExecutionEvent, NodeRef } from '../events.ts';
import type { Logger } from '../logger.ts';
import type { HostPaths, UiOutput } from '../node-definition.ts';
import { setOwn } from '../own-keys.ts';
import { MalformedPromptError, PromptGraph } from '../prompt-graph.ts';
import type { NodeRegistry } from '../registry.ts';
import { Signatures } from '../signature.ts';
import type { ApiPrompt } from '../workflow/api-format.ts';
import type { RunOptions, RunResult } from '../executor.ts';
import { runNode, type RunServices } from './node-run.ts';
import { hasUi } from './results.ts';
import { stoppedResult } from './run-report.ts';
import { Scheduler } from './scheduler.ts';

export class PromptRun implements RunServices {
  readonly executed: string[] = [];
  readonly cachedNodes: string[] = [];
  readonly #cachedSet = new Set<string>();
  readonly ui: Record<string, UiOutput> = {};
  readonly meta: NonNullable<RunResult['meta']> = {};
  readonly #targets: Set<string>;
  readonly #controller = new AbortController();
  readonly graph: PromptGraph;
  readonly scheduler: Scheduler;
  readonly signatures: Signatures;
  startedCount = 0;
  readonly listening: boolean;
  /** The user (or host) interrupted, as opposed to the run aborting its nodes after a failure. */
  #interrupted = false;

  constructor(
    readonly registry: NodeRegistry,
    readonly cache: OutputCache,
    readonly paths: HostPaths,
    readonly logger: Logger,
    readonly prompt: ApiPrompt,
    readonly options: RunOptions,
  ) {
    this.listening = options.onEvent !== undefined;
    this.#targets = new Set(Array.isArray(options.outputs) ? options.outputs.map(String) : []);
    const isObject = typeof prompt === 'object' && prompt !== null && !Array.isArray(prompt);
    this.graph = new PromptGraph(isObject ? prompt : {}, registry);
    this.signatures = new Signatures(this.graph, { runNonce: randomUUID(), logger, paths });
    this.scheduler = new Scheduler({
      graph: this.graph,
      cached: (id) => this.peek(id),
      onCacheHit: (id, entry) => this.#onCacheHit(id, entry),
      execute: (id) => this.#execute(id),
      abort: (reason) => this.#controller.abort(reason),
    });
  }

  get promptId(): string {
    return this.options.promptId;
  }

  get extraPngInfo(): Record<string, unknown> | undefined {
    return this.options.extraData?.extra_pnginfo;
  }

  /** The run's abort signal; also aborted when the host's `interruptRequested` says so (checked here). */
  get signal(): AbortSignal {
    if (!this.#controller.signal.aborted && this.options.interruptRequested?.()) this.#interrupt();
    return this.#controller.signal;
  }

  #interrupt(): void {
    this.#interrupted = true;
    this.#controller.abort(new InterruptedError());
  }

  async run(): Promise<RunResult> {
    const external = this.options.signal;
    const forwardAbort = () => this.#interrupt();
    if (external?.aborted) forwardAbort();
    else external?.addEventListener('abort', forwardAbort, { once: true });

    this.emit({ type: 'execution_start', data: { prompt_id: this.promptId, timestamp: Date.now() } });
    try {
      this.#checkRequest();
      await this.signatures.compute(this.#targets);
      this.cache.beginRun([...this.signatures.entries()].map(([, signature]) => signature));
      for (const [id, signature] of this.signatures.entries()) if (this.cache.get(signature)) this.#markCached(id);
      this.emit({ type: 'execution_cached', data: { nodes: [...this.cachedNodes], prompt_id: this.promptId, timestamp: Date.now() } });
      await this.scheduler.run([...this.#targets]);
      this.emit({ type: 'execution_success', data: { prompt_id: this.promptId, timestamp: Date.now() } });
      return this.result('success');
    } catch (error) {
      return stoppedResult(this, error);
    } finally {
      external?.removeEventListener('abort', forwardAbort);
      this.cache.endRun();
    }
  }

  /** The request itself (the prompt object and the outputs); the nodes are checked as they are staged. */
  #checkRequest(): void {
    if (typeof this.prompt !== 'object' || this.prompt === null || Array.isArray(this.prompt)) {
      throw new MalformedPromptError('The prompt must be an object mapping node ids to nodes.', null);
    }
    if (!Array.isArray(this.options.outputs) || this.#targets.size === 0) {
      throw new MalformedPromptError('No output nodes to run: pass the output node ids from validation in `outputs`.', null);
    }
  }

  /** Interrupted by the user or the host (checked now). */
  get interrupted(): boolean {
    void this.signal;
    return this.#interrupted;
  }

  peek(id: string): CacheEntry | undefined {
    const available = this.scheduler.value(id);
    if (available) return available;
    const signature = this.signatures.get(id);
    return signature === undefined ? undefined : this.cache.peek(signature);
  }

  ref(id: string): NodeRef {
    const origin = this.graph.origin(id);
    return { prompt_id: this.promptId, node: id, display_node: origin.display, parent_node: origin.parent, real_node: origin.real };
  }

  addTargets(ids: readonly string[]): void {
    for (const id of ids) this.#targets.add(id);
  }

  started(): void {
    this.startedCount++;
  }

  emit(event: ExecutionEvent): void {
    if (!this.options.onEvent) return;
    try {
      this.options.onEvent(event);
    } catch (error) {
      this.logger.warn(`An execution event listener threw on "${event.type}"; ignored:`, error);
    }
  }

  result(status: RunResult['status'], error?: RunResult['error']): RunResult {
    return {
      status,
      outputs: this.ui,
      meta: this.meta,
      executed: [...this.executed],
      cached: [...this.cachedNodes],
      ...(error ? { error } : {}),
    };
  }

  async #execute(id: string): Promise<CacheEntry> {
    // A node with the same signature may have run since this one was staged (a duplicated sub-graph).
    const produced = this.cache.peek(this.signatures.get(id)!);
    if (produced) {
      this.#onCacheHit(id, produced);
      return produced;
    }
    const { entry, blocked } = await runNode(this, id);
    this.cache.set(this.signatures.get(id)!, entry);
    this.executed.push(id);
    if (hasUi(entry.ui)) this.#reportUi(id, entry.ui);
    if (this.listening) this.emit({ type: 'node_finished', data: { ...this.ref(id), outcome: blocked ? 'blocked' : 'executed' } });
    return entry;
  }

  #onCacheHit(id: string, entry: CacheEntry): void {
    this.#markCached(id);
    if (this.#targets.has(id) && hasUi(entry.ui)) this.#reportUi(id, entry.ui);
    if (this.listening) this.emit({ type: 'node_finished', data: { ...this.ref(id), outcome: 'cached' } });
  }

  #markCached(id: string): void {
    if (this.#cachedSet.has(id)) return;
    this.#cachedSet.add(id);
    this.cachedNodes.push(id);
  }

  #reportUi(id: string, ui: UiOutput): void {
    const ref = this.ref(id);
    setOwn(this.ui, id, ui);
    setOwn(this.meta, id, { node_id: id, display_node: ref.display_node, parent_node: ref.parent_node, real_node_id: ref.real_node });
    this.emit({ type: 'executed', data: { node: id, display_node: ref.display_node, output: ui, prompt_id: this.promptId } });
  }
}
