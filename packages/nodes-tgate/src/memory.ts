/**
 * Refusing sizes that would not fit in memory, before onnxruntime tries and the process dies.
 *
 * The estimates are rough upper bounds of the activations onnxruntime allocates for one UNet call or one VAE
 * decode, from the model's config.json (diffusers' UNet2DConditionModel / AutoencoderKL fields) and the
 * latent size. The dominant terms are self-attention scores, which grow with the square of the number of
 * latent cells (rows x heads x tokens^2 floats, twice: scores and softmax), and the feature maps kept for the
 * UNet's skip connections. Weights are not counted (they are the model files, already loaded).
 *
 * The limit is half of the machine's RAM, or `GATEGRAPH_MAX_ACTIVATION_MB` when set.
 */
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { weightFileBytes } from '@gategraph/diffusion';
import { SafetensorsFile } from '@gategraph/onnx-graph';
import { FLOAT_DTYPES } from '@gategraph/onnx-graph/build';
import type { ModelSizing } from './sizing.ts';

const F32 = 4;
const MIB = 1024 * 1024;

/** The activation budget in bytes, and where it comes from (for the message). */
export function activationLimit(): { bytes: number; source: string } {
  const env = process.env.GATEGRAPH_MAX_ACTIVATION_MB;
  if (env !== undefined && env.trim() !== '') {
    const mb = Number(env);
    if (Number.isFinite(mb) && mb > 0) return { bytes: mb * MIB, source: 'GATEGRAPH_MAX_ACTIVATION_MB' };
  }
  return { bytes: totalmem() / 2, source: "half of this machine's RAM; set GATEGRAPH_MAX_ACTIVATION_MB to change it" };
}

const numbers = (v: unknown, fallback: number[]): number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && x > 0) ? (v as number[]) : fallback;
const count = (v: unknown, fallback: number): number => (typeof v === 'number' && v > 0 ? v : fallback);

/** Estimated peak bytes of one UNet call on `rows` latents of h x w cells. */
export function estimateUnetBytes(model: ModelSizing, rows: number, h: number, w: number): number {
  const config = model.unetConfig;
  const channels = numbers(config.block_out_channels, [320, 640, 1280, 1280]);
  const blockTypes = Array.isArray(config.down_block_types)
    ? (config.down_block_types as unknown[]).map(String)
    : channels.map((_, i) => (i < channels.length - 1 ? 'CrossAttnDownBlock2D' : 'DownBlock2D'));
  // diffusers: num_attention_heads defaults to attention_head_dim (a historical naming quirk of SD-1.x configs)
  const headsOf = (i: number): number => {
    const v = config.num_attention_heads ?? config.attention_head_dim;
    return Array.isArray(v) ? count(v[i], 8) : count(v, 8);
  };
  const layers = count(config.layers_per_block, 2);
  const sequence = model.sequenceLength ?? 77;
  let attentionPeak = 0;
  let skips = 0;
  channels.forEach((ch, i) => {
    const tokens = Math.ceil(h / 2 ** i) * Math.ceil(w / 2 ** i);
    skips += rows * ch * tokens * F32 * (layers + 1);
    if (blockTypes[i]?.includes('Attn')) {
      const heads = headsOf(i);
      const self = rows * heads * tokens * tokens * F32 * 2;
      const cross = rows * heads * tokens * sequence * F32 * 2;
      attentionPeak = Math.max(attentionPeak, self + cross + rows * ch * tokens * F32 * 6);
    }
  });
  const working = rows * channels[0]! * h * w * F32 * 8;
  return attentionPeak + skips + working;
}

/** Estimated peak bytes of decoding `batch` latents of h x w cells one image at a time (the engine's default). */
export function estimateVaeDecodeBytes(model: ModelSizing, h: number, w: number): number {
  const config = model.vaeConfig;
  const channels = numbers(config.block_out_channels, [128, 256, 512, 512]);
  const f = model.scaleFactor;
  const fullRes = channels[0]! * h * f * w * f * F32 * 6;
  const midAttention = config.mid_block_add_attention === false ? 0 : (h * w) ** 2 * F32 * 2;
  return fullRes + midAttention + channels[channels.length - 1]! * h * w * F32 * 6;
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * The largest square image side (a multiple of `factor`, at most `cap`) whose estimate fits `limit`, or 0 when
 * even the smallest does not. `estimate(side)` must grow with `side`.
 */
export function largestSquareSide(factor: number, cap: number, limit: number, estimate: (side: number) => number): number {
  let lo = 0; // largest multiple known to fit (0 = none)
  let hi = Math.floor(cap / factor) + 1; // smallest multiple known not to fit (or beyond the cap)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (estimate(mid * factor) <= limit) lo = mid;
    else hi = mid;
  }
  return lo * factor;
}

/** ONNX components a model folder holds, whose weights are loaded into memory when it opens. */
const WEIGHT_COMPONENTS = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder'];
/** Memory the process needs besides the weights (the runtime, activations at small sizes, the server). */
const RESERVE_BYTES = 2 * 1024 ** 3;

/** The bytes of a model folder's weights: each component's graph and its external data. */
export function folderWeightBytes(dir: string): number {
  return WEIGHT_COMPONENTS.reduce((total, component) => total + weightFileBytes(join(dir, component, 'model.onnx')), 0);
}

/**
 * Why a model folder cannot be opened on this machine, or undefined: its float32 weights are held in memory
 * once (the gated graphs share them), so they must fit the RAM with room for the process. Checked when a prompt
 * is queued (an SDXL UNet alone is 10 GB).
 */
export function weightsProblem(dir: string, memory = totalmem()): string | undefined {
  return memoryProblem(folderWeightBytes(dir), memory);
}

/**
 * weightsProblem for a single-file checkpoint: its floating-point tensors as the float32 graphs built from it
 * hold them (a float16 file takes twice its size), read from the header alone.
 */
export function checkpointWeightsProblem(path: string, memory = totalmem()): string | undefined {
  let elements = 0;
  for (const t of SafetensorsFile.open(path).tensors()) {
    if (FLOAT_DTYPES.includes(t.dtype)) elements += t.shape.reduce((a, b) => a * b, 1);
  }
  return memoryProblem(elements * 4, memory);
}

function memoryProblem(bytes: number, memory: number): string | undefined {
  const room = memory - RESERVE_BYTES;
  if (bytes <= room) return undefined;
  return `its weights take ${formatBytes(bytes)} of memory once loaded, and this machine has ${formatBytes(memory)} of RAM (${formatBytes(RESERVE_BYTES)} kept for the rest): use a smaller model or a machine with more memory`;
}
