// One graph output recomputed by a copy of the module that produces it, fed another tensor. For clip skip: the
// text encoder's last_hidden_state becomes final_layer_norm(output of layer i) while its pooled output (read from
// the same layer norm applied to the last layer) stays what it was, as ComfyUI computes both.
//
// A plain rewiring (pointing final_layer_norm at layer i and pruning the later layers) would be smaller, but it
// would move the pooled output to layer i as well. Here the copy's nodes read the new input, the module's weights
// and constants are shared, and the original module keeps feeding everything else under a renamed tensor; the
// graph output keeps its name, so callers fetch it as before. Whatever only the old output needed is pruned.
import { OnnxGraphError } from './errors.ts';
import { indexGraph } from './graph-index.ts';
import { computeBoundary } from './modules.ts';
import { cloneModel, newNode, type ModelProto, type NodeProto } from './proto.ts';
import { removeUnreachable, type PruneReport } from './prune.ts';
import { isInside, parseScope } from './scope.ts';

export interface RecomputeSpec {
  /** Scope path of the module producing `output` (e.g. "text_model/final_layer_norm"); it must read one tensor. */
  module: string;
  /** The tensor the copy reads instead of the module's input. */
  from: string;
  /** A graph output produced by the module. */
  output: string;
}

export interface RecomputeReport {
  /** Nodes added (the module's copy). */
  copied: number;
  /** The name the module's original result has now (read by whatever else used it). */
  originalRenamed: string;
  removed: PruneReport;
}

export function recomputeOutput(model: ModelProto, spec: RecomputeSpec): { model: ModelProto; report: RecomputeReport } {
  const source = model.graph;
  if (!source) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const index = indexGraph(source);
  const inside = (n: NodeProto) => {
    const scope = parseScope(n.name);
    return scope !== undefined && isInside(scope.join('/'), spec.module);
  };
  const members = source.node.filter(inside);
  if (members.length === 0) throw new OnnxGraphError(`no node lies in module "${spec.module}"`, 'unknown_module');
  const boundary = computeBoundary(spec.module, members, index, inside);
  if (boundary.inputs.length !== 1) {
    throw new OnnxGraphError(`module ${spec.module} reads ${boundary.inputs.length} tensors (${boundary.inputs.join(', ')}); recomputing needs a module that reads one`, 'bad_spec');
  }
  if (!index.outputs.has(spec.output) || !boundary.outputs.includes(spec.output)) {
    throw new OnnxGraphError(`"${spec.output}" is not a graph output produced by module ${spec.module} (its outputs: ${boundary.outputs.join(', ')})`, 'bad_spec');
  }
  if (!index.producer.has(spec.from) && !index.inputs.has(spec.from)) {
    throw new OnnxGraphError(`no node produces tensor "${spec.from}" and it is not a graph input`, 'unknown_tensor');
  }
  if (members.some((n) => n.attribute.some((a) => a.g || a.graphs.length))) {
    throw new OnnxGraphError(`module ${spec.module} holds subgraphs (If / Loop); copying it is not supported`, 'bad_spec');
  }

  const out = cloneModel(model);
  const graph = out.graph!;
  const tag = 'recomputed';
  const renamed = `${spec.output}::original`;
  // The original result keeps feeding its other readers under a new name; the output name goes to the copy.
  for (const node of graph.node) {
    node.input = node.input.map((i) => (i === spec.output ? renamed : i));
    node.output = node.output.map((o) => (o === spec.output ? renamed : o));
  }
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== spec.output);

  const moduleInput = boundary.inputs[0]!;
  const produced = new Set(members.flatMap((n) => n.output));
  const nameOf = (t: string) => (t === spec.output ? t : produced.has(t) ? `${t}::${tag}` : t === moduleInput ? spec.from : t);
  const copies = members.map((n) =>
    newNode({
      name: `${n.name}::${tag}`,
      opType: n.opType,
      domain: n.domain,
      input: n.input.map((i) => (i === '' ? i : nameOf(i))),
      output: n.output.map((o) => (o === '' ? o : nameOf(o))),
      attribute: n.attribute,
      docString: n.docString,
    }),
  );
  // Right after the module: everything the copy reads (the new input comes from an earlier layer) exists by then.
  const names = new Set(members.map((n) => n.name));
  const last = graph.node.reduce((at, n, i) => (names.has(n.name) ? i : at), -1);
  graph.node.splice(last + 1, 0, ...copies);
  const removed = removeUnreachable(graph);
  return { model: out, report: { copied: copies.length, originalRenamed: renamed, removed } };
}
