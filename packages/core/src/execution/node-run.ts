/**
 * Running one node: its inputs, ComfyUI's `check_lazy_status` rounds, the calls of a list-mapped node
 * (skipping blocked ones), its progress context, and an expansion's sub-graph (added to the prompt graph,
 * run, and its linked outputs read back as the node's own).
 */
import type { CacheEntry } from '../cache.ts';
import { InterruptedError } from '../errors.ts';
import type { ExecutionEvent, NodeRef } from '../events.ts';
import { GraphBuilder } from '../graph-builder.ts';
import type { Logger } from '../logger.ts';
import {
  ExecutionBlocker,
  type AnyNodeDefinition,
  type ExecutionContext,
  type ExpandedNode,
  type HiddenValues,
  type HostPaths,
  type PreviewImage,
} from '../node-definition.ts';
import { MalformedPromptError, type PromptGraph } from '../prompt-graph.ts';
import type { NodeRegistry } from '../registry.ts';
import type { Signatures } from '../signature.ts';
import { isLink, type ApiNode, type ApiPrompt } from '../workflow/api-format.ts';
import { summarizeInputs } from './error-report.ts';
import { blockerOf, callArguments, callCount, lazyStatusArguments, resolveInputs, type ResolvedInput } from './node-inputs.ts';
import { mergeResults, normaliseResult, type CallResult } from './results.ts';
import type { Scheduler } from './scheduler.ts';

/** What running a node needs from its run. */
export interface RunServices {
  readonly graph: PromptGraph;
  readonly registry: NodeRegistry;
  readonly scheduler: Scheduler;
  readonly signatures: Signatures;
  readonly prompt: ApiPrompt;
  readonly promptId: string;
  readonly extraPngInfo: Record<string, unknown> | undefined;
  readonly paths: HostPaths;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  /** How many nodes have started executing so far in the run (to notice that others ran meanwhile). */
  readonly startedCount: number;
  /** Someone receives events (else a node need not build them). */
  readonly listening: boolean;
  emit(event: ExecutionEvent): void;
  ref(id: string): NodeRef;
  /** An available lazy source's outputs without running anything (in the run or the cache). */
  peek(id: string): CacheEntry | undefined;
  /** Output nodes an expansion added: their UI is reported like the prompt's own outputs. */
  addTargets(ids: readonly string[]): void;
  /** The node started executing (after its non-lazy inputs and lazy-status rounds). */
  started(id: string): void;
}

/** Why a run stopped at a node: the node, what it threw, and its inputs for the error report. */
export class NodeFailure extends Error {
  constructor(
    readonly nodeId: string,
    override readonly cause: unknown,
    readonly inputs: Record<string, unknown[]> = {},
  ) {
    super(`Node ${nodeId} failed`);
  }
}

export interface NodeRunResult {
  entry: CacheEntry;
  /** Every call was blocked (nothing ran). */
  blocked: boolean;
}

/** Lazy inputs of one node execution: whether `execute` has returned, and the evaluations it started. */
interface LazyScope {
  settled: boolean;
  pending: Promise<unknown>[];
}

