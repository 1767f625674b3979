// Discovery of a CLIP text transformer's parts by export scope (transformers' CLIPTextModel as exported by
// torch >= 1.13: "/text_model/encoder/layers.3/self_attn/...", "/text_model/final_layer_norm/...").
// A module's output is found as in modules.ts: the tensor produced inside its scope and read outside it. What the
// text side of the engine derives from these:
// - clip skip: the output of encoder layer i, normalised by the final layer norm (recompute-output.ts);
// - textual inversion: the token embedding lookup's output, fed instead of computed (derive.ts `reuse`), with the
//   lookup table's weight read by the engine.
import { OnnxGraphError } from './errors.ts';
import { indexGraph, type GraphIndex } from './graph-index.ts';
import { computeBoundary, type ModuleBoundary } from './modules.ts';
import type { ModelProto, NodeProto } from './proto.ts';
import { isInside, parseScope } from './scope.ts';

export interface ClipTextStructure {
  /** Scope of the text model, e.g. "text_model" ("" when the encoder sits at the top level). */
  prefix: string;
  /** The output tensor of each encoder layer, in order (layers.0, layers.1, ...). */
  layers: string[];
  /** The final layer norm: its module path, the tensor it normalises (the last layer's output) and its output. */
  finalLayerNorm: { path: string; input: string; output: string };
  /** The token embedding lookup: its output [batch, sequence, width], and the initializer it gathers from. */
  tokenEmbedding: { output: string; weight: string };
}

const LAYER = /^(?:(.*?)\/)?encoder\/layers\.(\d+)(?:\/|$)/;

export function discoverClipText(model: ModelProto): ClipTextStructure {
  const graph = model.graph;
  if (!graph) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const index = indexGraph(graph);
  const scopes = new Map<NodeProto, string>();
  const layerNumbers = new Set<number>();
  let prefix: string | undefined;
  for (const node of graph.node) {
    const scope = parseScope(node.name);
    if (!scope) continue;
    const path = scope.join('/');
    scopes.set(node, path);
    const m = LAYER.exec(path);
    if (m) {
      prefix ??= m[1] ?? '';
      if ((m[1] ?? '') === prefix) layerNumbers.add(Number(m[2]));
    }
  }
  if (prefix === undefined) {
    throw new OnnxGraphError(
      'no "encoder/layers.N" scope in this text encoder: it was not exported with module scope names (torch >= 1.13, un-optimized), so its layers cannot be found',
      'unknown_module',
    );
  }
  const within = (path: string) => (prefix ? `${prefix}/${path}` : path);
  const boundary = (path: string): ModuleBoundary => {
    const inside = (n: NodeProto) => {
      const p = scopes.get(n);
      return p !== undefined && isInside(p, path);
    };
    const nodes = graph.node.filter(inside);
    if (nodes.length === 0) throw new OnnxGraphError(`no node of the text encoder lies in module "${path}"`, 'unknown_module');
    return computeBoundary(path, nodes, index, inside);
  };

  const count = Math.max(...layerNumbers) + 1;
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !layerNumbers.has(i));
  if (missing.length) throw new OnnxGraphError(`the text encoder's layers are not numbered 0..${count - 1}: layers.${missing.join(', layers.')} missing`, 'unknown_module');
  const norm = boundary(within('final_layer_norm'));
  if (norm.inputs.length !== 1 || norm.outputs.length !== 1) {
    throw new OnnxGraphError(`${norm.path} reads ${norm.inputs.length} and yields ${norm.outputs.length} tensors; a layer norm reads and yields one`, 'unknown_module');
  }
  // Each layer's output is what the next stage (the next layer, or the final layer norm) reads from it.
  const layers: string[] = [];
  for (let i = 0; i < count; i++) {
    const own = boundary(within(`encoder/layers.${i}`));
    const next = i + 1 < count ? boundary(within(`encoder/layers.${i + 1}`)).inputs : norm.inputs;
    const out = own.outputs.filter((t) => next.includes(t));
    if (out.length !== 1) {
      throw new OnnxGraphError(`cannot tell the output of ${own.path}: ${out.length} of its outputs (${own.outputs.join(', ')}) go to the next stage`, 'unknown_module');
    }
    layers.push(out[0]!);
  }
  if (layers[count - 1] !== norm.inputs[0]) {
    throw new OnnxGraphError(`${norm.path} does not normalise the last layer's output`, 'unknown_module');
  }
  return {
    prefix,
    layers,
    finalLayerNorm: { path: norm.path, input: norm.inputs[0]!, output: norm.outputs[0]! },
    tokenEmbedding: tokenEmbeddingOf(boundary(within('embeddings/token_embedding')), index),
  };
}

function tokenEmbeddingOf(b: ModuleBoundary, index: GraphIndex): ClipTextStructure['tokenEmbedding'] {
  const gather = b.outputs.length === 1 ? index.producer.get(b.outputs[0]!) : undefined;
  const weight = gather?.opType === 'Gather' ? gather.input[0] : undefined;
  if (!gather || weight === undefined || !index.initializers.has(weight)) {
    throw new OnnxGraphError(`${b.path} is not one Gather from a weight (outputs: ${b.outputs.join(', ') || 'none'})`, 'unknown_module');
  }
  return { output: b.outputs[0]!, weight };
}
