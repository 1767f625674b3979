/**
 * The ready-set scheduler of one run, with ComfyUI's semantics (its `ExecutionList`):
 *
 * - Nodes are staged from the outputs upstream: a staged node waits for its non-lazy sources; a source whose
 *   output is in the run or the cache is not run (and nothing upstream of a cached node runs for it).
 * - Of the ready nodes, output nodes go first, then nodes feeding an output, then nodes two links away, then
 *   the rest in staging order (ComfyUI's "UX-friendly" pick: a preview shows as soon as it can).
 * - Nodes run one at a time, except `concurrent` ones (ComfyUI's async nodes), which start as soon as they are
 *   ready and run alongside everything else. The one-at-a-time slot is lent while its holder waits for
 *   the graph (a lazy input, an expansion), and given back to it before any new node starts.
 * - `require` stages nodes for a running node (a lazy input asked for, the nodes an expansion linked) and waits
 *   for them; a wait that can never end (the requested node needs the requester) is reported as a cycle.
 * - The first failure stops the run: no new node starts, running ones are told (the run's abort), and
 *   `run` rejects with that failure once they have settled.
 */
import type { CacheEntry } from '../cache.ts';
import type { PromptGraph } from '../prompt-graph.ts';
import { MalformedPromptError } from '../prompt-graph.ts';

/** What the scheduler asks of the run it schedules. */
export interface SchedulerHost {
  readonly graph: PromptGraph;
  /** The cached entry for a node, if any (no counting: the run counted its hits when it started). */
  cached(id: string): CacheEntry | undefined;
  /** A staged node was found in the cache: report it. */
  onCacheHit(id: string, entry: CacheEntry): void;
  /** Runs a node whose non-lazy sources are available; resolves with its outputs. */
  execute(id: string): Promise<CacheEntry>;
  /** Called once, with the first failure: stop running nodes. */
  abort(reason: unknown): void;
}

interface Staged {
  depsLeft: number;
  rank: number;
  seq: number;
  concurrent: boolean;
}

interface Suspension {
  requester: string;
  remaining: Set<string>;
  resolve(): void;
  reject(error: unknown): void;
}

const RANKS = 4;

export class Scheduler {
  readonly #host: SchedulerHost;
  readonly #available = new Map<string, CacheEntry>();
  readonly #staged = new Map<string, Staged>();
  readonly #waitingOn = new Map<string, string[]>();
  readonly #consumersLeft = new Map<string, number>();
  readonly #keep = new Set<string>();
  readonly #readyConcurrent: string[] = [];
  readonly #readyExclusive: string[][] = Array.from({ length: RANKS }, () => []);
  readonly #running = new Set<string>();
  readonly #suspensions = new Set<Suspension>();
  readonly #resumers: Array<{ id: string; grant(): void }> = [];
  #slot: string | null = null;
  /** Nodes that lent the slot while they wait for the graph, with how many waits they have open. */
  readonly #lent = new Map<string, number>();
  #seq = 0;
  #failure: { error: unknown } | undefined;
  #wake: (() => void) | undefined;
  #dirty = false;

  constructor(host: SchedulerHost) {
    this.#host = host;
  }

  /** The outputs of a node available in this run (undefined: not produced yet, or released). */
  value(id: string): CacheEntry | undefined {
    return this.#available.get(id);
  }