/** Runs node `id` (all its calls); throws a `NodeFailure` for any error. */
export async function runNode(run: RunServices, id: string): Promise<NodeRunResult> {
  const { node, definition } = run.graph.require(id);
  if (run.signal.aborted) throw new NodeFailure(id, new InterruptedError());
  const lazy: LazyScope = { settled: false, pending: [] };
  let inputs: Map<string, ResolvedInput> | undefined;
  try {
    const resolved = resolveInputs(node, definition, (source, slot) => valuesOf(run, id, source, slot), (input, source, slot) =>
      lazyLink(run, id, input, source, slot, lazy),
    );
    inputs = resolved instanceof Map ? resolved : await resolved;
    const hidden: HiddenValues = { PROMPT: run.prompt, EXTRA_PNGINFO: run.extraPngInfo, UNIQUE_ID: id, DYNPROMPT: run.graph.view() };
    const ctx = new NodeContext(run, id, node.class_type);
    run.started(id);
    if (run.listening) {
      const ref = run.ref(id);
      run.emit({ type: 'executing', data: { node: id, display_node: ref.display_node, prompt_id: run.promptId } });
      run.emit({ type: 'node_started', data: ref });
    }
    if (definition.checkLazyStatus) await lazyStatusRounds(run, id, definition, inputs, hidden, ctx);

    const calls = callCount(definition, inputs);
    const results: CallResult[] = [];
    let blocked = 0;
    for (let index = 0; index < calls; index++) {
      if (run.signal.aborted) throw new InterruptedError();
      const blocker = blockerOf(definition, inputs, index);
      if (blocker) {
        blocked++;
        if (blocker.message !== null) reportBlocked(run, id, node, blocker.message);
        const silent = new ExecutionBlocker(null);
        results.push({ values: definition.outputs.map((o) => (o.isList ? [silent] : silent)), ui: undefined });
        continue;
      }
      ctx.startCall(index);
      let returned: unknown = definition.execute(callArguments(definition, inputs, index, hidden) as never, ctx);
      // Awaited only when it is a promise: most nodes are synchronous, and every await is a turn of the loop.
      if (isThenable(returned)) returned = await returned;
      results.push(normaliseResult(id, node, definition, returned));
    }
    // A lazy input started but not awaited must finish before the run moves on.
    if (lazy.pending.length) await Promise.allSettled(lazy.pending);
    const entry = results.some((r) => r.expand) ? await withExpansions(run, id, definition, results) : mergeResults(definition, results);
    return { entry, blocked: calls > 0 && blocked === calls };
  } catch (error) {
    if (error instanceof NodeFailure) throw error;
    throw new NodeFailure(id, error, inputs ? summarizeInputs(inputs) : {});
  } finally {
    lazy.settled = true;
  }
}

/** The outputs list of `source` at `slot`; a promise only when the run released it and must produce it again. */
function valuesOf(run: RunServices, id: string, source: string, slot: number): unknown[] | Promise<unknown[]> {
  const entry = run.scheduler.value(source);
  if (entry) return entry.outputs[slot]!;
  return run.scheduler.require([source], id).then(() => run.scheduler.value(source)!.outputs[slot]!);
}

/** A memoised evaluation of a lazy linked input: runs the upstream sub-graph on first call. */
function lazyLink(run: RunServices, id: string, input: string, source: string, slot: number, scope: LazyScope) {
  let pending: Promise<unknown[]> | undefined;
  return (): Promise<unknown[]> => {
    if (scope.settled) {
      return Promise.reject(new Error(`Lazy input "${input}" of node ${id} was read after its execute() returned; await it inside execute().`));
    }
    pending ??= (async () => {
      const before = run.startedCount;
      const values = await valuesOf(run, id, source, slot);
      // Upstream nodes ran in between: tell clients which node is current again.
      if (run.startedCount > before) {
        run.emit({ type: 'executing', data: { node: id, display_node: run.ref(id).display_node, prompt_id: run.promptId } });
      }
      return values;
    })();
    // Handled here so a node that never awaits a failing input causes no unhandled rejection; the
    // scheduler has the failure and ends the run with it.
    pending.catch(() => {});
    scope.pending.push(pending);
    return pending;
  };
}

