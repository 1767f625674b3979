// Making a published model runnable on onnxruntime's CPU provider, as a float32 graph that behaves like any
// other (TGATE's surgery included):
// - fp16 / bf16 exports (weights and inputs/outputs float16) are upcast to float32: the CPU provider has few
//   float16 kernels, and float32 is what every other part of the engine feeds and reads. Weights are converted
//   one tensor at a time into a new data file, so an SD-sized UNet never sits in memory twice.
// - random sampling inside the graph (diffusers' old converter and optimum <= 1.22 export the VAE encoder as
//   `mean + std * randn_like(std)`) is replaced by zeros, so the encoder returns the posterior mean, as
//   ComfyUI's VAE encode does, and img2img stays deterministic.
import { closeSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { DeclaredIo } from './declared-io.ts';
import { OnnxGraphError } from './errors.ts';
import { atomicWrite, isExternal, readTensorBytes, type ModelFile } from './model-io.ts';
import { halfToFloatTable } from './safetensors.ts';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  cloneModel,
  create,
  encodeModel,
  newNode,
  newTensor,
  tensorElementCount,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.ts';

const FLOAT = TensorProto_DataType.FLOAT;
const FLOAT16 = TensorProto_DataType.FLOAT16;
const BFLOAT16 = TensorProto_DataType.BFLOAT16;
const isHalf = (type: number) => type === FLOAT16 || type === BFLOAT16;

/** Operators that draw random numbers: a deterministic engine replaces them by zeros. */
const SAMPLING_OPS = new Set(['RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike']);

export interface CpuFloat32Report {
  /** Initializers converted from float16 / bfloat16. */
  upcastInitializers: number;
  /** Graph inputs, outputs and value infos whose type changed to float32. */
  upcastValues: number;
  /** Nodes whose dtype attribute or constant changed to float32 (Cast, Constant, ConstantOfShape...). */
  upcastNodes: number;
  /** Random sampling nodes replaced by zeros, by name. */
  samplingReplaced: string[];
}

/**
 * What writeCpuFloat32 would change in a model, told from what the file declares (readDeclaredIo: inputs,
 * outputs, the main graph's operators and weight types), without reading its weights: float16 / bfloat16
 * to upcast, random sampling to replace.
 */
export function cpuFloat32Needs(io: DeclaredIo): { upcast: boolean; sampling: boolean } {
  const half = (type: string) => type === 'float16' || type === 'bfloat16';
  return {
    upcast: [...io.inputs, ...io.outputs].some((t) => half(t.type)) || Object.keys(io.initializerTypes).some(half),
    sampling: io.operators.some((op) => op.startsWith('ai.onnx::') && SAMPLING_OPS.has(op.slice('ai.onnx::'.length))),
  };
}

/**
 * Writes `file` as a float32 model without random sampling at `outPath`, every initializer that is external
 * or converted streamed into `<outPath>_data` (page-aligned, so onnxruntime can map it). The source model and
 * its files are not modified.
 */
export function writeCpuFloat32(file: ModelFile, outPath: string): CpuFloat32Report {
  const model = cloneModel(file.proto);
  const report: CpuFloat32Report = { upcastInitializers: 0, upcastValues: 0, upcastNodes: 0, samplingReplaced: [] };
  if (!model.graph) throw new OnnxGraphError(`${file.path} holds no graph`, 'decode_failed');
  for (const graph of graphsOf(model.graph)) {
    replaceSampling(graph, report);
    for (const value of [...graph.input, ...graph.output, ...graph.valueInfo]) {
      if (isHalf(elemTypeOf(value))) {
        setElemType(value, FLOAT);
        report.upcastValues++;
      }
    }
    for (const node of graph.node) if (upcastNode(node)) report.upcastNodes++;
  }

  const out = resolve(outPath);
  mkdirSync(dirname(out), { recursive: true });
  const location = `${basename(out)}_data`;
  const dataPath = resolve(dirname(out), location);
  const tmp = `${dataPath}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let position = 0;
  try {
    for (const graph of graphsOf(model.graph)) {
      for (const tensor of graph.initializer) {
        const half = isHalf(tensor.dataType);
        // Small embedded tensors (shapes, scalars) stay in the graph; large ones and external ones move.
        if (!half && !isExternal(tensor) && tensor.rawData.byteLength < 1024) continue;
        let bytes = readTensorBytes(tensor, file.baseDir);
        if (half) {
          bytes = halfToFloat32Bytes(bytes, tensor.dataType, tensor);
          report.upcastInitializers++;
        }
        const pad = (4096 - (position % 4096)) % 4096;
        if (pad) position += writeSync(fd, new Uint8Array(pad), 0, pad, position);
        const offset = position;
        position += writeSync(fd, bytes, 0, bytes.byteLength, position);
        pointAt(tensor, location, offset, bytes.byteLength);
        if (half) tensor.dataType = FLOAT;
      }
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dataPath);
  atomicWrite(out, encodeModel(model, out));
  return report;
}

/** The main graph and every subgraph (If branches, Loop and Scan bodies), depth first. */
function* graphsOf(graph: GraphProto | undefined): Generator<GraphProto> {
  if (!graph) return;
  yield graph;
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.g) yield* graphsOf(a.g);
      for (const g of a.graphs) yield* graphsOf(g);
    }
  }
}

function elemTypeOf(value: ValueInfoProto): number {
  return value.type?.value.case === 'tensorType' ? value.type.value.value.elemType : 0;
}

function setElemType(value: ValueInfoProto, type: number): void {
  if (value.type?.value.case === 'tensorType') value.type.value.value.elemType = type;
}

/** Float32 instead of float16 in a node's dtype attributes and constants. Returns whether it changed. */
function upcastNode(node: NodeProto): boolean {
  let changed = false;
  for (const a of node.attribute) {
    // Cast's `to`, the Random* / EyeLike `dtype`: an int attribute naming an element type.
    if ((a.name === 'to' || a.name === 'dtype') && a.type === AttributeProto_AttributeType.INT && isHalf(Number(a.i))) {
      a.i = BigInt(FLOAT);
      changed = true;
    }
    // Constant's `value`, ConstantOfShape's `value`: an embedded tensor.
    if (a.t && isHalf(a.t.dataType)) {
      const bytes = halfToFloat32Bytes(readTensorBytes(a.t, ''), a.t.dataType, a.t);
      a.t = newTensor({ name: a.t.name, dims: a.t.dims, dataType: FLOAT, rawData: bytes });
      changed = true;
    }
  }
  return changed;
}

/**
 * Replaces each random sampling node by zeros of the same shape: `RandomNormalLike(x)` becomes
 * `ConstantOfShape(Shape(x), 0)`, `RandomNormal(shape=...)` a constant of that shape.
 */
function replaceSampling(graph: GraphProto, report: CpuFloat32Report): void {
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.domain !== '' || !SAMPLING_OPS.has(node.opType)) {
      nodes.push(node);
      continue;
    }
    const output = node.output[0]!;
    const zero = create(AttributeProtoSchema, {
      name: 'value',
      type: AttributeProto_AttributeType.TENSOR,
      t: newTensor({ dims: [1n], dataType: FLOAT, rawData: new Uint8Array(4) }),
    });
    if (node.opType.endsWith('Like')) {
      const shape = `${output}::shape`;
      nodes.push(newNode({ name: `${node.name}::shape`, opType: 'Shape', input: [node.input[0]!], output: [shape] }));
      nodes.push(newNode({ name: node.name, opType: 'ConstantOfShape', input: [shape], output: [output], attribute: [zero] }));
    } else {
      const dims = node.attribute.find((a) => a.name === 'shape')?.ints ?? [];
      const shapeName = `${output}::shape`;
      graph.initializer.push(
        newTensor({ name: shapeName, dims: [BigInt(dims.length)], dataType: TensorProto_DataType.INT64, rawData: new Uint8Array(BigInt64Array.from(dims).buffer) }),
      );
      nodes.push(newNode({ name: node.name, opType: 'ConstantOfShape', input: [shapeName], output: [output], attribute: [zero] }));
    }
    report.samplingReplaced.push(node.name || output);
  }
  graph.node = nodes;
}

function pointAt(tensor: TensorProto, location: string, offset: number, length: number): void {
  tensor.rawData = new Uint8Array(0);
  tensor.floatData = [];
  tensor.int32Data = [];
  tensor.externalData = [
    create(StringStringEntryProtoSchema, { key: 'location', value: location }),
    create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
    create(StringStringEntryProtoSchema, { key: 'length', value: String(length) }),
  ];
  tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
}

/** 16-bit float data (float16, or bfloat16: the top half of a float32) as float32 bytes. */
function halfToFloat32Bytes(bytes: Uint8Array, type: number, tensor: TensorProto): Uint8Array<ArrayBuffer> {
  const count = tensorElementCount(tensor);
  if (bytes.byteLength !== count * 2) {
    throw new OnnxGraphError(`initializer ${tensor.name} holds ${bytes.byteLength} bytes for ${count} 16-bit values`, 'external_data');
  }
  const halves = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const out = new Float32Array(count);
  if (type === BFLOAT16) {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i]! << 16;
  } else {
    const table = halfToFloatTable();
    for (let i = 0; i < count; i++) out[i] = table[halves[i]!]!;
  }
  return new Uint8Array(out.buffer);
}
