/**
 * The text encoder graphs a prompt may need besides the model's own: clip skip (another layer's normalised
 * output) and textual inversion (token embeddings fed as an input), derived once per model and variant by
 * @gategraph/onnx-graph (clipTextModelPath) and cached on disk next to the encoder.
 *
 * Their sessions come from the model's session pool and stay open while idle (derived graphs are used once per
 * prompt, and reopening costs more than encoding); they share the encoder's weights group, so at most one idle
 * variant is kept beside the encoder, and they close with the model.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { clipTextModelPath, discoverClipText, loadModel, type ClipTextVariantReport, type ClipTextVariantSpec, type TensorLocation } from '@gategraph/onnx-graph';
import type { ModelComponent } from './model-folder.ts';
import type { FeedValue } from './sessions.ts';

/** A derived text encoder, ready to run. */
export interface TextEncoderVariant {
  readonly path: string;
  readonly report: ClipTextVariantReport;
  run(feeds: Record<string, FeedValue>, fetches: readonly string[]): Promise<Record<string, ort.OnnxValue>>;
}

/** Cache entries found this process, by source file identity and spec: saves re-hashing the encoder per prompt. */
const entries = new Map<string, Promise<{ path: string; report: ClipTextVariantReport }>>();

function identity(path: string): string {
  const st = statSync(path);
  return `${path}\0${st.size}\0${st.mtimeMs}`;
}

export async function textEncoderVariant(encoder: ModelComponent, spec: ClipTextVariantSpec): Promise<TextEncoderVariant> {
  const key = `${identity(encoder.path)}\0${JSON.stringify([spec.hiddenLayer ?? null, spec.tokenEmbeddingsInput === true])}`;
  let entry = entries.get(key);
  if (!entry) {
    entry = clipTextModelPath(encoder.path, spec).then(({ path, report }) => ({ path, report }));
    entries.set(key, entry);
    entry.catch(() => entries.delete(key)); // a failed build is retried next time
  }
  const { path, report } = await entry;
  const pool = encoder.lease.sessionPool;
  return {
    path,
    report,
    async run(feeds, fetches) {
      const lease = pool.acquire(path, {}, { keepOpenWhenIdle: true, weightsGroup: encoder.lease.path });
      try {
        return await lease.run(feeds, fetches);
      } finally {
        await lease.release();
      }
    },
  };
}

/** Layers of encoder graphs without a config.json, by file identity. */
const layerCounts = new Map<string, number>();

/**
 * How many encoder layers the text encoder has: config.json's num_hidden_layers (diffusers and optimum write
 * it), else counted in the graph once per file. A derived graph checks the count again (its report's `layers`).
 */
export function exportedLayerCount(encoder: ModelComponent): number {
  const declared = encoder.config.num_hidden_layers;
  if (typeof declared === 'number' && Number.isInteger(declared) && declared > 0) return declared;
  const key = identity(encoder.path);
  let n = layerCounts.get(key);
  if (n === undefined) {
    n = discoverClipText(loadModel(encoder.path).proto).layers.length;
    layerCounts.set(key, n);
  }
  return n;
}

/** Rows of a float32 [vocabulary, width] table on disk, read one by one (a prompt needs at most 77 of 49408). */
export function readTableRows(table: TensorLocation, ids: readonly number[]): Map<number, Float32Array> {
  const [vocabulary, width] = table.dims as [number, number];
  const rows = new Map<number, Float32Array>();
  const fd = openSync(table.file, 'r');
  try {
    for (const id of new Set(ids)) {
      if (!(Number.isInteger(id) && id >= 0 && id < vocabulary)) throw new RangeError(`token id ${id} is outside the embedding table (${vocabulary} rows)`);
      const bytes = new Uint8Array(width * 4);
      let done = 0;
      while (done < bytes.length) {
        const got = readSync(fd, bytes, done, bytes.length - done, table.offset + id * width * 4 + done);
        if (got === 0) throw new Error(`${table.file} ends inside the token embedding table`);
        done += got;
      }
      rows.set(id, new Float32Array(bytes.buffer)); // ONNX stores little-endian, as every host onnxruntime runs on
    }
  } finally {
    closeSync(fd);
  }
  return rows;
}