  /** Runs until `targets` and everything staged meanwhile are done; rejects with the first failure. */
  async run(targets: readonly string[]): Promise<void> {
    for (const id of targets) this.#keep.add(id);
    this.#stage(targets);
    for (;;) {
      this.#dirty = false;
      if (!this.#failure) this.#startReady();
      if (!this.#failure && this.#running.size > 0 && this.#deadlocked()) {
        this.fail(this.#cycleError());
      }
      if (this.#running.size === 0) break;
      // Something changed while starting nodes (a node's synchronous part staged more): look again first.
      if (this.#dirty) continue;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    if (this.#failure) throw this.#failure.error;
    const stuck = [...this.#staged.keys()];
    if (stuck.length) {
      throw new MalformedPromptError(`Nodes ${stuck.join(', ')} could not run: they wait for each other (a cycle).`, stuck[0]!);
    }
  }

  /**
   * Makes `ids` available for the running node `requester`, running what they need; resolves at once when
   * they are available already. The requester's slot is lent out meanwhile.
   */
  async require(ids: readonly string[], requester: string): Promise<void> {
    if (this.#failure) throw this.#failure.error;
    // Kept for the run: the requester reads them after it resumes, whoever else consumed them meanwhile.
    for (const id of ids) this.#keep.add(id);
    this.#stage(ids);
    const remaining = new Set(ids.filter((id) => !this.#available.has(id)));
    if (remaining.size === 0) return;
    // The slot is lent while the requester waits; a node waiting on two evaluations at once takes it back
    // when the last one ends.
    const lends = this.#slot === requester || this.#lent.has(requester);
    if (lends) {
      this.#lent.set(requester, (this.#lent.get(requester) ?? 0) + 1);
      if (this.#slot === requester) this.#slot = null;
    }
    try {
      await new Promise<void>((resolve, reject) => {
        this.#suspensions.add({ requester, remaining, resolve, reject });
        this.#notify();
      });
    } finally {
      if (lends) {
        const left = this.#lent.get(requester)! - 1;
        if (left > 0) this.#lent.set(requester, left);
        else {
          this.#lent.delete(requester);
          await this.#reacquire(requester);
        }
      }
    }
  }

  /** Records the run's first failure and stops starting nodes. */
  fail(error: unknown): void {
    if (this.#failure) return;
    this.#failure = { error };
    this.#host.abort(error);
    for (const suspension of this.#suspensions) suspension.reject(error);
    this.#suspensions.clear();
    for (const resumer of this.#resumers.splice(0)) resumer.grant();
    this.#notify();
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Stages `ids` and what they need; a node in the run or the cache is available at once. */
  #stage(ids: readonly string[]): void {
    const graph = this.#host.graph;
    const stack = [...ids].reverse();
    while (stack.length) {
      const id = stack.pop()!;
      if (this.#available.has(id) || this.#staged.has(id) || this.#running.has(id)) continue;
      const { definition } = graph.require(id);
      const hit = this.#host.cached(id);
      if (hit) {
        this.#host.onCacheHit(id, hit);
        this.#becomeAvailable(id, hit);
        continue;
      }
      const links = graph.links(id);
      const strong = new Set<string>();
      for (const link of links) {
        const source = graph.require(link.source, { node: id, input: link.input });
        const count = source.definition.outputs.length;
        if (!Number.isInteger(link.slot) || link.slot < 0 || link.slot >= count) {
          const names = source.definition.outputs.map((o) => o.name ?? o.type).join(', ') || 'none';
          throw new MalformedPromptError(
            `Input "${link.input}" of node ${id} (${graph.node(id)!.class_type}) links to output slot ${link.slot} of node ${link.source} (${source.node.class_type}), which has ${count} output(s): ${names}.`,
            id,
          );
        }
        if (!link.lazy) strong.add(link.source);
      }
      for (const source of new Set(links.map((l) => l.source))) this.#consumersLeft.set(source, (this.#consumersLeft.get(source) ?? 0) + 1);
      const waiting = [...strong].filter((s) => !this.#available.has(s));
      const state: Staged = { depsLeft: waiting.length, rank: this.#rank(id), seq: this.#seq++, concurrent: definition.concurrent === true };
      this.#staged.set(id, state);
      for (const source of waiting) (this.#waitingOn.get(source) ?? this.#waitingOn.set(source, []).get(source)!).push(id);
      // Reversed onto the stack, so sources are staged (and tie-broken) in input order.
      for (let i = waiting.length - 1; i >= 0; i--) stack.push(waiting[i]!);
      if (state.depsLeft === 0) this.#makeReady(id, state);
    }
  }

  /** ComfyUI's pick order: 0 output node, 1 feeds one, 2 two links from one, 3 anything else. */
  #rank(id: string): number {
    const graph = this.#host.graph;
    const isOutput = (node: string) => graph.definition(node)?.outputNode === true;
    if (isOutput(id)) return 0;
    const next = graph.consumers(id);
    if (next.some(isOutput)) return 1;
    if (next.some((c) => graph.consumers(c).some(isOutput))) return 2;
    return 3;
  }

  #makeReady(id: string, state: Staged): void {
    if (state.concurrent) this.#readyConcurrent.push(id);
    else this.#readyExclusive[state.rank]!.push(id);
  }

  #startReady(): void {
    while (this.#readyConcurrent.length) this.#start(this.#readyConcurrent.shift()!, false);
    if (this.#slot !== null) return;
    const resumer = this.#resumers.shift();
    if (resumer) {
      resumer.grant();
      return;
    }
    for (const queue of this.#readyExclusive) {
      if (queue.length) {
        this.#start(queue.shift()!, true);
        return;
      }
    }
  }

  #start(id: string, exclusive: boolean): void {
    this.#staged.delete(id);
    this.#running.add(id);
    if (exclusive) this.#slot = id;
    void this.#runTask(id);
  }

  async #runTask(id: string): Promise<void> {
    await undefined; // the node starts after the loop has finished picking (its synchronous part may stage more)
    try {
      const entry = await this.#host.execute(id);
      if (!this.#failure) this.#complete(id, entry);
    } catch (error) {
      this.fail(error);
    } finally {
      this.#running.delete(id);
      if (this.#slot === id) this.#slot = null;
      this.#notify();
    }
  }

  /** A node's outputs are in the run: its waiting consumers and requesters move on. */
  #becomeAvailable(id: string, entry: CacheEntry): void {
    this.#available.set(id, entry);
    for (const consumer of this.#waitingOn.get(id) ?? []) {
      const state = this.#staged.get(consumer);
      if (state && --state.depsLeft === 0) this.#makeReady(consumer, state);
    }
    this.#waitingOn.delete(id);
    this.#settleSuspensions(id);
  }

  #complete(id: string, entry: CacheEntry): void {
    this.#becomeAvailable(id, entry);
    // Sources no staged node still needs are dropped from the run (the output cache keeps its own copy).
    for (const source of this.#host.graph.sources(id)) {
      const left = (this.#consumersLeft.get(source) ?? 1) - 1;
      this.#consumersLeft.set(source, left);
      if (left <= 0 && !this.#keep.has(source)) this.#available.delete(source);
    }
  }

  #settleSuspensions(id: string): void {
    for (const suspension of this.#suspensions) {
      if (!suspension.remaining.delete(id)) continue;
      if (suspension.remaining.size === 0) {
        this.#suspensions.delete(suspension);
        suspension.resolve();
      }
    }
  }

  #reacquire(id: string): Promise<void> {
    if (this.#failure) return Promise.resolve();
    if (this.#slot === null && this.#resumers.length === 0) {
      this.#slot = id;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#resumers.push({
        id,
        grant: () => {
          if (!this.#failure) this.#slot = id;
          resolve();
        },
      });
      this.#notify();
    });
  }

  /** Every running node waits for the graph and nothing can start: they wait for each other. */
  #deadlocked(): boolean {
    if (this.#readyConcurrent.length || this.#resumers.length) return false;
    if (this.#slot === null && this.#readyExclusive.some((q) => q.length)) return false;
    const suspended = new Set([...this.#suspensions].map((s) => s.requester));
    return [...this.#running].every((id) => suspended.has(id));
  }

  #cycleError(): MalformedPromptError {
    const [first] = this.#suspensions;
    const requester = first?.requester ?? [...this.#running][0] ?? '';
    const waitsFor = first ? [...first.remaining].join(', ') : '';
    return new MalformedPromptError(
      `Node ${requester} waits for node(s) ${waitsFor}, which need node ${requester}'s own output: a cycle through a lazy input or an expansion.`,
      requester,
    );
  }

  #notify(): void {
    this.#dirty = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
