// Producer/consumer lookups over a graph, built once per analysis.
import type { GraphProto, NodeProto } from './proto.ts';

export interface GraphIndex {
  graph: GraphProto;
  /** Tensor name -> the node that produces it (absent for graph inputs and initializers). */
  producer: Map<string, NodeProto>;
  /** Tensor name -> nodes that consume it (a node appears once per tensor even if it reads it twice). */
  consumers: Map<string, NodeProto[]>;
  initializers: Set<string>;
  inputs: Set<string>;
  outputs: Set<string>;
  /** Tensors whose value depends on a graph input (not weights, not constants folded from weights). */
  dynamic: Set<string>;
}

export function indexGraph(graph: GraphProto): GraphIndex {
  const producer = new Map<string, NodeProto>();
  const consumers = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const o of node.output) if (o) producer.set(o, node);
    for (const i of new Set(nodeInputs(node))) {
      if (!i) continue;
      let list = consumers.get(i);
      if (!list) consumers.set(i, (list = []));
      list.push(node);
    }
  }
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const inputs = new Set(graph.input.map((v) => v.name).filter((n) => !initializers.has(n)));
  const outputs = new Set(graph.output.map((v) => v.name));
  // Nodes are topologically sorted in a valid ONNX graph, so one forward pass finds the dynamic tensors.
  const dynamic = new Set<string>(inputs);
  for (const node of graph.node) {
    if (nodeInputs(node).some((i) => dynamic.has(i))) for (const o of node.output) if (o) dynamic.add(o);
  }
  return { graph, producer, consumers, initializers, inputs, outputs, dynamic };
}

/**
 * A node's inputs including the outer-scope tensors its subgraphs (If / Loop / Scan bodies) read, so that
 * reachability and pruning see through control flow.
 */
export function nodeInputs(node: NodeProto): string[] {
  const direct = node.input.filter((i) => i !== '');
  const subgraphs = node.attribute.flatMap((a) => [...(a.g ? [a.g] : []), ...a.graphs]);
  if (subgraphs.length === 0) return direct;
  const outer = new Set<string>();
  for (const g of subgraphs) for (const name of outerReferences(g)) outer.add(name);
  return [...direct, ...outer];
}

/** Names a subgraph reads that it does not define itself (inputs, initializers, or outputs of its own nodes). */
export function outerReferences(graph: GraphProto): string[] {
  const defined = new Set<string>([...graph.input.map((v) => v.name), ...graph.initializer.map((t) => t.name)]);
  const refs = new Set<string>();
  for (const node of graph.node) {
    for (const i of nodeInputs(node)) if (i && !defined.has(i)) refs.add(i);
    for (const o of node.output) if (o) defined.add(o);
  }
  for (const o of graph.output) if (!defined.has(o.name)) refs.add(o.name);
  return [...refs];
}
