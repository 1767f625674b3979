// Removal of everything the graph outputs no longer need: nodes, initializers, value_info, unused inputs.
import { indexGraph, nodeInputs } from './graph-index.ts';
import { tensorByteSize, type GraphProto } from './proto.ts';

export interface PruneReport {
  nodes: number;
  initializers: number;
  /** Bytes of weight data no longer referenced (embedded or external). */
  initializerBytes: number;
  valueInfo: number;
  /** Graph inputs dropped because nothing reads them any more. */
  inputs: string[];
}

/** Prunes `graph` in place (callers pass a clone) and says what went. */
export function removeUnreachable(graph: GraphProto): PruneReport {
  const index = indexGraph(graph);
  const needed = new Set<string>(graph.output.map((o) => o.name));
  const keep = new Set<number>();
  const stack = [...needed];
  const nodeIndex = new Map(graph.node.map((n, i) => [n, i]));
  while (stack.length) {
    const name = stack.pop()!;
    const node = index.producer.get(name);
    if (!node) continue;
    const i = nodeIndex.get(node)!;
    if (keep.has(i)) continue;
    keep.add(i);
    for (const input of nodeInputs(node)) {
      if (!needed.has(input)) {
        needed.add(input);
        stack.push(input);
      }
    }
  }
  const before = { nodes: graph.node.length, inits: graph.initializer, vi: graph.valueInfo.length, inputs: graph.input };
  graph.node = graph.node.filter((_, i) => keep.has(i));
  const droppedInits = graph.initializer.filter((t) => !needed.has(t.name));
  graph.initializer = graph.initializer.filter((t) => needed.has(t.name));
  const produced = new Set(graph.node.flatMap((n) => n.output));
  graph.valueInfo = graph.valueInfo.filter((v) => needed.has(v.name) && produced.has(v.name));
  const droppedInputs = graph.input.filter((v) => !needed.has(v.name)).map((v) => v.name);
  graph.input = graph.input.filter((v) => needed.has(v.name));
  return {
    nodes: before.nodes - graph.node.length,
    initializers: droppedInits.length,
    initializerBytes: droppedInits.reduce((n, t) => n + tensorByteSize(t), 0),
    valueInfo: before.vi - graph.valueInfo.length,
    inputs: droppedInputs.filter((n) => !before.inits.some((t) => t.name === n)),
  };
}
