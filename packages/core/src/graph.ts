/**
 * Graph algorithms over node ids, independent of what a node is: each takes the nodes and a function giving
 * a node's dependencies (the nodes it links from). The prompt graph (`prompt-graph.ts`) supplies that function
 * under its one rule for "a node's links", so validation, signatures and the executor agree.
 */

/** The nodes `id` links from (duplicates allowed, ids outside the graph ignored by the callers). */
export type Dependencies = (id: string) => readonly string[];

/** Every node reachable upstream from `targets`, targets included; `exists` filters out dangling ids. */
export function ancestorsOf(targets: Iterable<string>, deps: Dependencies, exists: (id: string) => boolean): Set<string> {
  const seen = new Set<string>();
  const stack = [...targets];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id) || !exists(id)) continue;
    seen.add(id);
    for (const src of deps(id)) stack.push(src);
  }
  return seen;
}

/**
 * Nodes that lie on a cycle among `nodes` (Tarjan's strongly connected components; a component of size > 1,
 * or a node linking to itself, is a cycle). Empty when the sub-graph is acyclic.
 */
export function findCycles(nodes: Iterable<string>, deps: Dependencies): string[][] {
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
      work.push({ id, next: 0, deps: deps(id).filter((d) => within.has(d)) });
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
 * `nodes` reordered so that every node comes after the nodes it links from (among `nodes`), otherwise keeping
 * their order; linear in the links (a depth-first walk). Unlike topologicalOrder it does not throw on a
 * cycle: a node already being visited is not waited for.
 */
export function upstreamFirst(nodes: readonly string[], deps: Dependencies): string[] {
  const within = new Set(nodes);
  const done = new Set<string>();
  const order: string[] = [];
  for (const start of nodes) {
    if (done.has(start)) continue;
    done.add(start);
    const stack: Array<{ id: string; deps: readonly string[]; next: number }> = [
      { id: start, deps: deps(start), next: 0 },
    ];
    while (stack.length) {
      const frame = stack[stack.length - 1]!;
      const dep = frame.deps[frame.next++];
      if (dep === undefined) {
        order.push(frame.id);
        stack.pop();
      } else if (within.has(dep) && !done.has(dep)) {
        done.add(dep);
        stack.push({ id: dep, deps: deps(dep), next: 0 });
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
