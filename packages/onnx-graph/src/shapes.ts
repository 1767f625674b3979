// Static shape (and small-constant) propagation. ONNX's shape inference is C++/Python only; this is the subset
// the diffusers/optimum UNet exports use at opset 14..17, written for concrete input sizes: every tensor gets a
// fixed shape, and small integer tensors (shape arithmetic: Shape -> Gather -> Unsqueeze -> Concat -> Reshape)
// get their values folded so Reshape/Expand/Slice targets are known. An op it does not know stops with an error
// naming the node, rather than guessing.
import { OnnxGraphError } from './errors.ts';
import { readTensorBytes } from './model-io.ts';
import {
  attr,
  attrInt,
  attrInts,
  attrString,
  tensorElementCount,
  TensorProto_DataType as DT,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from './proto.ts';

export interface TensorInfo {
  dtype: number;
  shape: number[];
  /** Folded values of small tensors (at most VALUE_LIMIT elements), row-major. int64 as Number. */
  value?: number[];
}

const VALUE_LIMIT = 4096;

export interface ShapeOptions {
  /** Folder the model's external data locations are relative to (to read small constant initializers). */
  baseDir?: string;
  /** Known shapes of some inner tensors (e.g. a derived graph's new inputs); graph inputs go in inputShapes. */
  known?: Map<string, TensorInfo>;
}

/** Shapes of every tensor of the graph for the given input shapes (name -> dims). */
export function inferShapes(model: ModelProto, inputShapes: Record<string, number[]>, options: ShapeOptions = {}): Map<string, TensorInfo> {
  const graph = model.graph;
  if (!graph) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const env = new Map<string, TensorInfo>(options.known ?? []);
  const inits = new Set<string>();
  for (const t of graph.initializer) {
    inits.add(t.name);
    env.set(t.name, initializerInfo(t, options.baseDir));
  }
  for (const input of graph.input) {
    if (inits.has(input.name) || env.has(input.name)) continue;
    const shape = inputShapes[input.name];
    const t = input.type?.value;
    const dtype = t?.case === 'tensorType' ? t.value.elemType : DT.FLOAT;
    if (!shape) {
      throw new OnnxGraphError(`inferShapes: no shape given for graph input "${input.name}" (inputs: ${graph.input.map((i) => i.name).join(', ')})`, 'shape_inference');
    }
    env.set(input.name, { dtype, shape: [...shape] });
  }
  propagate(graph, env, options);
  return env;
}

function propagate(graph: GraphProto, env: Map<string, TensorInfo>, options: ShapeOptions): void {
  for (const node of graph.node) {
    if (node.output.every((o) => !o || env.has(o))) continue;
    const ins = node.input.map((name) => (name ? env.get(name) : undefined));
    node.input.forEach((name, i) => {
      if (name && !ins[i]) {
        throw new OnnxGraphError(`inferShapes: input "${name}" of node ${describe(node)} has no known shape (is the graph sorted, and every input given?)`, 'shape_inference');
      }
    });
    let outs: TensorInfo[];
    try {
      outs = inferNode(node, ins, options, env);
    } catch (err) {
      if (err instanceof OnnxGraphError) throw err;
      throw new OnnxGraphError(`inferShapes: node ${describe(node)} failed: ${(err as Error).message} (input shapes ${ins.map((t) => (t ? `[${t.shape}]` : '-')).join(', ')})`, 'shape_inference');
    }
    node.output.forEach((o, i) => {
      const info = outs[i];
      if (o && info) env.set(o, info);
    });
  }
}

function describe(node: NodeProto): string {
  return `"${node.name || node.output[0]}" (${node.domain ? `${node.domain}.` : ''}${node.opType})`;
}

function initializerInfo(t: TensorProto, baseDir?: string): TensorInfo {
  const shape = t.dims.map(Number);
  const info: TensorInfo = { dtype: t.dataType, shape };
  const n = tensorElementCount(t);
  if (n <= VALUE_LIMIT) {
    const v = decodeValues(t, baseDir);
    if (v) info.value = v;
  }
  return info;
}

function decodeValues(t: TensorProto, baseDir?: string): number[] | undefined {
  let bytes: Uint8Array;
  try {
    bytes = readTensorBytes(t, baseDir ?? '.');
  } catch {
    return undefined; // external data we cannot read: shapes still work, values stay unknown
  }
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  switch (t.dataType) {
    case DT.FLOAT: return [...new Float32Array(buf)];
    case DT.DOUBLE: return [...new Float64Array(buf)];
    case DT.INT64: return [...new BigInt64Array(buf)].map(Number);
    case DT.UINT64: return [...new BigUint64Array(buf)].map(Number);
    case DT.INT32: return [...new Int32Array(buf)];
    case DT.UINT32: return [...new Uint32Array(buf)];
    case DT.INT16: return [...new Int16Array(buf)];
    case DT.UINT16: return [...new Uint16Array(buf)];
    case DT.INT8: return [...new Int8Array(buf)];
    case DT.UINT8: case DT.BOOL: return [...new Uint8Array(buf)];
    default: return undefined; // float16/bfloat16 values are not needed for shapes
  }
}

const UNARY_SAME = new Set([
  'Identity', 'Sigmoid', 'Erf', 'Sqrt', 'Relu', 'Tanh', 'Exp', 'Log', 'Neg', 'Abs', 'Sin', 'Cos', 'Floor', 'Ceil',
  'Reciprocal', 'Round', 'Softmax', 'LogSoftmax', 'LeakyRelu', 'Gelu', 'HardSigmoid', 'Softplus', 'Elu', 'Selu',
  'Mish', 'HardSwish', 'Sign', 'Clip', 'InstanceNormalization', 'LayerNormalization', 'BatchNormalization',
  'GroupNormalization', 'SimplifiedLayerNormalization', 'CumSum', 'Dropout', 'IsNaN', 'IsInf',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Min', 'Max', 'Mod', 'Sum', 'Mean']);
const COMPARE = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']);

function need(t: TensorInfo | undefined, what: string): TensorInfo {
  if (!t) throw new Error(`missing ${what}`);
  return t;
}

function needValue(t: TensorInfo | undefined, what: string): number[] {
  if (!t?.value) throw new Error(`${what} is not a constant (its value must be known to fold shapes)`);
  return t.value;
}

function prod(a: number[]): number {
  return a.reduce((x, y) => x * y, 1);
}

function withValue(info: TensorInfo, value: number[] | undefined): TensorInfo {
  if (value && value.length === prod(info.shape) && value.length <= VALUE_LIMIT) info.value = value;
  return info;
}

function isInt(dtype: number): boolean {
  return [DT.INT64, DT.INT32, DT.INT16, DT.INT8, DT.UINT8, DT.UINT16, DT.UINT32, DT.UINT64, DT.BOOL].includes(dtype);
}

export function broadcast(...shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new Error(`cannot broadcast shapes ${shapes.map((x) => `[${x}]`).join(' and ')}`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Element-wise op over broadcast values (small tensors only). */
function broadcastValues(ins: TensorInfo[], outShape: number[], fn: (...v: number[]) => number): number[] | undefined {
  if (ins.some((t) => !t.value) || prod(outShape) > VALUE_LIMIT) return undefined;
  const n = prod(outShape);
  const out = new Array<number>(n);
  const rank = outShape.length;
  for (let flat = 0; flat < n; flat++) {
    const idx: number[] = [];
    let rem = flat;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = rem % outShape[d]!;
      rem = Math.floor(rem / outShape[d]!);
    }
    const args = ins.map((t) => {
      let off = 0;
      let stride = 1;
      for (let d = t.shape.length - 1; d >= 0; d--) {
        const dim = t.shape[d]!;
        const i = dim === 1 ? 0 : idx[rank - t.shape.length + d]!;
        off += i * stride;
        stride *= dim;
      }
      return t.value![off]!;
    });
    out[flat] = fn(...args);
  }
  return out;
}

function binaryFn(op: string, intDiv: boolean): (...v: number[]) => number {
  switch (op) {
    case 'Add': case 'Sum': return (a, b) => a! + b!;
    case 'Sub': return (a, b) => a! - b!;
    case 'Mul': return (a, b) => a! * b!;
    case 'Div': return intDiv ? (a, b) => Math.trunc(a! / b!) : (a, b) => a! / b!;
    case 'Pow': return (a, b) => a! ** b!;
    case 'Min': return (...v) => Math.min(...v);
    case 'Max': return (...v) => Math.max(...v);
    case 'Mod': return (a, b) => a! % b!;
    case 'Mean': return (...v) => v.reduce((x, y) => x + y, 0) / v.length;
    case 'Equal': return (a, b) => Number(a === b);
    case 'Less': return (a, b) => Number(a! < b!);
    case 'Greater': return (a, b) => Number(a! > b!);
    case 'LessOrEqual': return (a, b) => Number(a! <= b!);
    case 'GreaterOrEqual': return (a, b) => Number(a! >= b!);
    case 'And': return (a, b) => Number(Boolean(a) && Boolean(b));
    case 'Or': return (a, b) => Number(Boolean(a) || Boolean(b));
    default: return (a, b) => Number(Boolean(a) !== Boolean(b));
  }
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Axes from the opset >= 13 input or the older attribute. */
function axesOf(node: NodeProto, ins: Array<TensorInfo | undefined>, inputIndex: number): number[] | undefined {
  const fromAttr = attrInts(node, 'axes');
  if (fromAttr) return fromAttr;
  const t = ins[inputIndex];
  return t ? needValue(t, `axes of ${node.opType}`) : undefined;
}

function inferNode(node: NodeProto, ins: Array<TensorInfo | undefined>, options: ShapeOptions, env: Map<string, TensorInfo>): TensorInfo[] {
  const op = node.opType;
  const x = ins[0];
  if (node.domain === 'com.microsoft' && op === 'MultiHeadAttention') {
    // Written by attention-fusion.ts: query [B, S, C], key [B, L, C], value [B, L, Cv] -> [B, S, Cv].
    const q = need(x, 'query');
    const v = need(ins[2], 'value');
    return [{ dtype: q.dtype, shape: [q.shape[0]!, q.shape[1]!, v.shape[2]!] }];
  }
  if (node.domain && node.domain !== 'ai.onnx') {
    throw new OnnxGraphError(
      `inferShapes: node ${describe(node)} is a custom-domain op this static shape propagation does not know; it blocks shapes. MAC counting and reuse input shapes need an un-optimized export (standard ONNX ops only).`,
      'shape_inference',
    );
  }
  if (UNARY_SAME.has(op)) {
    const t = need(x, 'input');
    let value: number[] | undefined;
    if (t.value && op === 'Identity') value = t.value;
    if (t.value && op === 'Neg') value = t.value.map((v) => -v);
    return [withValue({ dtype: t.dtype, shape: [...t.shape] }, value)];
  }
  if (BINARY.has(op)) {
    const all = ins.map((t, i) => need(t, `input ${i}`));
    const shape = broadcast(...all.map((t) => t.shape));
    const dtype = all[0]!.dtype;
    return [withValue({ dtype, shape }, broadcastValues(all, shape, binaryFn(op, isInt(dtype))))];
  }
  if (COMPARE.has(op)) {
    const all = ins.map((t, i) => need(t, `input ${i}`));
    const shape = broadcast(...all.map((t) => t.shape));
    return [withValue({ dtype: DT.BOOL, shape }, broadcastValues(all, shape, binaryFn(op, false)))];
  }
  switch (op) {
    case 'Not': {
      const t = need(x, 'input');
      return [withValue({ dtype: DT.BOOL, shape: [...t.shape] }, t.value?.map((v) => Number(!v)))];
    }
    case 'Constant': {
      const a = node.attribute[0];
      if (!a) throw new Error('Constant without a value attribute');
      if (a.t) return [initializerInfo(a.t, options.baseDir)];
      if (a.name === 'value_int') return [{ dtype: DT.INT64, shape: [], value: [Number(a.i)] }];
      if (a.name === 'value_ints') return [{ dtype: DT.INT64, shape: [a.ints.length], value: a.ints.map(Number) }];
      if (a.name === 'value_float') return [{ dtype: DT.FLOAT, shape: [], value: [a.f] }];
      if (a.name === 'value_floats') return [{ dtype: DT.FLOAT, shape: [a.floats.length], value: [...a.floats] }];
      throw new Error(`Constant attribute ${a.name} is not supported`);
    }
    case 'Cast': {
      const t = need(x, 'input');
      const to = attrInt(node, 'to', DT.FLOAT);
      const value = t.value?.map((v) => (to === DT.BOOL ? Number(Boolean(v)) : isInt(to) ? Math.trunc(v) : v));
      return [withValue({ dtype: to, shape: [...t.shape] }, value)];
    }
    case 'CastLike': {
      const t = need(x, 'input');
      return [withValue({ dtype: need(ins[1], 'target').dtype, shape: [...t.shape] }, t.value)];
    }
    case 'Shape': {
      const t = need(x, 'input');
      const r = t.shape.length;
      const start = normAxis(attrInt(node, 'start', 0), r);
      const endAttr = attr(node, 'end');
      const end = endAttr ? normAxis(Number(endAttr.i), r) : r;
      const value = t.shape.slice(Math.max(0, start), Math.min(r, end));
      return [{ dtype: DT.INT64, shape: [value.length], value }];
    }
    case 'Size': {
      const t = need(x, 'input');
      return [{ dtype: DT.INT64, shape: [], value: [prod(t.shape)] }];
    }
    case 'ConstantOfShape': {
      const shape = needValue(x, 'shape of ConstantOfShape');
      const a = attr(node, 'value');
      const fill = a?.t ? initializerInfo(a.t, options.baseDir) : { dtype: DT.FLOAT, shape: [1], value: [0] };
      const n = prod(shape);
      return [withValue({ dtype: fill.dtype, shape: [...shape] }, fill.value && n <= VALUE_LIMIT ? new Array(n).fill(fill.value[0]) : undefined)];
    }
    case 'Range': {
      const [start, limit, delta] = [0, 1, 2].map((i) => needValue(ins[i], `Range input ${i}`)[0]!);
      const n = Math.max(Math.ceil((limit! - start!) / delta!), 0);
      const value = n <= VALUE_LIMIT ? Array.from({ length: n }, (_, i) => start! + i * delta!) : undefined;
      return [withValue({ dtype: need(ins[0], 'start').dtype, shape: [n] }, value)];
    }
    case 'Reshape': {
      const t = need(x, 'data');
      const target = needValue(ins[1], 'shape of Reshape');
      const allowZero = attrInt(node, 'allowzero', 0) === 1;
      const shape = target.map((d, i) => (d === 0 && !allowZero ? t.shape[i]! : d));
      const known = shape.filter((d) => d !== -1);
      const minus = shape.indexOf(-1);
      if (minus >= 0) shape[minus] = prod(t.shape) / prod(known);
      if (prod(shape) !== prod(t.shape)) throw new Error(`Reshape of [${t.shape}] to [${target}] changes the element count`);
      return [withValue({ dtype: t.dtype, shape }, t.value)];
    }
    case 'Flatten': {
      const t = need(x, 'input');
      const axis = normAxis(attrInt(node, 'axis', 1), t.shape.length);
      return [withValue({ dtype: t.dtype, shape: [prod(t.shape.slice(0, axis)), prod(t.shape.slice(axis))] }, t.value)];
    }
    case 'Transpose': {
      const t = need(x, 'input');
      const perm = attrInts(node, 'perm') ?? t.shape.map((_, i) => t.shape.length - 1 - i);
      return [{ dtype: t.dtype, shape: perm.map((p) => t.shape[p]!) }];
    }
    case 'Unsqueeze': {
      const t = need(x, 'input');
      const axes = axesOf(node, ins, 1) ?? [];
      const rank = t.shape.length + axes.length;
      const norm = new Set(axes.map((a) => normAxis(a, rank)));
      const shape: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) shape.push(norm.has(i) ? 1 : t.shape[j++]!);
      return [withValue({ dtype: t.dtype, shape }, t.value)];
    }
    case 'Squeeze': {
      const t = need(x, 'input');
      const axes = axesOf(node, ins, 1);
      const norm = axes ? new Set(axes.map((a) => normAxis(a, t.shape.length))) : undefined;
      const shape = t.shape.filter((d, i) => (norm ? !norm.has(i) : d !== 1));
      return [withValue({ dtype: t.dtype, shape }, t.value)];
    }
    case 'Concat': {
      const all = ins.map((t, i) => need(t, `input ${i}`));
      const rank = all[0]!.shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      const shape = [...all[0]!.shape];
      shape[axis] = all.reduce((n, t) => n + t.shape[axis]!, 0);
      const value = rank === 1 && all.every((t) => t.value) ? all.flatMap((t) => t.value!) : undefined;
      return [withValue({ dtype: all[0]!.dtype, shape }, value)];
    }
    case 'Split': {
      const t = need(x, 'input');
      const axis = normAxis(attrInt(node, 'axis', 0), t.shape.length);
      const dim = t.shape[axis]!;
      const n = node.output.length;
      let sizes = attrInts(node, 'split') ?? ins[1]?.value;
      if (!sizes) {
        const chunk = Math.ceil(dim / n);
        sizes = Array.from({ length: n }, (_, i) => Math.min(chunk, dim - i * chunk));
      }
      return sizes.map((s) => {
        const shape = [...t.shape];
        shape[axis] = s;
        return { dtype: t.dtype, shape };
      });
    }
    case 'Slice': {
      const t = need(x, 'data');
      const starts = needValue(ins[1], 'starts of Slice');
      const ends = needValue(ins[2], 'ends of Slice');
      const axes = ins[3] ? needValue(ins[3], 'axes of Slice') : starts.map((_, i) => i);
      const steps = ins[4] ? needValue(ins[4], 'steps of Slice') : starts.map(() => 1);
      const shape = [...t.shape];
      const ranges = t.shape.map((d) => ({ start: 0, step: 1, count: d }));
      axes.forEach((a, i) => {
        const axis = normAxis(a, t.shape.length);
        const dim = t.shape[axis]!;
        const step = steps[i]!;
        let s = starts[i]!;
        let e = ends[i]!;
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        let count: number;
        if (step > 0) {
          s = Math.min(Math.max(s, 0), dim);
          e = Math.min(Math.max(e, 0), dim);
          count = Math.max(0, Math.ceil((e - s) / step));
        } else {
          s = Math.min(Math.max(s, -1), dim - 1);
          e = Math.min(Math.max(e, -1), dim - 1);
          count = Math.max(0, Math.ceil((s - e) / -step));
        }
        shape[axis] = count;
        ranges[axis] = { start: s, step, count };
      });
      let value: number[] | undefined;
      if (t.value && t.shape.length === 1) value = Array.from({ length: shape[0]! }, (_, i) => t.value![ranges[0]!.start + i * ranges[0]!.step]!);
      return [withValue({ dtype: t.dtype, shape }, value)];
    }
    case 'Gather': {
      const data = need(x, 'data');
      const idx = need(ins[1], 'indices');
      const axis = normAxis(attrInt(node, 'axis', 0), data.shape.length);
      const shape = [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)];
      let value: number[] | undefined;
      if (data.value && idx.value && prod(shape) <= VALUE_LIMIT) {
        const outer = prod(data.shape.slice(0, axis));
        const dim = data.shape[axis]!;
        const inner = prod(data.shape.slice(axis + 1));
        value = [];
        for (let o = 0; o < outer; o++) {
          for (const raw of idx.value) {
            const i = raw < 0 ? raw + dim : raw;
            for (let k = 0; k < inner; k++) value.push(data.value[(o * dim + i) * inner + k]!);
          }
        }
      }
      return [withValue({ dtype: data.dtype, shape }, value)];
    }
    case 'Expand': {
      const t = need(x, 'input');
      const target = needValue(ins[1], 'shape of Expand');
      const shape = broadcast(t.shape, target);
      return [withValue({ dtype: t.dtype, shape }, broadcastValues([t], shape, (v) => v!))];
    }
    case 'Tile': {
      const t = need(x, 'input');
      const reps = needValue(ins[1], 'repeats of Tile');
      return [{ dtype: t.dtype, shape: t.shape.map((d, i) => d * reps[i]!) }];
    }
    case 'Where': {
      const all = [0, 1, 2].map((i) => need(ins[i], `input ${i}`));
      const shape = broadcast(...all.map((t) => t.shape));
      return [withValue({ dtype: all[1]!.dtype, shape }, broadcastValues(all, shape, (c, a, b) => (c ? a! : b!)))];
    }
    case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL2': {
      const t = need(x, 'input');
      const keep = attrInt(node, 'keepdims', 1) === 1;
      const axesRaw = axesOf(node, ins, 1);
      const all = !axesRaw || axesRaw.length === 0;
      if (all && attrInt(node, 'noop_with_empty_axes', 0) === 1) return [{ dtype: t.dtype, shape: [...t.shape] }];
      const axes = new Set((all ? t.shape.map((_, i) => i) : axesRaw!).map((a) => normAxis(a, t.shape.length)));
      const shape = t.shape.flatMap((d, i) => (axes.has(i) ? (keep ? [1] : []) : [d]));
      return [{ dtype: t.dtype, shape }];
    }
    case 'MatMul': {
      const a = need(x, 'A');
      const b = need(ins[1], 'B');
      return [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape) }];
    }
    case 'Gemm': {
      const a = need(x, 'A');
      const b = need(ins[1], 'B');
      const m = attrInt(node, 'transA', 0) ? a.shape[1]! : a.shape[0]!;
      const n = attrInt(node, 'transB', 0) ? b.shape[0]! : b.shape[1]!;
      return [{ dtype: a.dtype, shape: [m, n] }];
    }
    case 'Conv': case 'ConvTranspose': {
      const t = need(x, 'X');
      const w = need(ins[1], 'W');
      return [{ dtype: t.dtype, shape: convShape(node, t.shape, w.shape) }];
    }
    case 'Resize': case 'Upsample': {
      const t = need(x, 'X');
      const sizes = op === 'Resize' && ins[3]?.value?.length ? ins[3].value : undefined;
      if (sizes) return [{ dtype: t.dtype, shape: [...sizes] }];
      const scales = needValue(op === 'Resize' ? ins[2] : ins[1], `scales of ${op}`);
      return [{ dtype: t.dtype, shape: t.shape.map((d, i) => Math.floor(d * scales[i]!)) }];
    }
    case 'Pad': {
      const t = need(x, 'data');
      const pads = attrInts(node, 'pads') ?? needValue(ins[1], 'pads of Pad');
      const r = t.shape.length;
      return [{ dtype: t.dtype, shape: t.shape.map((d, i) => d + pads[i]! + pads[i + r]!) }];
    }
    case 'MaxPool': case 'AveragePool': {
      const t = need(x, 'X');
      const k = attrInts(node, 'kernel_shape')!;
      return [{ dtype: t.dtype, shape: poolShape(node, t.shape, k) }];
    }
    case 'GlobalAveragePool': case 'GlobalMaxPool': {
      const t = need(x, 'X');
      return [{ dtype: t.dtype, shape: t.shape.map((d, i) => (i < 2 ? d : 1)) }];
    }
    case 'If': {
      // Tensor names are unique across a model's subgraphs, so both branches propagate into the same map (their
      // inner tensors are then visible to MAC counting); the node's outputs take the then-branch's shapes.
      const thenBranch = attr(node, 'then_branch')?.g;
      const elseBranch = attr(node, 'else_branch')?.g;
      if (!thenBranch || !elseBranch) throw new Error('If without then_branch/else_branch');
      for (const g of [thenBranch, elseBranch]) {
        for (const t of g.initializer) env.set(t.name, initializerInfo(t, options.baseDir));
        propagate(g, env, options);
      }
      return thenBranch.output.map((o) => need(env.get(o.name), `then_branch output ${o.name}`));
    }
    default:
      throw new OnnxGraphError(
        `inferShapes: op ${op} of node ${describe(node)} is not supported by the static shape propagation, and it blocks the shapes of everything after it. Supported ops are those of diffusers/optimum UNet exports (opset 14..17).`,
        'shape_inference',
      );
  }
}

