/**
 * The executor: runs a validated API prompt for a set of output nodes, one prompt at a time, reusing cached
 * outputs and reporting ComfyUI-shaped events.
 *
 * One run:
 * 1. `execution_start`; the plan is the requested outputs and everything their declared inputs link to
 *    (lazy links included, since a node may ask for them); each plan node gets its input signature
 *    (`signature.ts`), and the cache pins those entries for the run.
 * 2. `execution_cached {nodes}`: the plan nodes whose outputs are in the cache. They are not executed, and
 *    nothing upstream of them runs on their behalf: a re-queued unchanged prompt executes no node at all.
 *    A cached output node still gets an `executed` event with its cached UI output (as ComfyUI does), so a
 *    client sees the images, and its UI output is in `RunResult.outputs` for the history.
 * 3. The nodes the outputs need are run dependencies first: `executing {node}`, then the node, with
 *    `progress` / `preview` events from `ctx.progress` (not throttled; an exact repeat is dropped), then
 *    `executed {node, output}` if it returned UI output. Lazy inputs are left out of this: a node receives
 *    `() => Promise<value>` for them and the upstream sub-graph runs (once) when it calls that; the node's
 *    `executing` is sent again afterwards so clients show the right current node.
 * 4. `execution_success`, or `execution_error` / `execution_interrupted`.
 * The final `executing {node: null}` that tells ComfyUI clients "this prompt is done" is NOT sent here: the
 * host (server) sends it after it has written the history entry, so a client that then asks for the
 * history finds it.
 *
 * List mapping (ComfyUI's OUTPUT_IS_LIST / INPUT_IS_LIST): every output slot is stored as a list. An output
 * declared `isList` returns an array, which becomes the list; any other output is a list of one. A node
 * without `inputIsList` whose inputs carry lists runs once per index up to the longest list (shorter lists
 * repeat their last element) and its outputs are the concatenation of the runs'; UI outputs are merged. If
 * one of its inputs is an empty list it runs zero times and outputs empty lists. Lazy inputs do not count
 * towards the number of runs (their length is unknown until evaluated); run `i` gets element `i` (or the
 * last) of the evaluated list. A node with `inputIsList: true` runs once and receives whole arrays
 * (constants as one-element arrays).
 *
 * Interruption: the signal is checked before each node and each mapped call, `ctx.throwIfAborted()` checks
 * it inside a node, and `ctx.progress()` checks it too (as ComfyUI's progress hook does), so a sampler that
 * reports every step stops at the next step. An `InterruptedError` thrown by a node, or any error thrown
 * after the signal was aborted, ends the run as `interrupted`.
 */
import { randomUUID } from 'node:crypto';
import { OutputCache, type CacheEntry, type OutputCacheOptions } from './cache.ts';
import { InterruptedError, NodeInputError } from './errors.ts';
import { ownValue, setOwn } from './own-keys.ts';
import type { ExecutionEvent } from './events.ts';
import { consoleLogger, type Logger } from './logger.ts';
import {
  isNodeResult,
  type AnyNodeDefinition,
  type ExecutionContext,
  type HiddenValues,
  type HostPaths,
  type PreviewImage,
  type UiOutput,
} from './node-definition.ts';
import type { NodeRegistry } from './registry.ts';
import { computeSignatures, declaredLinks, MalformedPromptError, nodeAndDefinition, type DeclaredLink } from './signature.ts';
import { isLink, type ApiNode, type ApiPrompt } from './workflow/api-format.ts';

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

/** Why a run stopped at a node: the node, what it threw, and its inputs for the error report. */
class NodeFailure extends Error {
  constructor(
    readonly nodeId: string,
    override readonly cause: unknown,
    readonly inputs: Record<string, unknown[]> = {},
  ) {
    super(`Node ${nodeId} failed`);
  }
}

/** The lazy inputs of one node execution: whether `execute` has returned, and the evaluations it started. */
interface LazyScope {
  settled: boolean;
  pending: Promise<unknown>[];
}

/** What an input of a node resolves to before list mapping. */
type ResolvedInput =
  | { kind: 'absent' }
  | { kind: 'list'; values: unknown[] }
  | { kind: 'lazy'; evaluate: () => Promise<unknown[]> };

