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
  #done: (() => void) | undefined;
  #pumping = false;
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
    await new Promise<void>((resolve) => {
      this.#done = resolve;
      this.#pump();
    });
    if (this.#failure) throw this.#failure.error;
    const stuck = [...this.#staged.keys()];
    if (stuck.length) {
      throw new MalformedPromptError(`Nodes ${stuck.join(', ')} could not run: they wait for each other (a cycle).`, stuck[0]!);
    }
  }

  /**
   * Starts what can start, after anything changed (a node done, a wait begun, a failure). Synchronous, so a
   * node's completion starts the next one without a turn of the event loop; a call made while pumping (a
   * node's synchronous part staging more) makes the running pump look again.
   */
  #pump(): void {
    if (this.#pumping) {
      this.#dirty = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#dirty = false;
        if (!this.#failure) this.#startReady();
        if (!this.#failure && this.#running.size > 0 && this.#deadlocked()) this.fail(this.#cycleError());
      } while (this.#dirty);
    } finally {
      this.#pumping = false;
    }
    if (this.#running.size === 0 && this.#done) {
      const done = this.#done;
      this.#done = undefined;
      done();
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
      const strong = this.#strongSources(id);
      for (const source of graph.sources(id)) this.#consumersLeft.set(source, (this.#consumersLeft.get(source) ?? 0) + 1);
      let depsLeft = 0;
      for (const source of strong) {
        if (this.#available.has(source)) continue;
        depsLeft++;
        const waiting = this.#waitingOn.get(source);
        if (waiting) waiting.push(id);
        else this.#waitingOn.set(source, [id]);
      }
      const state: Staged = { depsLeft, rank: this.#rank(id), seq: this.#seq++, concurrent: definition.concurrent === true };
      this.#staged.set(id, state);
      // Reversed onto the stack, so sources are staged (and tie-broken) in input order.
      for (let i = strong.length - 1; i >= 0; i--) if (!this.#available.has(strong[i]!)) stack.push(strong[i]!);
      if (state.depsLeft === 0) this.#makeReady(id, state);
    }
  }

  /**
   * The distinct non-lazy sources of a staged node, each checked to exist with the output slot its link
   * reads (validation did this for a submitted prompt; an expansion is checked here).
   */
  #strongSources(id: string): string[] {
    const graph = this.#host.graph;
    const strong: string[] = [];
    for (const link of graph.links(id)) {
      const source = graph.require(link.source, { node: id, input: link.input });
      const count = source.definition.outputs.length;
      if (!Number.isInteger(link.slot) || link.slot < 0 || link.slot >= count) {
        const names = source.definition.outputs.map((o) => o.name ?? o.type).join(', ') || 'none';
        throw new MalformedPromptError(
          `Input "${link.input}" of node ${id} (${graph.node(id)!.class_type}) links to output slot ${link.slot} of node ${link.source} (${source.node.class_type}), which has ${count} output(s): ${names}.`,
          id,
        );
      }
      if (!link.lazy && !strong.includes(link.source)) strong.push(link.source);
    }
    return strong;
  }

  /** ComfyUI's pick order: 0 output node, 1 feeds one, 2 two links from one, 3 anything else. */
  #rank(id: string): number {
    if (this.#isOutput(id)) return 0;
    const graph = this.#host.graph;
    let rank = 3;
    for (const consumer of graph.consumers(id)) {
      if (this.#isOutput(consumer)) return 1;
      if (rank === 3) for (const next of graph.consumers(consumer)) if (this.#isOutput(next)) rank = 2;
    }
    return rank;
  }

  #isOutput(id: string): boolean {
    return this.#host.graph.definition(id)?.outputNode === true;
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
    if (this.#suspensions.size === 0 || this.#readyConcurrent.length || this.#resumers.length) return false;
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
    this.#pump();
  }
}