/** ComfyUI's check_lazy_status loop: evaluate what the node asks for until it asks for nothing new. */
async function lazyStatusRounds(
  run: RunServices,
  id: string,
  definition: AnyNodeDefinition,
  inputs: Map<string, ResolvedInput>,
  hidden: HiddenValues,
  ctx: ExecutionContext,
): Promise<void> {
  const evaluated = new Map<string, unknown[]>();
  const lazyValue = (name: string, input: Extract<ResolvedInput, { kind: 'lazy' }>): unknown[] | undefined => {
    if (evaluated.has(name)) return evaluated.get(name);
    if (input.source === undefined) return undefined;
    return run.peek(input.source)?.outputs[input.slot];
  };
  for (;;) {
    const asked = new Set<string>();
    for (let index = 0; index < callCount(definition, inputs); index++) {
      const names = await definition.checkLazyStatus!(lazyStatusArguments(definition, inputs, index, hidden, lazyValue) as never, ctx);
      if (!Array.isArray(names)) throw new TypeError(`checkLazyStatus() of node ${id} must return an array of input names; got ${typeof names}.`);
      for (const name of names) asked.add(String(name));
    }
    const needed = [...asked].filter((name) => {
      const input = inputs.get(name);
      return input?.kind === 'lazy' && !evaluated.has(name);
    });
    if (needed.length === 0) return;
    for (const name of needed) {
      const input = inputs.get(name) as Extract<ResolvedInput, { kind: 'lazy' }>;
      evaluated.set(name, await input.evaluate());
    }
  }
}

/** An ExecutionBlocker with a message, as ComfyUI reports it: an error event for this node; the run goes on. */
function reportBlocked(run: RunServices, id: string, node: ApiNode, message: string): void {
  run.logger.warn(`${node.class_type} #${id}: execution blocked: ${message}`);
  run.emit({
    type: 'execution_error',
    data: {
      prompt_id: run.promptId,
      node_id: id,
      node_type: node.class_type,
      executed: [],
      exception_message: `Execution Blocked: ${message}`,
      exception_type: 'ExecutionBlocked',
      traceback: [],
      current_inputs: {},
      current_outputs: {},
      timestamp: Date.now(),
    },
  });
}

/**
 * The node's entry: its calls merged; calls that expanded first have their sub-graphs added, checked, signed
 * and run (the node lends its slot meanwhile), then their links read back as values.
 */
async function withExpansions(run: RunServices, id: string, definition: AnyNodeDefinition, results: CallResult[]): Promise<CacheEntry> {
  const added: string[] = [];
  for (const result of results) if (result.expand) added.push(...addExpansion(run, id, result.expand));
  await run.signatures.compute(added);
  const outputNodes = added.filter((n) => run.graph.definition(n)?.outputNode === true);
  run.addTargets(outputNodes);
  const linked = new Set<string>();
  for (const result of results) if (result.expand) for (const value of result.values) if (isLink(value)) linked.add(String(value[0]));
  for (const source of linked) checkLinkTarget(run, id, source);
  await run.scheduler.require([...linked, ...outputNodes], id);

  const resolved = results.map((result) => {
    const slots = new Set<number>();
    if (!result.expand) return slots;
    result.values = result.values.map((value, slot) => {
      if (!isLink(value)) return value;
      slots.add(slot);
      return run.scheduler.value(String(value[0]))!.outputs[value[1]]!;
    });
    return slots;
  });
  return mergeResults(definition, results, resolved);
}

/** Adds one expansion to the graph after checking it can run: known classes, links that exist, no cycle. */
function addExpansion(run: RunServices, parent: string, nodes: Record<string, ExpandedNode>): string[] {
  for (const [nodeId, node] of Object.entries(nodes)) {
    if (typeof node?.class_type !== 'string' || typeof node.inputs !== 'object' || node.inputs === null) {
      throw new MalformedPromptError(`Node ${parent} expanded into node "${nodeId}" without a class_type and inputs.`, parent);
    }
    if (!run.registry.get(node.class_type)) {
      throw new MalformedPromptError(
        `Node ${parent} expanded into node "${nodeId}" of class "${node.class_type}", which no loaded node pack defines.`,
        parent,
      );
    }
  }
  const added = run.graph.addExpansion(parent, nodes);
  const downstream = descendantsOf(run.graph, parent);
  for (const nodeId of added) {
    for (const link of run.graph.links(nodeId)) {
      if (!run.graph.has(link.source)) {
        throw new MalformedPromptError(`Node ${parent} expanded into node ${nodeId}, whose input "${link.input}" links to node ${link.source}, which does not exist.`, parent);
      }
      if (downstream.has(link.source)) {
        throw new MalformedPromptError(
          `Node ${parent} expanded into node ${nodeId}, whose input "${link.input}" links to node ${link.source}, which needs node ${parent}'s output: a cycle.`,
          parent,
        );
      }
    }
  }
  const cycles = run.graph.cycles(added);
  if (cycles.length) {
    throw new MalformedPromptError(`Node ${parent} expanded into a sub-graph with a cycle: ${[...cycles[0]!, cycles[0]![0]].join(' -> ')}.`, parent);
  }
  return added;
}