/** The state of one run; made and discarded by `Executor.run`. */
class PromptRun {
  readonly #executed: string[] = [];
  readonly #cached: string[] = [];
  readonly #cachedSet = new Set<string>();
  readonly #ui: Record<string, UiOutput> = {};
  /** Outputs available to consumers in this run, by node id (released when no consumer is left). */
  readonly #entries = new Map<string, CacheEntry>();
  readonly #links = new Map<string, DeclaredLink[]>();
  readonly #pendingConsumers = new Map<string, number>();
  /** Nodes being executed, so two lazy inputs evaluated at once never run a shared upstream node twice. */
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #targets: Set<string>;
  readonly #controller = new AbortController();
  #signatures = new Map<string, string>();
  /** The first node failure; kept so a node that swallows a failed lazy input cannot hide it. */
  #failure: NodeFailure | undefined;

  constructor(
    readonly registry: NodeRegistry,
    readonly cache: OutputCache,
    readonly paths: HostPaths,
    readonly logger: Logger,
    readonly prompt: ApiPrompt,
    readonly options: RunOptions,
  ) {
    this.#targets = new Set(Array.isArray(options.outputs) ? options.outputs.map(String) : []);
  }

  get #signal(): AbortSignal {
    if (!this.#controller.signal.aborted && this.options.interruptRequested?.()) this.#controller.abort(new InterruptedError());
    return this.#controller.signal;
  }

  async run(): Promise<RunResult> {
    const external = this.options.signal;
    const forwardAbort = () => this.#controller.abort(new InterruptedError());
    if (external?.aborted) forwardAbort();
    else external?.addEventListener('abort', forwardAbort, { once: true });

    this.#emit({ type: 'execution_start', data: { prompt_id: this.options.promptId, timestamp: Date.now() } });
    try {
      this.#plan();
      this.#signatures = await computeSignatures(this.prompt, this.registry, this.#targets, {
        runNonce: randomUUID(),
        logger: this.logger,
        paths: this.paths,
      });
      this.cache.beginRun(this.#signatures.values());
      for (const [id, signature] of this.#signatures) if (this.cache.get(signature)) this.#markCached(id);
      this.#emit({
        type: 'execution_cached',
        data: { nodes: [...this.#cached], prompt_id: this.options.promptId, timestamp: Date.now() },
      });
      await this.#resolve([...this.#targets]);
      this.#emit({ type: 'execution_success', data: { prompt_id: this.options.promptId, timestamp: Date.now() } });
      return this.#result('success');
    } catch (error) {
      return this.#stopped(this.#failure ?? error);
    } finally {
      external?.removeEventListener('abort', forwardAbort);
      this.cache.endRun();
    }
  }

