// A weighted merge of two models of one architecture into a new file (ComfyUI's ModelMergeSimple: model1 * ratio
// + model2 * (1 - ratio), weight by weight). The two graphs must be the same graph: the same nodes (operator,
// inputs, outputs, attributes) and the same initializers (name, type, shape); they differ in the initializers'
// values only, which is what two checkpoints of one architecture built or exported the same way look like. A
// non-float initializer (shape constants) must be equal in both.
//
// Memory: model2's graph is read for its structure and where each of its initializers lies in its files (the
// .onnx itself for embedded weights, or the external data file), then dropped; model1's graph is kept as the
// output's and each weight is merged with model2's read back from disk, one tensor at a time, into the output's
// data file. The two models' weights are never in memory together.
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { OnnxGraphError } from './errors.ts';
import { atomicWrite, externalRef, isExternal, readTensorBytes } from './model-io.ts';
import {
  DTYPE_NAMES,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType as DT,
  create,
  decodeModel,
  encodeModel,
  tensorByteSize,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from './proto.ts';

export interface MergeReport {
  /** Initializers in the model. */
  tensors: number;
  /** Float initializers whose values differed and were merged. */
  merged: number;
  /** Initializers equal in both models, copied as they are. */
  identical: number;
  /** Bytes written to the output's data file. */
  dataBytes: number;
}

/** Where an initializer's bytes lie: a byte range of a file, or (small typed fields) the bytes themselves. */
type TensorSource = { file: string; offset: number; length: number } | { bytes: Uint8Array };

interface Structure {
  nodes: string[];
  io: string[];
  initializers: Map<string, { dataType: number; dims: string; source: TensorSource }>;
}

/** A node as text: what must be equal for two graphs to be one architecture. Tensor attributes by their hash. */
function nodeSignature(node: NodeProto): string {
  const attributes = node.attribute.map((a) => {
    const tensor = a.t ? createHash('sha1').update(readTensorBytes(a.t, '')).digest('hex') : '';
    return `${a.name}=${a.type}:${a.i}:${a.f}:${new TextDecoder().decode(a.s)}:${a.ints.join(',')}:${a.floats.join(',')}:${a.strings.length}:${tensor}:${a.g ? 'graph' : ''}`;
  });
  return `${node.domain}::${node.opType}(${node.input.join(',')})->(${node.output.join(',')}) ${attributes.join(' ')}`;
}

function structureOf(proto: ModelProto, file: string, bytes: Uint8Array): Structure {
  const graph = proto.graph;
  if (!graph) throw new OnnxGraphError(`${file} holds no graph`, 'decode_failed');
  const baseDir = dirname(file);
  const initializers = new Map<string, { dataType: number; dims: string; source: TensorSource }>();
  for (const t of graph.initializer) {
    let source: TensorSource;
    if (isExternal(t)) {
      const ref = externalRef(t);
      source = { file: resolve(baseDir, ref.location), offset: ref.offset, length: ref.length ?? tensorByteSize(t) };
    } else if (t.rawData.byteLength > 0 && t.rawData.buffer === bytes.buffer) {
      // raw_data decodes as a view into the file's bytes: its place in the file, to read it back later.
      source = { file, offset: t.rawData.byteOffset - bytes.byteOffset, length: t.rawData.byteLength };
    } else {
      source = { bytes: readTensorBytes(t, baseDir).slice() };
    }
    initializers.set(t.name, { dataType: t.dataType, dims: t.dims.join(','), source });
  }
  const io = [...graph.input, ...graph.output].map((v) => `${v.name}:${JSON.stringify(v.type?.value.case === 'tensorType' ? v.type.value.value.elemType : v.type?.value.case)}`);
  return { nodes: graph.node.map(nodeSignature), io, initializers };
}

/** Why the two graphs are not one architecture, or undefined when they are. */
function mismatch(a: Structure, b: Structure): string | undefined {
  if (a.io.join('|') !== b.io.join('|')) return `their inputs and outputs differ (${a.io.join(', ')} vs ${b.io.join(', ')})`;
  if (a.initializers.size !== b.initializers.size) return `they have ${a.initializers.size} and ${b.initializers.size} weight tensors`;
  for (const [name, t] of a.initializers) {
    const other = b.initializers.get(name);
    if (!other) return `weight ${name} of the first is not in the second`;
    if (other.dataType !== t.dataType || other.dims !== t.dims) {
      return `weight ${name} is ${DTYPE_NAMES[t.dataType] ?? t.dataType} [${t.dims}] in the first and ${DTYPE_NAMES[other.dataType] ?? other.dataType} [${other.dims}] in the second`;
    }
  }
  if (a.nodes.length !== b.nodes.length) return `their graphs have ${a.nodes.length} and ${b.nodes.length} nodes`;
  const at = a.nodes.findIndex((n, i) => n !== b.nodes[i]);
  if (at >= 0) return `node ${at} differs: ${a.nodes[at]!.slice(0, 160)} vs ${b.nodes[at]!.slice(0, 160)}`;
  return undefined;
}

function readSource(source: TensorSource, fds: Map<string, number>): Uint8Array {
  if ('bytes' in source) return source.bytes;
  let fd = fds.get(source.file);
  if (fd === undefined) fds.set(source.file, (fd = openSync(source.file, 'r')));
  const out = Buffer.alloc(source.length);
  for (let done = 0; done < source.length; ) {
    const n = readSync(fd, out, done, source.length - done, source.offset + done);
    if (n === 0) throw new OnnxGraphError(`${source.file} ends before the weight at offset ${source.offset} (${source.length} bytes)`, 'external_data');
    done += n;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * ComfyUI's arithmetic in float32 (calculate_weight with a plain weight patch): w = a; if ratio != 1, w *= ratio;
 * if 1 - ratio != 0, w += (1 - ratio) * b; each product and sum rounded to float32 as torch's float kernels do.
 */
function mergeFloats(a: Uint8Array, b: Uint8Array, ratio: number): Uint8Array<ArrayBuffer> {
  const floats = (bytes: Uint8Array) => {
    const copy = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(copy.buffer).set(bytes);
    return copy;
  };
  const x = floats(a);
  const y = floats(b);
  const keep = Math.fround(ratio);
  const add = Math.fround(1 - ratio);
  if (ratio !== 1) for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]! * keep);
  if (add !== 0) for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]! + Math.fround(add * y[i]!));
  return new Uint8Array(x.buffer);
}

