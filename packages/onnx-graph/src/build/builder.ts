// A small ONNX graph builder that names nodes the way torch >= 1.13's exporter does, so graphs built here from a
// checkpoint look like a diffusers/optimum export to every pass of this package (module discovery by scope,
// derivations, If-gating, MAC counts, attention fusion):
// - a node is named `/<scope path>/<OpType>`, the second node of that type in the same scope `<OpType>_1`, ...;
//   nodes outside any scope are `/<OpType>` (torch's top-level nodes);
// - its outputs are `<node name>_output_<i>`;
// - a scope entered again under the same name gets `_1`, `_2` (torch's name for a module called twice, e.g. a
//   resnet's `nonlinearity`, `nonlinearity_1`, `nonlinearity_2`).
// Weights are initializers declared with their shape and a WeightRef (where in the checkpoint they come from);
// their bytes are written later, one tensor at a time (write.ts), so building never holds the weights.
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType,
  create,
  makeValueInfo,
  newGraph,
  newModel,
  newNode,
  newTensor,
  type AttributeProto,
  type ModelProto,
  type TensorProto,
  type ValueInfoProto,
} from '../proto.ts';
import type { WeightRef } from './weights.ts';

/** A float attribute (a plain number is an int attribute). */
export interface FloatAttr {
  f: number;
}
/** A list-of-floats attribute. */
export interface FloatsAttr {
  fs: number[];
}
export type AttrValue = number | number[] | string | FloatAttr | FloatsAttr;

export const float = (f: number): FloatAttr => ({ f });

/** Element types by name, for inputs and constants. */
export const DT = {
  float: TensorProto_DataType.FLOAT,
  int64: TensorProto_DataType.INT64,
  int32: TensorProto_DataType.INT32,
  bool: TensorProto_DataType.BOOL,
} as const;

export interface BuilderOptions {
  /** Default-domain opset (17: LayerNormalization, Shape with start/end). */
  opset?: number;
  /** Graph name. */
  name?: string;
}

/** An initializer whose bytes come from a checkpoint tensor, written when the model is saved. */
export interface PlannedWeight {
  /** The initializer's name in the graph. */
  name: string;
  ref: WeightRef;
}

export interface BuiltGraph {
  /** The model; checkpoint weights are initializers with dims and no data yet (see `weights`). */
  model: ModelProto;
  /** Initializers to fill from the checkpoint, in graph order. */
  weights: PlannedWeight[];
}

export class GraphBuilder {
  readonly opset: number;
  readonly #name: string;
  readonly #scopes: string[] = [];
  /** Times each full scope path was entered (for torch's `_1` suffix on re-entry). */
  readonly #entered = new Map<string, number>();
  /** Nodes per base name `/<scope>/<Op>` (for `_1`, `_2` suffixes). */
  readonly #opCounts = new Map<string, number>();
  readonly #nodes: ReturnType<typeof newNode>[] = [];
  readonly #initializers: TensorProto[] = [];
  readonly #initializerNames = new Set<string>();
  readonly #weights: PlannedWeight[] = [];
  readonly #inputs: ValueInfoProto[] = [];
  readonly #outputs: ValueInfoProto[] = [];
  readonly #constants = new Map<string, string>();
  #constantCount = 0;

  constructor(options: BuilderOptions = {}) {
    this.opset = options.opset ?? 17;
    this.#name = options.name ?? 'main_graph';
  }

  /** Runs `fn` inside module scope `name` (one path segment, e.g. 'down_blocks.0' or 'to_q'). */
  scope<T>(name: string, fn: () => T): T {
    if (!name || name.includes('/')) throw new Error(`scope name must be one non-empty segment, got "${name}"`);
    const parent = this.#scopes.join('/');
    const full = parent ? `${parent}/${name}` : name;
    const times = this.#entered.get(full) ?? 0;
    this.#entered.set(full, times + 1);
    this.#scopes.push(times === 0 ? name : `${name}_${times}`);
    try {
      return fn();
    } finally {
      this.#scopes.pop();
    }
  }

  /** The current scope path ("down_blocks.0/resnets.0"), '' at top level. */
  get scopePath(): string {
    return this.#scopes.join('/');
  }

