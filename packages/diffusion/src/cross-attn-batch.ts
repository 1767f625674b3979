/**
 * Classifier-free guidance with prompts of different lengths (a 77-token negative beside a 154-token positive),
 * as ComfyUI's CONDCrossAttn (comfy/conds.py) batches them:
 *
 * - can_concat: two encoder_hidden_states of the same batch and width share one UNet call when repeating each
 *   along the sequence to the least common multiple of their lengths costs at most 4x the shorter one
 *   (lcm / min <= 4: 77 with 154, 231 or 308 tokens; 154 with 231). Repeating keys and values leaves attention's
 *   result unchanged (each softmax weight is split evenly among the copies), so this only costs time.
 * - concat: each is repeated to the lcm, then they are stacked on the batch axis.
 * - otherwise (77 with 385 tokens, 154 with 385...) the two halves run as two UNet calls, whose outputs are
 *   stacked as if they had been one.
 */
import * as ort from 'onnxruntime-node';
import { concatBatch, splitBatch, type Tensor } from './tensor.ts';
import type { FeedValue } from './sessions.ts';
import type { UnetRunner } from './unet-runner.ts';

/** ComfyUI's limit on repetition ("probably going to impact performance negatively if it's too much"). */
export const MAX_CROSS_ATTN_REPEAT = 4;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

/** CONDCrossAttn.can_concat on two [B, L, D] shapes. */
export function canShareCall(a: readonly number[], b: readonly number[]): boolean {
  if (a[0] !== b[0] || a[2] !== b[2]) return false;
  if (a[1] === b[1]) return true;
  const [la, lb] = [a[1]!, b[1]!];
  return lcm(la, lb) / Math.min(la, lb) <= MAX_CROSS_ATTN_REPEAT;
}

/** CONDCrossAttn.concat: each [B, L_i, D] repeated along the sequence to the lcm of the L_i, stacked on batch. */
export function concatCrossAttn(conds: readonly Tensor[]): Tensor {
  const length = conds.reduce((m, c) => lcm(m, c.shape[1]!), 1);
  return concatBatch(conds.map((c) => repeatSequence(c, length / c.shape[1]!)));
}

function repeatSequence(t: Tensor, times: number): Tensor {
  if (times === 1) return t;
  const [b, l, d] = t.shape as [number, number, number];
  const data = new Float32Array(b * l * times * d);
  for (let i = 0; i < b; i++) {
    const row = t.data.subarray(i * l * d, (i + 1) * l * d);
    for (let r = 0; r < times; r++) data.set(row, (i * times + r) * l * d);
  }
  return { data, shape: [b, l * times, d] };
}

export interface SeparateHalves {
  /** Rows of the [uncond, cond] call these feeds were built for (2B). */
  rows: number;
  /** The UNet's encoder_hidden_states input, fed `contexts[0]` in the first call and `contexts[1]` in the second. */
  contextName: string;
  contexts: readonly [Tensor, Tensor];
}

/**
 * Runs a [uncond, cond] step as two calls of B rows. Feeds with 2B rows (the sample, per-row timesteps, a
 * planner's cached tensors, which the StepPlan contract gives 2B rows on such a step) are split in halves; the
 * others (scalar timesteps, switches, placeholders) go to both calls. Outputs are stacked back to 2B rows.
 */
export async function runHalvesSeparately(
  unet: UnetRunner,
  variant: string,
  feeds: Record<string, FeedValue>,
  halves: SeparateHalves,
  fetches: readonly string[],
): Promise<Record<string, Tensor>> {
  if (halves.contextName in feeds) throw new Error(`runHalvesSeparately: ${halves.contextName} is fed per half; leave it out of the feeds`);
  const outputs: Record<string, Tensor>[] = [];
  for (const k of [0, 1] as const) {
    const part: Record<string, FeedValue> = { [halves.contextName]: halves.contexts[k] };
    for (const [name, value] of Object.entries(feeds)) part[name] = halfOf(value, halves.rows, k);
    outputs.push(await unet.run(variant, part, fetches));
  }
  return Object.fromEntries(fetches.map((n) => [n, concatBatch([outputs[0]![n]!, outputs[1]![n]!])]));
}

function halfOf(value: FeedValue, rows: number, k: 0 | 1): FeedValue {
  if (!('dims' in value)) return value.shape[0] === rows ? splitBatch(value, 2)[k]! : value;
  if (Number(value.dims[0]) !== rows || typeof value.data === 'string' || !ArrayBuffer.isView(value.data)) return value;
  const data = value.data as Float32Array | BigInt64Array | Int32Array | Uint8Array;
  const per = data.length / rows;
  const dims = [rows / 2, ...value.dims.slice(1)];
  return new ort.Tensor(value.type as 'float32', data.subarray(k * per * (rows / 2), (k + 1) * per * (rows / 2)) as Float32Array, dims);
}
