// Derived graphs for TGATE and DeepCache. A derivation takes { capture, reuse } over tensor names (module
// outputs found by discoverUNet, DeepCache's deep feature) and returns a new model:
// - capture: the tensors become extra graph outputs (the full graph still runs);
// - reuse: the tensors become graph inputs, their producers are detached, and everything no longer reachable
//   from the outputs is removed (for attn2: to_q/to_k/to_v, the softmax, to_out, their weights, norm2, and
//   encoder_hidden_states itself once no cross-attention is left).
// Specs compose: { reuse: attn2 outputs, capture: attn1 outputs } is "gated step that refreshes the self-attention
// cache"; { reuse: [deepFeature], capture: ... } is a DeepCache shallow step that also captures.
import { OnnxGraphError } from './errors.ts';
import { indexGraph } from './graph-index.ts';
import { cloneModel, makeValueInfo, valueInfoType, TensorProto_DataType, tensorByteSize, type ModelProto, type ValueInfoProto } from './proto.ts';
import { removeUnreachable, type PruneReport } from './prune.ts';
import { inferShapes, type TensorInfo } from './shapes.ts';

export interface DerivationSpec {
  /** Tensors to add as graph outputs. */
  capture?: string[];
  /** Tensors to feed as graph inputs instead of computing them. */
  reuse?: string[];
  /**
   * Graph outputs of the source to keep (default: all). A DeepCache shallow graph cut from an If-gated graph
   * keeps only ['out_sample']: the gates' outputs are graph outputs there and would keep the deep path alive.
   */
  outputs?: string[];
}

export interface TensorSignature {
  name: string;
  /** ONNX element type (1 = float32, 10 = float16). */
  elemType: number;
  /** Fixed sizes, or symbolic names for dims that follow the model's symbolic input dims ("batch"). */
  dims?: Array<number | string>;
}

export interface DerivationReport {
  spec: { capture: string[]; reuse: string[]; outputs?: string[] };
  /** Every input the derived graph expects, in order, with its type. */
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  /** Original graph inputs the derived graph no longer reads (e.g. encoder_hidden_states after attn2 reuse). */
  droppedInputs: string[];
  removed: PruneReport;
  kept: { nodes: number; initializers: number; initializerBytes: number };
  /** Why new inputs/outputs were declared without shapes, if they were (shape inference failed). */
  notes: string[];
}

export interface DeriveOptions {
  /** Folder of the model (to read small external constants for shape inference). */
  baseDir?: string;
  /**
   * Concrete sizes for the model's symbolic input dims, used to infer the new inputs' shapes; defaults to
   * trying 16 and 32 for every symbolic dim. Dims of new inputs that change with a symbolic input dim get its
   * name (or a product of names, e.g. "height*width"); others are fixed.
   */
  symbolSizes?: Record<string, number>;
}

export function deriveModel(model: ModelProto, spec: DerivationSpec, options: DeriveOptions = {}): { model: ModelProto; report: DerivationReport } {
  const capture = [...new Set(spec.capture ?? [])];
  const reuse = [...new Set(spec.reuse ?? [])];
  const graph0 = model.graph;
  if (!graph0) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const both = capture.filter((t) => reuse.includes(t));
  if (both.length) throw new OnnxGraphError(`a tensor cannot be both captured and reused: ${both.join(', ')}`, 'bad_spec');
  const index = indexGraph(graph0);
  for (const name of [...capture, ...reuse]) {
    if (!index.producer.has(name)) {
      const why = index.inputs.has(name) ? 'it is already a graph input' : index.initializers.has(name) ? 'it is a weight' : 'no node produces it';
      throw new OnnxGraphError(`cannot capture or reuse tensor "${name}": ${why}. Use the output names discoverUNet reports (e.g. attention[i].output).`, 'unknown_tensor');
    }
  }
  const notes: string[] = [];
  const signatures = signaturesOf(model, [...capture, ...reuse], options, notes);

  const out = cloneModel(model);
  const graph = out.graph!;
  for (const name of reuse) {
    // Detach the producer's output (a tensor has one producer); pruning then drops the producer if nothing
    // else needs it.
    for (const node of graph.node) {
      const k = node.output.indexOf(name);
      if (k >= 0) node.output[k] = `${name}::detached`;
    }
    graph.input.push(toValueInfo(signatures.get(name)!));
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== name);
  }
  if (spec.outputs) {
    const missing = spec.outputs.filter((o) => !graph.output.some((g) => g.name === o));
    if (missing.length) throw new OnnxGraphError(`outputs ${missing.join(', ')} are not graph outputs of the source (it has ${graph.output.map((o) => o.name).join(', ')})`, 'bad_spec');
    graph.output = graph.output.filter((o) => spec.outputs!.includes(o.name));
  }
  const existingOutputs = new Set(graph.output.map((o) => o.name));
  for (const name of capture) if (!existingOutputs.has(name)) graph.output.push(toValueInfo(signatures.get(name)!));

  const originalInputs = graph0.input.map((v) => v.name).filter((n) => !index.initializers.has(n));
  const removed = removeUnreachable(graph);
  // A reuse tensor whose consumers all vanished (e.g. reusing attn2 inside a block that a DeepCache cut
  // removed) would be an input nothing reads: removeUnreachable already dropped it, which is what we want.
  const kept = {
    nodes: graph.node.length,
    initializers: graph.initializer.length,
    initializerBytes: graph.initializer.reduce((n, t) => n + tensorByteSize(t), 0),
  };
  const inits = new Set(graph.initializer.map((t) => t.name));
  const report: DerivationReport = {
    spec: { capture, reuse, ...(spec.outputs ? { outputs: [...spec.outputs] } : {}) },
    inputs: graph.input.filter((v) => !inits.has(v.name)).map(signatureOfValueInfo),
    outputs: graph.output.map(signatureOfValueInfo),
    droppedInputs: originalInputs.filter((n) => !graph.input.some((v) => v.name === n)),
    removed,
    kept,
    notes,
  };
  return { model: out, report };
}

