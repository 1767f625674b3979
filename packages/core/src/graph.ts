/**
 * The dependency structure of an API prompt: who feeds whom. Used by validation (cycles, ancestors of
 * outputs) and by the executor (what to run, in which order).
 */
import { isLink, type ApiPrompt } from './workflow/api-format.ts';

/** The ids of the nodes an input list links from (duplicates removed, dangling ids kept). */
export function linkedSources(inputs: Record<string, unknown>): string[] {
  const sources = new Set<string>();
  for (const value of Object.values(inputs)) if (isLink(value)) sources.add(String(value[0]));
  return [...sources];
}

/** Every node reachable upstream from `targets`, targets included. Links to unknown ids are skipped. */
export function ancestorsOf(prompt: ApiPrompt, targets: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  const stack = [...targets];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id) || !Object.hasOwn(prompt, id)) continue;
    seen.add(id);
    for (const src of linkedSources(prompt[id]!.inputs)) stack.push(src);
  }
  return seen;
}

/**
 * Nodes that lie on a cycle among `nodes` (Tarjan's strongly connected components; a component of size > 1,
 * or a node linking to itself, is a cycle). Empty when the sub-graph is acyclic.
 */
export function findCycles(prompt: ApiPrompt, nodes: Iterable<string> = Object.keys(prompt)): string[][] {
  const within = new Set(nodes);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let counter = 0;

  // Iterative Tarjan, so a 10,000-node chain does not overflow the call stack.
  for (const start of within) {
    if (index.has(start)) continue;
    const work: Array<{ id: string; next: number; deps: string[] }> = [];
    const open = (id: string) => {
      index.set(id, counter);
      low.set(id, counter);
      counter++;
      stack.push(id);
      onStack.add(id);
      work.push({ id, next: 0, deps: linkedSources(prompt[id]?.inputs ?? {}).filter((d) => within.has(d)) });
    };
    open(start);
    while (work.length) {
      const frame = work[work.length - 1]!;
      if (frame.next < frame.deps.length) {
        const dep = frame.deps[frame.next++]!;
        if (!index.has(dep)) open(dep);
        else if (onStack.has(dep)) low.set(frame.id, Math.min(low.get(frame.id)!, index.get(dep)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.id, Math.min(low.get(parent.id)!, low.get(frame.id)!));
      if (low.get(frame.id) === index.get(frame.id)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.id);
        const selfLoop = component.length === 1 && frame.deps.includes(frame.id);
        if (component.length > 1 || selfLoop) cycles.push(component.reverse());
      }
    }
  }
  return cycles;
}

/**
 * A topological order of `nodes` (dependencies first). Ties keep the numeric-then-lexical id order, so runs
 * are deterministic. Throws if the sub-graph has a cycle (validate first).
 */
export function topologicalOrder(prompt: ApiPrompt, nodes: Iterable<string>): string[] {
  const within = new Set(nodes);
  const pending = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const id of within) {
    const deps = linkedSources(prompt[id]?.inputs ?? {}).filter((d) => within.has(d));
    pending.set(id, deps.length);
    for (const d of deps) (dependents.get(d) ?? dependents.set(d, []).get(d)!).push(id);
  }
  const ready = [...within].filter((id) => pending.get(id) === 0).sort(compareIds);
  const order: string[] = [];
  while (ready.length) {
    const id = ready.shift()!;
    order.push(id);
    for (const next of dependents.get(id) ?? []) {
      const left = pending.get(next)! - 1;
      pending.set(next, left);
      if (left === 0) insertSorted(ready, next);
    }
  }
  if (order.length !== within.size) throw new Error('The graph has a cycle');
  return order;
}

/**
 * `nodes` reordered so that every node comes after the nodes it links from (among `nodes`), otherwise keeping
 * their order; linear in the links (a depth-first walk). Unlike topologicalOrder it does not throw on a
 * cycle: a node already being visited is not waited for.
 */
export function upstreamFirst(prompt: ApiPrompt, nodes: readonly string[]): string[] {
  const within = new Set(nodes);
  const done = new Set<string>();
  const order: string[] = [];
  for (const start of nodes) {
    if (done.has(start)) continue;
    done.add(start);
    const stack: Array<{ id: string; deps: string[]; next: number }> = [
      { id: start, deps: linkedSources(prompt[start]?.inputs ?? {}), next: 0 },
    ];
    while (stack.length) {
      const frame = stack[stack.length - 1]!;
      const dep = frame.deps[frame.next++];
      if (dep === undefined) {
        order.push(frame.id);
        stack.pop();
      } else if (within.has(dep) && !done.has(dep)) {
        done.add(dep);
        stack.push({ id: dep, deps: linkedSources(prompt[dep]?.inputs ?? {}), next: 0 });
      }
    }
  }
  return order;
}

/**
 * For each node, the outputs that depend on it (up to `max`), in one pass over the graph: the
 * nodes of a cycle share one set (the cycle is one node of the condensed graph), and a node's set is built
 * after its consumers' (a depth-first post-order along the consumer links).
 */
export function outputsDownstream(
  nodes: readonly string[],
  outputs: readonly string[],
  consumers: Map<string, string[]>,
  cycles: string[][],
  max: number,
): Map<string, string[]> {
  const representative = new Map<string, string>();
  for (const cycle of cycles) for (const id of cycle) representative.set(id, cycle[0]!);
  const rep = (id: string) => representative.get(id) ?? id;
  const next = new Map<string, Set<string>>();
  for (const [source, list] of consumers) {
    for (const consumer of list) {
      const from = rep(source);
      const to = rep(consumer);
      if (from !== to) (next.get(from) ?? next.set(from, new Set()).get(from)!).add(to);
    }
  }
  const own = new Map<string, string[]>();
  for (const output of outputs) (own.get(rep(output)) ?? own.set(rep(output), []).get(rep(output))!).push(output);

  const sets = new Map<string, string[]>();
  for (const start of nodes.map(rep)) {
    if (sets.has(start)) continue;
    const stack: Array<{ id: string; consumers: string[]; at: number }> = [{ id: start, consumers: [...(next.get(start) ?? [])], at: 0 }];
    sets.set(start, []); // visiting: the condensed graph has no cycles, so this is never read before it is filled
    while (stack.length) {
      const frame = stack[stack.length - 1]!;
      const consumer = frame.consumers[frame.at++];
      if (consumer !== undefined) {
        if (!sets.has(consumer)) {
          sets.set(consumer, []);
          stack.push({ id: consumer, consumers: [...(next.get(consumer) ?? [])], at: 0 });
        }
        continue;
      }
      stack.pop();
      const found = new Set<string>(own.get(frame.id) ?? []);
      for (const c of frame.consumers) {
        for (const output of sets.get(c)!) {
          if (found.size >= max) break;
          found.add(output);
        }
      }
      sets.set(frame.id, [...found].slice(0, max));
    }
  }
  return new Map(nodes.map((id) => [id, sets.get(rep(id)) ?? []]));
}

/** Orders ids numerically when both are numbers ("2" < "10"), else lexically. */
export function compareIds(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function insertSorted(list: string[], id: string): void {
  let i = 0;
  while (i < list.length && compareIds(list[i]!, id) < 0) i++;
  list.splice(i, 0, id);
}
