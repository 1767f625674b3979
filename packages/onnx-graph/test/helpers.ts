// Shared test setup: the test UNet (env GATEGRAPH_TEST_MODEL, a model folder with unet/model.onnx, default the
// repo's models/tiny-sd), seeded inputs, and onnxruntime runs.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { encodeModel, loadModel, type ModelFile, type ModelProto } from '../src/index.ts';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const testModelDir = resolve(process.env.GATEGRAPH_TEST_MODEL ?? join(repoRoot, 'models', 'tiny-sd'));
export const unetPath = join(testModelDir, 'unet', 'model.onnx');
export const haveModel = existsSync(unetPath);
export const skipReason = haveModel
  ? false
  : `no test UNet at ${unetPath}: set GATEGRAPH_TEST_MODEL to a model folder (e.g. one written by tools/tiny-sd/export.py or tools/sd15-unet/export_random_unet.py --config tiny)`;

export interface UNetConfig {
  down_block_types: string[];
  up_block_types: string[];
  layers_per_block: number;
  cross_attention_dim: number;
  in_channels: number;
  sample_size: number;
}

export function unetConfig(): UNetConfig {
  return JSON.parse(readFileSync(join(testModelDir, 'unet', 'config.json'), 'utf8')) as UNetConfig;
}

/** Transformer blocks per diffusers config (SD-1.x: one per Transformer2DModel), so attn1 = attn2 = this. */
export function expectedTransformerBlocks(c: UNetConfig): number {
  const down = c.down_block_types.filter((t) => t.startsWith('CrossAttn')).length * c.layers_per_block;
  const up = c.up_block_types.filter((t) => t.startsWith('CrossAttn')).length * (c.layers_per_block + 1);
  return down + 1 + up;
}

let cached: ModelFile | undefined;
export function testUNet(): ModelFile {
  cached ??= loadModel(unetPath);
  return cached;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function randomTensor(dims: number[], seed: number): ort.Tensor {
  const r = rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() + r() + r() - 1.5) * 2;
  return new ort.Tensor('float32', data, dims);
}

/** Inputs of one CFG step of the test UNet. */
export function unetFeeds(batch = 2, seed = 1): Record<string, ort.Tensor> {
  const c = unetConfig();
  const file = testUNet();
  const sample = file.proto.graph!.input.find((i) => i.name === 'sample')!;
  const t = sample.type!.value;
  const dims = t.case === 'tensorType' ? t.value.shape!.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : undefined)) : [];
  const h = dims[2] ?? c.sample_size;
  const w = dims[3] ?? c.sample_size;
  return {
    sample: randomTensor([batch, c.in_channels, h, w], seed),
    timestep: new ort.Tensor('float32', new Float32Array(batch).fill(601), [batch]),
    encoder_hidden_states: randomTensor([batch, 77, c.cross_attention_dim], seed + 7),
  };
}

export async function sessionOf(model: ModelProto | string): Promise<ort.InferenceSession> {
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };
  return typeof model === 'string' ? ort.InferenceSession.create(model, opts) : ort.InferenceSession.create(encodeModel(model), opts);
}

/** Runs a model, feeding only the inputs it declares. */
export async function run(model: ModelProto | string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await sessionOf(model);
  try {
    const wanted = Object.fromEntries(session.inputNames.map((n) => {
      const t = feeds[n];
      if (!t) throw new Error(`no feed for input ${n} (have ${Object.keys(feeds).join(', ')})`);
      return [n, t];
    }));
    return (await session.run(wanted)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

/** max |a-b| / max|b|: relative to the reference's scale, so near-zero elements do not dominate. */
export function maxRelError(a: ort.Tensor, b: ort.Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return diff / (scale || 1);
}