function checkLinkTarget(run: RunServices, parent: string, source: string): void {
  if (!run.graph.has(source)) throw new MalformedPromptError(`Node ${parent} returned a link to node ${source}, which is not in the prompt or its expansion.`, parent);
  if (source === parent || descendantsOf(run.graph, parent).has(source)) {
    throw new MalformedPromptError(`Node ${parent} returned a link to node ${source}, which needs node ${parent}'s own output: a cycle.`, parent);
  }
}

/** `id` and every node downstream of it (those that cannot run before it). */
function descendantsOf(graph: PromptGraph, id: string): Set<string> {
  const seen = new Set([id]);
  const stack = [id];
  while (stack.length) for (const next of graph.consumers(stack.pop()!)) if (!seen.has(next)) seen.add(next) && stack.push(next);
  return seen;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * A node's `ctx`. A class rather than an object of closures: one is made per node run, and its methods are
 * bound once so a node may still pass `ctx.progress` around on its own.
 */
class NodeContext implements ExecutionContext {
  readonly nodeId: string;
  readonly promptId: string;
  readonly paths: HostPaths;
  #log: Logger | undefined;
  #last: { value: number; max: number } | undefined;
  #call = 0;
  #builders = 0;
  #display: string | undefined;

  constructor(
    readonly run: RunServices,
    id: string,
    readonly classType: string,
  ) {
    this.nodeId = id;
    this.promptId = run.promptId;
    this.paths = run.paths;
    this.throwIfAborted = this.throwIfAborted.bind(this);
    this.progress = this.progress.bind(this);
    this.graph = this.graph.bind(this);
  }

  get signal(): AbortSignal {
    return this.run.signal;
  }

  /** Scoped `<class_type>#<id>`, made when first used. */
  get log(): Logger {
    this.#log ??= this.run.logger.child(`${this.classType}#${this.nodeId}`);
    return this.#log;
  }

  throwIfAborted(): void {
    if (this.run.signal.aborted) throw new InterruptedError();
  }

  progress(value: number, max: number, preview?: PreviewImage): void {
    this.throwIfAborted();
    // A repeat of the last value carries no news (several layers may report the same step). A value going
    // back is kept: it is a new pass (a second sampler in the same node), not noise.
    const last = this.#last;
    const stale = last !== undefined && last.max === max && last.value === value;
    if (!stale && Number.isFinite(value) && Number.isFinite(max)) {
      this.#last = { value, max };
      this.#display ??= this.run.graph.origin(this.nodeId).display;
      this.run.emit({ type: 'progress', data: { value, max, prompt_id: this.promptId, node: this.#display, node_id: this.nodeId } });
    }
    if (preview) this.run.emit({ type: 'preview', data: { prompt_id: this.promptId, node: this.nodeId, image: preview } });
  }

  graph(): GraphBuilder {
    return new GraphBuilder(`${this.nodeId}.${this.#call}.${this.#builders++}.`);
  }

  /** Call `index` of a list-mapped node starts: progress and builder numbering restart. */
  startCall(index: number): void {
    this.#last = undefined;
    this.#call = index;
    this.#builders = 0;
  }
}