export function matmulShape(a: number[], b: number[]): number[] {
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  if (a2[a2.length - 1] !== b2[b2.length - 2]) throw new Error(`MatMul of [${a}] and [${b}]: inner dims differ`);
  const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

function convShape(node: NodeProto, x: number[], w: number[]): number[] {
  const spatial = x.length - 2;
  const kernel = attrInts(node, 'kernel_shape') ?? w.slice(2);
  const strides = attrInts(node, 'strides') ?? new Array(spatial).fill(1);
  const dil = attrInts(node, 'dilations') ?? new Array(spatial).fill(1);
  const autoPad = attrString(node, 'auto_pad') ?? 'NOTSET';
  const pads = attrInts(node, 'pads') ?? new Array(spatial * 2).fill(0);
  const group = attrInt(node, 'group', 1);
  const out = [x[0]!];
  if (node.opType === 'Conv') {
    out.push(w[0]!);
    for (let i = 0; i < spatial; i++) {
      const d = x[i + 2]!;
      const k = (kernel[i]! - 1) * dil[i]! + 1;
      if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(d / strides[i]!));
      else if (autoPad === 'VALID') out.push(Math.floor((d - k) / strides[i]!) + 1);
      else out.push(Math.floor((d + pads[i]! + pads[i + spatial]! - k) / strides[i]!) + 1);
    }
  } else {
    out.push(w[1]! * group);
    const outPad = attrInts(node, 'output_padding') ?? new Array(spatial).fill(0);
    const outShape = attrInts(node, 'output_shape');
    for (let i = 0; i < spatial; i++) {
      if (outShape) { out.push(outShape[i]!); continue; }
      const k = (kernel[i]! - 1) * dil[i]! + 1;
      out.push(strides[i]! * (x[i + 2]! - 1) + outPad[i]! + k - pads[i]! - pads[i + spatial]!);
    }
  }
  return out;
}

function poolShape(node: NodeProto, x: number[], kernel: number[]): number[] {
  const spatial = x.length - 2;
  const strides = attrInts(node, 'strides') ?? new Array(spatial).fill(1);
  const pads = attrInts(node, 'pads') ?? new Array(spatial * 2).fill(0);
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const out = [x[0]!, x[1]!];
  for (let i = 0; i < spatial; i++) {
    const v = (x[i + 2]! + pads[i]! + pads[i + spatial]! - kernel[i]!) / strides[i]!;
    out.push((ceil ? Math.ceil(v) : Math.floor(v)) + 1);
  }
  return out;
}