  /** Checks the prompt's structure (the parts validation would have caught) and counts each node's consumers. */
  #plan(): void {
    if (typeof this.prompt !== 'object' || this.prompt === null || Array.isArray(this.prompt)) {
      throw new MalformedPromptError('The prompt must be an object mapping node ids to nodes.', null);
    }
    if (!Array.isArray(this.options.outputs) || this.#targets.size === 0) {
      throw new MalformedPromptError('No output nodes to run: pass the output node ids from validation in `outputs`.', null);
    }
    // Walk everything reachable (lazy links included), checking nodes, classes and output slots.
    const seen = new Set<string>();
    const stack = [...this.#targets];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const { node, definition } = nodeAndDefinition(this.prompt, this.registry, id);
      const links = declaredLinks(node, definition);
      this.#links.set(id, links);
      for (const link of links) {
        const source = nodeAndDefinition(this.prompt, this.registry, link.source, { node: id, input: link.input });
        const outputs = source.definition.outputs;
        if (link.slot < 0 || link.slot >= outputs.length) {
          const names = outputs.map((o) => o.name ?? o.type).join(', ') || 'none';
          throw new MalformedPromptError(
            `Input "${link.input}" of node ${id} (${node.class_type}) links to output slot ${link.slot} of node ${link.source} (${source.node.class_type}), which has ${outputs.length} output(s): ${names}.`,
            id,
          );
        }
        stack.push(link.source);
      }
      for (const source of new Set(links.map((l) => l.source))) {
        this.#pendingConsumers.set(source, (this.#pendingConsumers.get(source) ?? 0) + 1);
      }
    }
  }

  /**
   * Makes the outputs of `targets` available, running what is needed: dependencies first (a depth-first
   * post-order over non-lazy links), stopping at nodes already resolved in this run or in the cache.
   */
  async #resolve(targets: string[]): Promise<void> {
    for (const id of this.#collect(targets)) {
      if (this.#entries.has(id)) continue;
      const signature = this.#signatures.get(id)!;
      const hit = this.cache.peek(signature);
      if (hit) {
        // Cached at the start, or produced earlier in this run by a node with the same signature.
        this.#markCached(id);
        this.#entries.set(id, hit);
        if (this.#targets.has(id) && hasUi(hit.ui)) this.#reportUi(id, hit.ui);
        this.#consumed(id);
      } else {
        const running = this.#inflight.get(id) ?? this.#execute(id);
        this.#inflight.set(id, running);
        try {
          await running;
        } finally {
          this.#inflight.delete(id);
        }
      }
    }
  }

  #collect(targets: string[]): string[] {
    const order: string[] = [];
    const visited = new Set<string>();
    const needsInputs = (id: string) => !this.cache.has(this.#signatures.get(id)!);
    const frameOf = (id: string) => ({
      id,
      links: needsInputs(id) ? this.#links.get(id)!.filter((l) => !l.lazy) : [],
      next: 0,
    });
    for (const target of targets) {
      if (visited.has(target) || this.#entries.has(target)) continue;
      visited.add(target);
      const stack = [frameOf(target)];
      while (stack.length) {
        const frame = stack[stack.length - 1]!;
        const link = frame.links[frame.next++];
        if (!link) {
          stack.pop();
          order.push(frame.id);
          continue;
        }
        if (visited.has(link.source) || this.#entries.has(link.source)) continue;
        visited.add(link.source);
        stack.push(frameOf(link.source));
      }
    }
    return order;
  }

  async #entryOf(id: string): Promise<CacheEntry> {
    let entry = this.#entries.get(id);
    if (!entry) {
      // Released early or evicted by a `cache.clear()` during the run: resolve it again.
      await this.#resolve([id]);
      entry = this.#entries.get(id)!;
    }
    return entry;
  }

  /** Runs one node (all its mapped calls) and stores its outputs; throws a `NodeFailure` on any error. */
  async #execute(id: string): Promise<void> {
    const { node, definition } = nodeAndDefinition(this.prompt, this.registry, id);
    if (this.#signal.aborted) throw new NodeFailure(id, new InterruptedError());

    let inputs: Map<string, ResolvedInput> | undefined;
    const lazy: LazyScope = { settled: false, pending: [] };
    let entry: CacheEntry;
    try {
      // Normally every non-lazy source is resolved already; if one was released, it is resolved (and its
      // events sent) before this node's `executing`.
      inputs = await this.#resolveInputs(id, node, definition, lazy);
      this.#emit({ type: 'executing', data: { node: id, display_node: id, prompt_id: this.options.promptId } });
      const calls = callCount(definition, inputs);
      const ctx = this.#context(id, node);
      const results: NormalisedResult[] = [];
      for (let index = 0; index < calls; index++) {
        if (this.#signal.aborted) throw new InterruptedError();
        ctx.startCall();
        const args = this.#arguments(id, definition, inputs, index);
        const returned = await definition.execute(args as never, ctx.context);
        results.push(normaliseResult(id, node, definition, returned));
      }
      // A lazy input started but not awaited must finish before the run moves on.
      await Promise.allSettled(lazy.pending);
      if (this.#failure) throw this.#failure;
      entry = mergeResults(definition, results);
    } catch (error) {
      if (this.#failure) throw this.#failure;
      if (error instanceof NodeFailure) throw error;
      throw new NodeFailure(id, error, inputs ? summarizeInputs(inputs) : {});
    } finally {
      lazy.settled = true;
    }

    this.#entries.set(id, entry);
    this.cache.set(this.#signatures.get(id)!, entry);
    this.#executed.push(id);
    if (hasUi(entry.ui)) this.#reportUi(id, entry.ui);
    this.#consumed(id);
  }

  async #resolveInputs(
    id: string,
    node: ApiNode,
    definition: AnyNodeDefinition,
    lazy: LazyScope,
  ): Promise<Map<string, ResolvedInput>> {
    const inputs = new Map<string, ResolvedInput>();
    for (const [name, spec] of Object.entries(definition.inputs)) {
      const raw = node.inputs[name];
      if (raw === undefined) {
        inputs.set(name, { kind: 'absent' });
      } else if (!isLink(raw)) {
        inputs.set(name, spec.lazy ? { kind: 'lazy', evaluate: async () => [raw] } : { kind: 'list', values: [raw] });
      } else if (!spec.lazy) {
        inputs.set(name, { kind: 'list', values: (await this.#entryOf(String(raw[0]))).outputs[raw[1]]! });
      } else {
        inputs.set(name, { kind: 'lazy', evaluate: this.#lazyLink(id, name, String(raw[0]), raw[1], lazy) });
      }
    }
    return inputs;
  }

  /** A memoised evaluation of a lazy linked input: runs the upstream sub-graph on first call. */
  #lazyLink(id: string, input: string, source: string, slot: number, scope: LazyScope) {
    let pending: Promise<unknown[]> | undefined;
    return (): Promise<unknown[]> => {
      if (scope.settled) {
        return Promise.reject(
          new Error(`Lazy input "${input}" of node ${id} was read after its execute() returned; await it inside execute().`),
        );
      }
      pending ??= (async () => {
        const before = this.#executed.length;
        try {
          await this.#resolve([source]);
        } catch (error) {
          if (error instanceof NodeFailure) this.#failure ??= error;
          throw error;
        }
        // Upstream nodes ran in between: tell clients which node is current again.
        if (this.#executed.length > before) {
          this.#emit({ type: 'executing', data: { node: id, display_node: id, prompt_id: this.options.promptId } });
        }
        return (await this.#entryOf(source)).outputs[slot]!;
      })();
      // Handled here so a node that never awaits a failing input causes no unhandled rejection; the
      // failure is reported through #failure.
      pending.catch(() => {});
      scope.pending.push(pending);
      return pending;
    };
  }

  /** The `inputs` argument of call `index`: list elements (or whole lists), lazy functions, hidden values. */
  #arguments(id: string, definition: AnyNodeDefinition, inputs: Map<string, ResolvedInput>, index: number) {
    const wholeLists = definition.inputIsList === true;
    const args: Record<string, unknown> = {};
    for (const [name, input] of inputs) {
      if (input.kind === 'absent') args[name] = undefined;
      else if (input.kind === 'list') args[name] = wholeLists ? input.values : elementAt(input.values, index);
      else {
        const { evaluate } = input;
        args[name] = async () => {
          const values = await evaluate();
          return wholeLists ? values : elementAt(values, index);
        };
      }
    }
    const hidden: HiddenValues = {
      PROMPT: this.prompt,
      EXTRA_PNGINFO: this.options.extraData?.extra_pnginfo,
      UNIQUE_ID: id,
    };
    for (const [name, kind] of Object.entries(definition.hidden ?? {})) args[name] = hidden[kind];
    return args;
  }

  #context(id: string, node: ApiNode): { context: ExecutionContext; startCall(): void } {
    const promptId = this.options.promptId;
    const signal = this.#signal;
    const throwIfAborted = () => {
      if (this.#signal.aborted) throw new InterruptedError();
    };
    let last: { value: number; max: number } | undefined;
    const context: ExecutionContext = {
      nodeId: id,
      promptId,
      signal,
      throwIfAborted,
      log: this.logger.child(`${node.class_type}#${id}`),
      paths: this.paths,
      progress: (value: number, max: number, preview?: PreviewImage) => {
        throwIfAborted();
        // A repeat of the last value carries no news (several layers may report the same step). A value
        // going back is kept: it is a new pass (a second sampler in the same node), not noise.
        const stale = last !== undefined && last.max === max && last.value === value;
        if (!stale && Number.isFinite(value) && Number.isFinite(max)) {
          last = { value, max };
          this.#emit({ type: 'progress', data: { value, max, prompt_id: promptId, node: id } });
        }
        if (preview) this.#emit({ type: 'preview', data: { prompt_id: promptId, node: id, image: preview } });
      },
    };
    return {
      context,
      startCall: () => {
        last = undefined;
      },
    };
  }

  /** A node is done with its inputs: sources no other pending node consumes are released (not from the cache). */
  #consumed(id: string): void {
    for (const source of new Set(this.#links.get(id)!.map((l) => l.source))) {
      const left = (this.#pendingConsumers.get(source) ?? 1) - 1;
      this.#pendingConsumers.set(source, left);
      if (left <= 0) this.#entries.delete(source);
    }
  }

  #markCached(id: string): void {
    if (this.#cachedSet.has(id)) return;
    this.#cachedSet.add(id);
    this.#cached.push(id);
  }

  #reportUi(id: string, ui: UiOutput): void {
    setOwn(this.#ui, id, ui);
    this.#emit({ type: 'executed', data: { node: id, display_node: id, output: ui, prompt_id: this.options.promptId } });
  }

  #emit(event: ExecutionEvent): void {
    if (!this.options.onEvent) return;
    try {
      this.options.onEvent(event);
    } catch (error) {
      this.logger.warn(`An execution event listener threw on "${event.type}"; ignored:`, error);
    }
  }

  #result(status: RunResult['status'], error?: RunError): RunResult {
    return {
      status,
      outputs: this.#ui,
      executed: [...this.#executed],
      cached: [...this.#cached],
      ...(error ? { error } : {}),
    };
  }

  /** Turns whatever stopped the run into the result and the `execution_error` / `execution_interrupted` event. */
  #stopped(error: unknown): RunResult {
    const promptId = this.options.promptId;
    const failure = error instanceof NodeFailure ? error : undefined;
    const nodeId = failure?.nodeId ?? (error instanceof MalformedPromptError ? error.nodeId : null);
    const nodeType = nodeId !== null ? classTypeOf(this.prompt, nodeId) : null;

    if (failure && (failure.cause instanceof InterruptedError || this.#signal.aborted)) {
      this.logger.info(`Prompt ${promptId} interrupted${nodeId ? ` at node ${nodeId} (${nodeType})` : ''}`);
      this.#emit({
        type: 'execution_interrupted',
        data: { prompt_id: promptId, node_id: nodeId, node_type: nodeType, executed: [...this.#executed], timestamp: Date.now() },
      });
      return this.#result('interrupted');
    }

    const cause = failure ? failure.cause : error;
    const report: RunError = {
      node_id: nodeId ?? '',
      node_type: nodeType ?? '',
      message: cause instanceof Error ? cause.message : String(cause),
      exception_type: cause instanceof Error ? cause.name : typeof cause,
      traceback: tracebackOf(cause),
      current_inputs: failure?.inputs ?? {},
    };
    if (cause instanceof NodeInputError || cause instanceof MalformedPromptError) {
      this.logger.error(`${report.node_type || 'Prompt'}${nodeId ? ` #${nodeId}` : ''}: ${report.message}`);
    } else {
      this.logger.error(`Error while executing ${report.node_type} #${report.node_id}:`, cause);
    }
    this.#emit({
      type: 'execution_error',
      data: {
        prompt_id: promptId,
        node_id: report.node_id,
        node_type: report.node_type,
        executed: [...this.#executed],
        exception_message: report.message,
        exception_type: report.exception_type,
        traceback: report.traceback,
        current_inputs: report.current_inputs,
        current_outputs: this.#sourceOutputs(nodeId),
        timestamp: Date.now(),
      },
    });
    return this.#result('error', report);
  }

  /** The summarised outputs of the failing node's direct sources that this run resolved. */
  #sourceOutputs(nodeId: string | null): Record<string, unknown> {
    const outputs: Record<string, unknown> = {};
    for (const link of (nodeId !== null && this.#links.get(nodeId)) || []) {
      const entry = this.#entries.get(link.source);
      if (entry) outputs[link.source] = entry.outputs.map((list) => summarizeList(list));
    }
    return outputs;
  }
}

interface NormalisedResult {
  values: unknown[];
  ui: UiOutput | undefined;
}

/** How many times a node runs: once with whole lists, else once per index of its longest non-lazy list. */
function callCount(definition: AnyNodeDefinition, inputs: Map<string, ResolvedInput>): number {
  if (definition.inputIsList) return 1;
  let longest = 1;
  for (const input of inputs.values()) {
    if (input.kind !== 'list') continue;
    if (input.values.length === 0) return 0;
    longest = Math.max(longest, input.values.length);
  }
  return longest;
}

/** Element `index` of a list, or its last element when the list is shorter (ComfyUI's rule). */
function elementAt(values: unknown[], index: number): unknown {
  return values[Math.min(index, values.length - 1)];
}

/** Checks what `execute` returned against the declared outputs, with a message that tells the author what to fix. */
function normaliseResult(id: string, node: ApiNode, definition: AnyNodeDefinition, returned: unknown): NormalisedResult {
  const where = `Node ${id} (${node.class_type})`;
  const declared = definition.outputs;
  let values: unknown;
  let ui: unknown;
  if (Array.isArray(returned)) {
    values = returned;
  } else if (isNodeResult(returned)) {
    values = returned.outputs ?? (declared.length === 0 ? [] : undefined);
    ui = returned.ui;
  } else if (returned === undefined && declared.length === 0) {
    values = [];
  }
  if (!Array.isArray(values)) {
    throw new TypeError(
      `${where}: execute() must return an array of its ${declared.length} output value(s) or { outputs, ui }; it returned ${describeType(returned)}.`,
    );
  }
  if (values.length !== declared.length) {
    throw new TypeError(
      `${where}: execute() returned ${values.length} output value(s) but the node declares ${declared.length} (${declared.map((o) => o.name ?? o.type).join(', ') || 'none'}).`,
    );
  }
  declared.forEach((output, slot) => {
    if (output.isList && !Array.isArray(values[slot])) {
      throw new TypeError(
        `${where}: output ${slot} (${output.name ?? output.type}) is declared isList, so execute() must return an array for it; got ${describeType(values[slot])}.`,
      );
    }
  });
  if (ui !== undefined && ui !== null) {
    const bad = typeof ui !== 'object' || Array.isArray(ui) || Object.values(ui).some((v) => !Array.isArray(v));
    if (bad) throw new TypeError(`${where}: the "ui" it returned must be an object of arrays, e.g. { images: [...] }.`);
  }
  return { values, ui: (ui ?? undefined) as UiOutput | undefined };
}

/** The outputs of all calls of a mapped node: list outputs concatenated, others collected; UI arrays joined. */
function mergeResults(definition: AnyNodeDefinition, results: NormalisedResult[]): CacheEntry {
  const outputs = definition.outputs.map((output, slot) =>
    output.isList ? results.flatMap((r) => r.values[slot] as unknown[]) : results.map((r) => r.values[slot]),
  );
  let ui: UiOutput | undefined;
  for (const result of results) {
    if (!result.ui) continue;
    ui ??= {};
    for (const [key, items] of Object.entries(result.ui)) ui[key] = [...(ui[key] ?? []), ...items];
  }
  return ui ? { outputs, ui } : { outputs };
}

function hasUi(ui: UiOutput | undefined): ui is UiOutput {
  return ui !== undefined && Object.keys(ui).length > 0;
}

function classTypeOf(prompt: ApiPrompt, id: string): string | null {
  const node = typeof prompt === 'object' && prompt !== null ? ownValue(prompt, id) : undefined;
  return typeof node?.class_type === 'string' ? node.class_type : null;
}

function tracebackOf(error: unknown): string[] {
  // A NodeInputError is the user's to fix (bad file, bad size): its message is the whole story.
  if (error instanceof NodeInputError) return [error.message];
  if (!(error instanceof Error) || typeof error.stack !== 'string') return [];
  return error.stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return typeof value;
}

const MAX_STRING = 200;
const MAX_ITEMS = 8;
const MAX_KEYS = 12;

/** Inputs of a failing node for the error report; lazy ones show as `<lazy>`. */
function summarizeInputs(inputs: Map<string, ResolvedInput>): Record<string, unknown[]> {
  const summary: Record<string, unknown[]> = {};
  for (const [name, input] of inputs) {
    if (input.kind === 'list') summary[name] = summarizeList(input.values);
    else if (input.kind === 'lazy') summary[name] = ['<lazy>'];
  }
  return summary;
}

function summarizeList(values: unknown[]): unknown[] {
  return summarizeValue(values) as unknown[];
}

/**
 * A small JSON-safe picture of a value for error reports: numbers, booleans and short strings as they are,
 * long strings cut, typed arrays as `Float32Array[1024]`, class instances (handles) as their class name,
 * arrays and plain objects shallowly.
 */
export function summarizeValue(value: unknown, depth = 0): unknown {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'string':
      return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… (${value.length} chars)` : value;
    case 'bigint':
      return `${value}n`;
    case 'function':
      return `<function ${value.name || 'anonymous'}>`;
    case 'symbol':
      return value.toString();
  }
  if (value === null) return null;
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? (value as unknown as { length: number }).length : value.byteLength;
    return `${value.constructor.name}[${length}]`;
  }
  if (value instanceof ArrayBuffer) return `ArrayBuffer[${value.byteLength}]`;
  if (Array.isArray(value)) {
    if (depth >= 2) return `Array[${value.length}]`;
    const items = value.slice(0, MAX_ITEMS).map((v) => summarizeValue(v, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`… ${value.length - MAX_ITEMS} more`);
    return items;
  }
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) return `<${(value as object).constructor?.name ?? 'object'}>`;
  if (depth >= 2) return 'Object';
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value as object);
  for (const key of keys.slice(0, MAX_KEYS)) out[key] = summarizeValue((value as Record<string, unknown>)[key], depth + 1);
  if (keys.length > MAX_KEYS) out['…'] = `${keys.length - MAX_KEYS} more keys`;
  return out;
}