  /**
   * The diffusers-style parameter name of `param` in the current scope ("down_blocks.0.resnets.0.conv1.weight"):
   * what an export names an initializer kept as stored.
   */
  paramName(param: string): string {
    return [...this.#scopes, param].join('.');
  }

  /** Adds a node in the current scope; returns its output tensor names (`outputs` of them, default 1). */
  ops(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, options: { outputs?: number; domain?: string } = {}): string[] {
    const base = `/${this.#scopes.length ? `${this.#scopes.join('/')}/` : ''}${opType}`;
    const count = this.#opCounts.get(base) ?? 0;
    this.#opCounts.set(base, count + 1);
    const name = count === 0 ? base : `${base}_${count}`;
    const outputs = Array.from({ length: options.outputs ?? 1 }, (_, i) => `${name}_output_${i}`);
    this.#nodes.push(
      newNode({
        opType,
        name,
        input: [...inputs],
        output: outputs,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
        ...(options.domain ? { domain: options.domain } : {}),
      }),
    );
    return outputs;
  }

  /** Adds a node with one output and returns it. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, options: { domain?: string } = {}): string {
    return this.ops(opType, inputs, attrs, options)[0]!;
  }

  /** Declares a graph input. */
  input(name: string, elemType: number, dims: Array<number | string>): string {
    this.#inputs.push(makeValueInfo(name, elemType, dims));
    return name;
  }

  /**
   * Declares `tensor` a graph output named `name`: the producing node's output is renamed (every reader is
   * re-pointed), so no Identity is added.
   */
  output(tensor: string, name: string, elemType: number, dims?: Array<number | string>): void {
    if (tensor !== name) {
      for (const node of this.#nodes) {
        node.output = node.output.map((o) => (o === tensor ? name : o));
        node.input = node.input.map((i) => (i === tensor ? name : i));
      }
    }
    this.#outputs.push(makeValueInfo(name, elemType, dims));
  }

  /**
   * A constant initializer (deduplicated: equal constants share one), named `onnx::<n>` as torch's anonymous
   * constants are. `dims` default to [values.length]; [] makes a scalar.
   */
  constant(values: readonly number[] | Float32Array, options: { dims?: number[]; type?: 'float' | 'int64' } = {}): string {
    const type = options.type ?? 'float';
    const dims = options.dims ?? [values.length];
    const key = `${type}|${dims.join(',')}|${Array.from(values).join(',')}`;
    const hit = this.#constants.get(key);
    if (hit) return hit;
    const name = `onnx::Constant_${this.#constantCount++}`;
    const rawData =
      type === 'float'
        ? new Uint8Array(Float32Array.from(values).buffer)
        : new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
    this.#addInitializer(newTensor({ name, dataType: type === 'float' ? DT.float : DT.int64, dims: dims.map(BigInt), rawData }));
    this.#constants.set(key, name);
    return name;
  }

  /** int64 constant (shapes, axes, Slice bounds). */
  ints(values: readonly number[], dims?: number[]): string {
    return this.constant(values, { type: 'int64', ...(dims ? { dims } : {}) });
  }

  /** float32 scalar constant. */
  scalar(value: number): string {
    return this.constant([value], { dims: [] });
  }

  /** A float32 initializer filled from the checkpoint when the model is written; named `name`. */
  weight(name: string, ref: WeightRef): string {
    this.#addInitializer(newTensor({ name, dataType: DT.float, dims: ref.dims.map(BigInt) }));
    this.#weights.push({ name, ref });
    return name;
  }

  /** A float32 initializer with values computed here (small derived tensors). */
  tensor(name: string, values: Float32Array, dims: number[]): string {
    this.#addInitializer(newTensor({ name, dataType: DT.float, dims: dims.map(BigInt), rawData: new Uint8Array(values.buffer as ArrayBuffer, values.byteOffset, values.byteLength) }));
    return name;
  }

  #addInitializer(t: TensorProto): void {
    if (this.#initializerNames.has(t.name)) throw new Error(`initializer ${t.name} is declared twice`);
    this.#initializerNames.add(t.name);
    this.#initializers.push(t);
  }

  /** The model (weights declared, not filled) and the list of weights to fill. */
  build(options: { docString?: string; metadata?: Record<string, string> } = {}): BuiltGraph {
    const graph = newGraph({
      name: this.#name,
      node: this.#nodes,
      initializer: this.#initializers,
      input: this.#inputs,
      output: this.#outputs,
    });
    const model = newModel(graph, this.opset);
    model.producerName = 'gategraph';
    model.producerVersion = 'build/1';
    if (options.docString) model.docString = options.docString;
    if (options.metadata) model.metadataProps = Object.entries(options.metadata).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
    return { model, weights: this.#weights };
  }
}

function attribute(name: string, v: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer; wrap floats as float(${v})`);
    return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) });
  }
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: v.map((x) => BigInt(x)) });
  if ('fs' in v) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: v.fs });
  return create(AttributeProtoSchema, { name, type: T.FLOAT, f: v.f });
}
