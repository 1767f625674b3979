// The inputs and outputs an .onnx file declares (and the operators and weight types it uses), read without reading its weights: the protobuf is walked field
// by field and every field other than the graph's `input` / `output` entries is skipped by seeking past it, so
// a file with hundreds of MB of embedded initializers costs a few hundred small reads. This is what validation
// needs to know which sizes a graph takes before any session is opened.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { fromBinary } from '@bufbuild/protobuf';
import { OnnxGraphError } from './errors.ts';
import { DTYPE_NAMES, ValueInfoProtoSchema, type ValueInfoProto } from './proto.ts';

/** One declared graph input or output, in onnxruntime's terms (its dtype names; numbers for fixed dims). */
export interface DeclaredTensor {
  name: string;
  /** 'float32', 'int64', ... as onnxruntime names them; 'unknown' for a type this reader does not map. */
  type: string;
  /** Fixed dims as numbers, named ones ("batch") as strings, undeclared ones as ''. [] for a scalar. */
  shape: Array<number | string>;
}

export interface DeclaredIo {
  inputs: DeclaredTensor[];
  outputs: DeclaredTensor[];
  /**
   * The operators the main graph uses, as `domain::OpType` with the default domain written `ai.onnx`
   * (`ai.onnx::Conv`, `com.microsoft::GroupNorm`), sorted. Tells GPU-optimized exports from plain ones.
   */
  operators: string[];
  /** How many initializers (weights) of each dtype the main graph holds: `{ float32: 686 }`, `{ float16: 686 }`. */
  initializerTypes: Record<string, number>;
}

// Field numbers of onnx.proto: ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5, .input = 11,
// .output = 12; NodeProto.op_type = 4, .domain = 7; TensorProto.data_type = 2.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;
const TENSOR_DATA_TYPE = 2;
/** A declared input or output is a name and a shape: anything this long is not one. */
const MAX_VALUE_INFO_BYTES = 1 << 20;
/** Operator and domain names are short; a longer field is not read (it would be damage). */
const MAX_NAME_BYTES = 4096;

/**
 * Reads varints and bytes at file offsets through a window of the file: small neighbouring fields (graph nodes)
 * come from one read, large ones (initializers) are jumped over.
 */
class FieldReader {
  private readonly window = Buffer.alloc(64 * 1024);
  private windowStart = 0;
  private windowLength = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  /** Makes [at, at + length) readable from the window (length at most the window's size). */
  private load(at: number, length: number): void {
    if (at >= this.windowStart && at + length <= this.windowStart + this.windowLength) return;
    this.windowStart = at;
    this.windowLength = readSync(this.fd, this.window, 0, Math.min(this.window.length, this.size - at), at);
  }

  varint(at: number): { value: number; next: number } {
    this.load(at, Math.min(10, this.size - at));
    let value = 0;
    let scale = 1;
    const end = Math.min(this.windowLength, at - this.windowStart + 10);
    for (let i = at - this.windowStart; i < end; i++) {
      const byte = this.window[i]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return { value, next: this.windowStart + i + 1 };
      scale *= 128;
    }
    throw this.corrupt(at, 'a varint runs past the end of the file');
  }

  bytes(at: number, length: number): Uint8Array {
    const out = Buffer.alloc(length);
    if (readSync(this.fd, out, 0, length, at) !== length) throw this.corrupt(at, 'a field runs past the end of the file');
    return out;
  }

  /**
   * Calls `visit(field, start, end)` for each length-delimited field in [from, to) and `visitVarint(field,
   * value)` for each varint field; skips the others.
   */
  fields(from: number, to: number, visit: (field: number, start: number, end: number) => void, visitVarint?: (field: number, value: number) => void): void {
    let at = from;
    while (at < to) {
      const tag = this.varint(at);
      at = tag.next;
      const field = Math.floor(tag.value / 8);
      const wire = tag.value % 8;
      if (wire === 0) {
        const value = this.varint(at);
        visitVarint?.(field, value.value);
        at = value.next;
      }
      else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else if (wire === 2) {
        const length = this.varint(at);
        const end = length.next + length.value;
        if (end > to) throw this.corrupt(at, `field ${field} is longer than what holds it`);
        visit(field, length.next, end);
        at = end;
      } else throw this.corrupt(at, `wire type ${wire} does not occur in ONNX files`);
    }
    if (at !== to) throw this.corrupt(at, 'the last field runs past its end');
  }

