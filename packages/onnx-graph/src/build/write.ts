// Writing a built graph: every checkpoint weight is converted to float32 (F16/BF16 widened, Linear weights
// transposed, slices cut) and streamed, one tensor at a time, into one data file next to the model, each tensor
// page-aligned so onnxruntime can memory-map it; the .onnx then holds only the graph (~1-2 MB for SD's UNet).
// Why converted weights rather than external data pointing into the .safetensors itself: README.md, "Graphs
// built from checkpoints" (measured).
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { atomicWrite } from '../model-io.ts';
import { StringStringEntryProtoSchema, TensorProto_DataLocation, create, encodeModel } from '../proto.ts';
import type { BuiltGraph } from './builder.ts';
import type { WeightSource } from './weights.ts';

export interface WriteReport {
  /** Absolute path of the .onnx. */
  path: string;
  /** Absolute path of its data file. */
  dataPath: string;
  onnxBytes: number;
  dataBytes: number;
  tensors: number;
  /** Elements converted from float16 / bfloat16 / float64. */
  convertedElements: number;
}

/** Weights smaller than this stay inside the .onnx (norm scales of small models, biases). */
const EMBED_BELOW = 1024;
const PAGE = 4096;

/**
 * Writes `built` to `outPath` with its weights read from `source` into `<outPath>_data` (or `dataName`, a file name
 * in the same folder). The model proto passed in is modified (its weight initializers get their locations).
 */
export function writeBuiltModel(built: BuiltGraph, source: WeightSource, outPath: string, options: { dataName?: string } = {}): WriteReport {
  const out = resolve(outPath);
  mkdirSync(dirname(out), { recursive: true });
  const location = options.dataName ?? `${basename(out)}_data`;
  const dataPath = resolve(dirname(out), location);
  const tmp = `${dataPath}.tmp-${process.pid}`;
  const byName = new Map(built.model.graph!.initializer.map((t) => [t.name, t]));
  const fd = openSync(tmp, 'w');
  let position = 0;
  let converted = 0;
  try {
    for (const { name, ref } of built.weights) {
      const tensor = byName.get(name);
      if (!tensor) throw new Error(`planned weight ${name} has no initializer`);
      const values = source.values(ref);
      if (ref.info.dtype !== 'F32') converted += values.length;
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      if (bytes.byteLength < EMBED_BELOW) {
        tensor.rawData = bytes.slice();
        continue;
      }
      const pad = (PAGE - (position % PAGE)) % PAGE;
      if (pad) position += writeSync(fd, new Uint8Array(pad), 0, pad, position);
      const offset = position;
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
      position += done;
      tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
      tensor.externalData = [
        create(StringStringEntryProtoSchema, { key: 'location', value: location }),
        create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
        create(StringStringEntryProtoSchema, { key: 'length', value: String(bytes.byteLength) }),
      ];
    }
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, dataPath);
  const encoded = encodeModel(built.model, out);
  atomicWrite(out, encoded);
  return { path: out, dataPath, onnxBytes: encoded.byteLength, dataBytes: position, tensors: built.weights.length, convertedElements: converted };
}
