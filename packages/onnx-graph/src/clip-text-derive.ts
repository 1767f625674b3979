// Derived CLIP text encoders, cached on disk like the UNet's derived graphs (derived-cache.ts), keyed by the
// model file's content and the variant:
// - `hiddenLayer: i`: last_hidden_state = final_layer_norm(output of encoder layer i), pooler_output unchanged
//   (ComfyUI's clip skip with layer_norm_hidden_state, for SD-1.x and SD-2.x);
// - `tokenEmbeddingsInput`: the token embedding lookup's output becomes a graph input (textual inversion: the
//   engine looks the rows up itself and splices an embedding's vectors in). input_ids stays an input: the causal
//   mask's size and the pooled output's position (argmax over the ids) come from it. The report says where the
//   lookup table's float32 rows are in the source's files, so the engine reads only the rows a prompt uses.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { discoverClipText } from './clip-text.ts';
import { deriveModel } from './derive.ts';
import { cachedModel, derivedCacheDir, type DerivedEntry } from './derived-cache.ts';
import { OnnxGraphError } from './errors.ts';
import { externalDataFiles, externalRef, isExternal, saveModel, type ModelFile } from './model-io.ts';
import { TensorProto_DataType, type ModelProto } from './proto.ts';
import { recomputeOutput } from './recompute-output.ts';

/** Bump when a variant's graph (or its report) for the same source and spec changes. */
const CLIP_TEXT_VERSION = 2;

export interface ClipTextVariantSpec {
  /** 0-based encoder layer whose normalised output becomes last_hidden_state; absent: the model's last. */
  hiddenLayer?: number;
  /** Feed the token embeddings (graph input `tokenEmbeddings.input` of the report) instead of looking them up. */
  tokenEmbeddingsInput?: boolean;
}

/** Where a float32 initializer's bytes lie: `file` at `offset`, row-major `dims`. */
export interface TensorLocation {
  file: string;
  offset: number;
  dims: number[];
}

export interface ClipTextVariantReport {
  /** Encoder layers of the source graph. */
  layers: number;
  hiddenLayer?: number;
  /** With tokenEmbeddingsInput: the input's name and the lookup table's location ([vocabulary, width]). */
  tokenEmbeddings?: { input: string; table: TensorLocation };
}

export function deriveClipText(file: ModelFile, spec: ClipTextVariantSpec): { model: ModelProto; report: ClipTextVariantReport } {
  const structure = discoverClipText(file.proto);
  const layers = structure.layers.length;
  let model = file.proto;
  const report: ClipTextVariantReport = { layers };
  if (spec.hiddenLayer !== undefined) {
    const i = spec.hiddenLayer;
    if (!(Number.isInteger(i) && i >= 0 && i < layers)) throw new OnnxGraphError(`hiddenLayer ${i}: the text encoder has layers 0..${layers - 1}`, 'bad_spec');
    if (i < layers - 1) {
      const norm = structure.finalLayerNorm;
      model = recomputeOutput(model, { module: norm.path, from: structure.layers[i]!, output: norm.output }).model;
    }
    report.hiddenLayer = i;
  }
  if (spec.tokenEmbeddingsInput) {
    const input = structure.tokenEmbedding.output;
    model = deriveModel(model, { reuse: [input] }, { baseDir: file.baseDir }).model;
    report.tokenEmbeddings = { input, table: locateFloat32(file, structure.tokenEmbedding.weight) };
  }
  return { model, report };
}

/**
 * The path of the variant of the CLIP text encoder at `modelPath`, derived and written on first use into
 * `<its folder>/.gategraph-derived/` (or into the folder it already is in, for a model that is itself a cache
 * entry, e.g. a float16 encoder's float32 conversion).
 */
export async function clipTextModelPath(modelPath: string, spec: ClipTextVariantSpec, options: { cacheDir?: string } = {}): Promise<DerivedEntry<ClipTextVariantReport>> {
  const source = resolve(modelPath);
  const folder = dirname(source);
  const cacheDir = options.cacheDir ?? derivedCacheDir(modelPath);
  const canonical = { clipText: CLIP_TEXT_VERSION, hiddenLayer: spec.hiddenLayer ?? null, tokenEmbeddingsInput: spec.tokenEmbeddingsInput === true };
  const keyOf = (sha: string) => createHash('sha256').update(JSON.stringify({ modelHash: sha, spec: canonical })).digest('hex').slice(0, 32);
  const entry = await cachedModel(source, cacheDir, keyOf, canonical, (file, onnxPath) => {
    const { model, report } = deriveClipText(file, spec);
    const saved = saveModel(model, onnxPath, { baseDir: file.baseDir, externalData: 'auto' });
    // The table's file is recorded relative to the source's folder: the entry is keyed by content and shared by
    // every path that reaches the same model (symlinked folders), some of which may be gone by the next use.
    const te = report.tokenEmbeddings;
    const recorded = te ? { ...report, tokenEmbeddings: { ...te, table: { ...te.table, file: relative(folder, te.table.file) } } } : report;
    return { report: recorded, bytes: saved.bytes, dataFiles: externalDataFiles(file.proto, file.baseDir) };
  });
  const te = entry.report.tokenEmbeddings;
  if (!te) return entry;
  return { ...entry, report: { ...entry.report, tokenEmbeddings: { ...te, table: { ...te.table, file: resolve(folder, te.table.file) } } } };
}

/** Where initializer `name` of `file` keeps its float32 bytes: an external data file, or the .onnx itself. */
function locateFloat32(file: ModelFile, name: string): TensorLocation {
  const t = file.proto.graph!.initializer.find((x) => x.name === name);
  if (!t) throw new OnnxGraphError(`no initializer "${name}"`, 'unknown_tensor');
  if (t.dataType !== TensorProto_DataType.FLOAT) throw new OnnxGraphError(`initializer ${name} is not float32 (type ${t.dataType})`, 'bad_spec');
  const dims = t.dims.map(Number);
  if (isExternal(t)) {
    const ref = externalRef(t);
    return { file: resolve(file.baseDir, ref.location), offset: ref.offset, dims };
  }
  if (t.rawData.byteLength === 0) throw new OnnxGraphError(`initializer ${name} keeps its values in float_data, not raw bytes; re-export the model`, 'bad_spec');
  // Decoded protobuf bytes are views into the file's bytes (proto.ts): the view's offset is the file offset.
  const offset = t.rawData.byteOffset;
  const probe = Buffer.alloc(Math.min(64, t.rawData.byteLength));
  const fd = openSync(file.path, 'r');
  try {
    readSync(fd, probe, 0, probe.length, offset);
  } finally {
    closeSync(fd);
  }
  if (!probe.equals(t.rawData.subarray(0, probe.length))) throw new OnnxGraphError(`cannot locate initializer ${name} in ${file.path}`, 'bad_spec');
  return { file: file.path, offset, dims };
}