  corrupt(at: number, what: string): OnnxGraphError {
    return new OnnxGraphError(
      `${this.path} is not a valid ONNX file (at byte ${at}: ${what}). Is it complete, and not a Git LFS pointer?`,
      'decode_failed',
    );
  }
}

function declared(info: ValueInfoProto): DeclaredTensor {
  const tensor = info.type?.value.case === 'tensorType' ? info.type.value.value : undefined;
  const shape = (tensor?.shape?.dim ?? []).map((d) =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : '',
  );
  return { name: info.name, type: tensor ? (DTYPE_NAMES[tensor.elemType] ?? 'unknown') : 'unknown', shape };
}

/**
 * The graph inputs and outputs `path` declares, as listed in the file (graph.input / graph.output: in files
 * of IR version 3 and older, inputs also list the initializers).
 */
export function readDeclaredIo(path: string): DeclaredIo {
  // Validation asks for every prompt: a file read once is answered from memory until it changes.
  let identity: string | undefined;
  try {
    const st = statSync(path);
    identity = `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    // not readable: openSync below says so
  }
  const known = identity !== undefined ? declaredCache.get(path) : undefined;
  if (known && known.identity === identity) return structuredClone(known.io);
  const io = readDeclaredIoFromFile(path);
  if (identity !== undefined) {
    declaredCache.delete(path);
    declaredCache.set(path, { identity, io: structuredClone(io) });
    if (declaredCache.size > DECLARED_CACHE_ENTRIES) declaredCache.delete(declaredCache.keys().next().value as string);
  }
  return io;
}

/** Files recently read, by path, with their size/mtime/inode when read (a re-export changes them). */
const declaredCache = new Map<string, { identity: string; io: DeclaredIo }>();
const DECLARED_CACHE_ENTRIES = 64;

function readDeclaredIoFromFile(path: string): DeclaredIo {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new OnnxGraphError(`cannot read ${path}: ${(err as Error).message}`, 'decode_failed');
  }
  try {
    const reader = new FieldReader(fd, fstatSync(fd).size, path);
    const io: DeclaredIo = { inputs: [], outputs: [], operators: [], initializerTypes: {} };
    const operators = new Set<string>();
    const text = (s: number, e: number) => (e - s > MAX_NAME_BYTES ? '' : Buffer.from(reader.bytes(s, e - s)).toString('utf8'));
    let graphs = 0;
    reader.fields(0, reader.size, (field, start, end) => {
      if (field !== MODEL_GRAPH) return;
      graphs++;
      reader.fields(start, end, (graphField, s, e) => {
        if (graphField === GRAPH_NODE) {
          let opType = '';
          let domain = '';
          reader.fields(s, e, (nodeField, ns, ne) => {
            if (nodeField === NODE_OP_TYPE) opType = text(ns, ne);
            else if (nodeField === NODE_DOMAIN) domain = text(ns, ne);
          });
          operators.add(`${domain === '' || domain === 'ai.onnx' ? 'ai.onnx' : domain}::${opType}`);
          return;
        }
        if (graphField === GRAPH_INITIALIZER) {
          let dataType = 0;
          reader.fields(s, e, () => {}, (tensorField, value) => {
            if (tensorField === TENSOR_DATA_TYPE) dataType = value;
          });
          const name = DTYPE_NAMES[dataType] ?? 'unknown';
          io.initializerTypes[name] = (io.initializerTypes[name] ?? 0) + 1;
          return;
        }
        if (graphField !== GRAPH_INPUT && graphField !== GRAPH_OUTPUT) return;
        if (e - s > MAX_VALUE_INFO_BYTES) throw reader.corrupt(s, `a graph ${graphField === GRAPH_INPUT ? 'input' : 'output'} of ${e - s} bytes`);
        let info: ValueInfoProto;
        try {
          info = fromBinary(ValueInfoProtoSchema, reader.bytes(s, e - s));
        } catch (err) {
          throw reader.corrupt(s, `a graph input or output does not decode (${(err as Error).message})`);
        }
        (graphField === GRAPH_INPUT ? io.inputs : io.outputs).push(declared(info));
      });
    });
    if (graphs === 0) throw reader.corrupt(0, 'it holds no graph');
    io.operators = [...operators].sort();
    return io;
  } finally {
    closeSync(fd);
  }
}