/** Why the models at `first` and `second` cannot be merged (different architectures or exports), or undefined. */
export function mergeProblem(first: string, second: string): string | undefined {
  const read = (path: string) => {
    const bytes = readFileSync(resolve(path));
    return structureOf(decodeModel(bytes, path), resolve(path), bytes);
  };
  return mismatch(read(first), read(second));
}

/**
 * Writes first * ratio + second * (1 - ratio) at `outPath` (+ `<outPath>_data`, page-aligned), from the models
 * at `first` and `second` (float32 weights; embedded or external). Throws OnnxGraphError ('incompatible_models')
 * when they are not one architecture.
 */
export function writeMergedModel(first: string, second: string, ratio: number, outPath: string): MergeReport {
  if (!(ratio >= 0 && ratio <= 1)) throw new OnnxGraphError(`merge: ratio must be between 0 and 1 (got ${ratio})`, 'bad_spec');
  const b = (() => {
    const bytes = readFileSync(resolve(second));
    return structureOf(decodeModel(bytes, second), resolve(second), bytes);
  })();
  const aBytes = readFileSync(resolve(first));
  const model = decodeModel(aBytes, first);
  const a = structureOf(model, resolve(first), aBytes);
  const problem = mismatch(a, b);
  if (problem) throw new OnnxGraphError(`the two models are not one architecture: ${problem}`, 'incompatible_models');

  const out = resolve(outPath);
  mkdirSync(dirname(out), { recursive: true });
  const location = `${basename(out)}_data`;
  const dataPath = resolve(dirname(out), location);
  const tmp = `${dataPath}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  const fds = new Map<string, number>();
  const report: MergeReport = { tensors: 0, merged: 0, identical: 0, dataBytes: 0 };
  const baseDir = dirname(resolve(first));
  try {
    for (const t of model.graph!.initializer) {
      report.tensors++;
      const mine = readTensorBytes(t, baseDir);
      const theirs = readSource(b.initializers.get(t.name)!.source, fds);
      let bytes: Uint8Array;
      if (equalBytes(mine, theirs)) {
        bytes = mine;
        report.identical++;
      } else if (t.dataType === DT.FLOAT) {
        bytes = mergeFloats(mine, theirs, ratio);
        report.merged++;
      } else {
        throw new OnnxGraphError(`the two models are not one architecture: their ${DTYPE_NAMES[t.dataType] ?? t.dataType} constant ${t.name} differs (only float32 weights can be merged)`, 'incompatible_models');
      }
      // Small embedded tensors (scalars, shapes) stay in the graph; the weights go to the data file.
      if (!isExternal(t) && bytes.byteLength < 1024) {
        setEmbedded(t, bytes);
        continue;
      }
      const pad = (4096 - (report.dataBytes % 4096)) % 4096;
      if (pad) report.dataBytes += writeSync(fd, new Uint8Array(pad), 0, pad, report.dataBytes);
      const offset = report.dataBytes;
      report.dataBytes += writeSync(fd, bytes, 0, bytes.byteLength, offset);
      pointAt(t, location, offset, bytes.byteLength);
    }
  } finally {
    closeSync(fd);
    for (const f of fds.values()) closeSync(f);
  }
  renameSync(tmp, dataPath);
  atomicWrite(out, encodeModel(model, out));
  return report;
}

function setEmbedded(t: TensorProto, bytes: Uint8Array): void {
  t.rawData = bytes.slice();
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
}

function pointAt(t: TensorProto, location: string, offset: number, length: number): void {
  setEmbedded(t, new Uint8Array(0));
  t.dataLocation = TensorProto_DataLocation.EXTERNAL;
  t.externalData = [
    create(StringStringEntryProtoSchema, { key: 'location', value: location }),
    create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
    create(StringStringEntryProtoSchema, { key: 'length', value: String(length) }),
  ];
}