function toValueInfo(sig: TensorSignature): ValueInfoProto {
  return makeValueInfo(sig.name, sig.elemType, sig.dims);
}

function signatureOfValueInfo(v: ValueInfoProto): TensorSignature {
  const t = valueInfoType(v);
  const dims = t.dims?.map((d, i) => d ?? `unk_${v.name}_${i}`);
  return { name: v.name, elemType: t.elemType, ...(dims ? { dims } : {}) };
}

/**
 * The input dims that can change size independently, each with the shapes inferred when it doubles. Dims that
 * the graph ties together cannot: optimum <= 1.23 names the UNet's timestep dim "steps", which the graph
 * expands to the sample's "batch_size", so doubling either alone fails to broadcast. Such dims are doubled
 * together and named after the one declared first (the sample's).
 */
function symbolGroups(symbols: string[], shapesWith: (bump: ReadonlySet<string>) => Map<string, TensorInfo>): Array<{ name: string; shapes: Map<string, TensorInfo> }> {
  const attempt = (group: string[]) => {
    try {
      return shapesWith(new Set(group));
    } catch {
      return undefined;
    }
  };
  const groups: Array<{ name: string; shapes: Map<string, TensorInfo> }> = [];
  const grouped = new Set<string>();
  for (const s of symbols) {
    if (grouped.has(s)) continue;
    const alone = attempt([s]);
    if (alone) {
      groups.push({ name: s, shapes: alone });
      continue;
    }
    // Tied to another dim: the first later one with which it doubles cleanly.
    let group: string[] = [s];
    let shapes: Map<string, TensorInfo> | undefined;
    for (const other of symbols.slice(symbols.indexOf(s) + 1)) {
      if (grouped.has(other)) continue;
      shapes = attempt([s, other]);
      if (shapes) {
        group = [s, other];
        break;
      }
    }
    if (!shapes) throw new OnnxGraphError(`input dim ${s} cannot change size alone or with any one other input dim`, 'shape_inference');
    for (const member of group) grouped.add(member);
    groups.push({ name: s, shapes });
  }
  return groups;
}

/**
 * Element type and shape of inner tensors with symbolic dims: shapes are inferred once with every symbolic input
 * dim at a base size, then once per symbolic dim at another size; a dim that moves with input dim "batch" is
 * named "batch", one that moves with both "height" and "width" is "height*width".
 */
export function signaturesOf(model: ModelProto, names: string[], options: DeriveOptions = {}, notes: string[] = []): Map<string, TensorSignature> {
  const result = new Map<string, TensorSignature>();
  if (names.length === 0) return result;
  const graph = model.graph!;
  const inits = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.filter((v) => !inits.has(v.name)).map((v) => ({ name: v.name, ...valueInfoType(v) }));
  const symbols = [...new Set(inputs.flatMap((i) => (i.dims ?? []).filter((d): d is string => typeof d === 'string')))];
  const base = (s: string) => options.symbolSizes?.[s] ?? 16;
  const shapesWith = (bump: ReadonlySet<string> = new Set()): Map<string, TensorInfo> => {
    const shapes: Record<string, number[]> = {};
    for (const input of inputs) {
      shapes[input.name] = (input.dims ?? []).map((d) => (typeof d === 'number' ? d : d === undefined ? 1 : bump.has(d) ? base(d) * 2 : base(d)));
    }
    return inferShapes(model, shapes, { ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
  };
  let baseShapes: Map<string, TensorInfo>;
  try {
    baseShapes = shapesWith();
  } catch (err) {
    // Shapes unknown (an op the propagation does not know, or external constants without baseDir): declare the
    // element type only, ORT accepts that.
    notes.push(`shapes of ${names.length} new input/output(s) left undeclared: ${(err as Error).message}`);
    const elemType = inputs.find((i) => i.elemType === TensorProto_DataType.FLOAT16)?.elemType ?? TensorProto_DataType.FLOAT;
    for (const name of names) result.set(name, { name, elemType });
    return result;
  }
  const bumped = symbolGroups(symbols, shapesWith).map(({ name, shapes }) => ({ s: name, shapes }));
  for (const name of names) {
    const info = baseShapes.get(name);
    if (!info) throw new OnnxGraphError(`shape inference found no tensor "${name}"`, 'unknown_tensor');
    const dims = info.shape.map((d, i) => {
      const movers = bumped.filter((b) => b.shapes.get(name)?.shape[i] !== d).map((b) => b.s);
      if (movers.length === 0) return d;
      // Name the dim after the input dims it follows, with its scale, so that e.g. the 1/4-resolution token
      // count is "height*width/4", not the same symbol as the full-resolution one.
      const scale = d / movers.reduce((n, s) => n * base(s), 1);
      const suffix = scale === 1 ? '' : scale > 1 ? `*${scale}` : `/${1 / scale}`;
      return `${movers.join('*')}${suffix}`;
    });
    result.set(name, { name, elemType: info.dtype, dims });
  }
  return result;
}
