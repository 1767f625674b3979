/**
 * Seeded Gaussian noise, reproducible across runs and platforms (pure JS, integer PRNGs, no Math.random).
 *
 * Two algorithms:
 * - `'torch-cpu'` (default): bit-for-bit `torch.randn(shape, generator=torch.manual_seed(seed))` in float32
 *   on an x86-64 CPU, i.e. the initial noise ComfyUI's KSampler draws for a seed (it always draws on the CPU).
 *   Same seed + same latent shape in ComfyUI and here => same starting latent. See noise/torch-cpu.ts.
 * - `'philox'`: Philox4x32-10 + float64 Box-Muller, documented in noise/philox.ts so any language can
 *   reimplement it; counter-based (value k of the stream needs no state but k).
 */
import { sizeOf, type Tensor } from './tensor.ts';
import { TorchCpuNormal } from './noise/torch-cpu.ts';
import { PhiloxNormal } from './noise/philox.ts';

export type NoiseKind = 'torch-cpu' | 'philox';
export const NOISE_KINDS: readonly NoiseKind[] = ['torch-cpu', 'philox'];

const MAX_SEED = (1n << 64n) - 1n;

/** A stream of standard normal values. Successive `randn` calls continue the stream (like a torch.Generator). */
export interface NoiseGenerator {
  readonly kind: NoiseKind;
  /** The seed as given, normalised to an unsigned 64-bit integer. */
  readonly seed: bigint;
  randn(shape: readonly number[]): Tensor;
}

/**
 * Checks a seed and returns it as an unsigned 64-bit bigint. Accepts ComfyUI's range 0..2^64-1 as a number,
 * a bigint or a decimal string. Above 2^53 a JS number (and so a seed parsed by JSON.parse) cannot hold every
 * integer: pass a bigint or a string to be exact there.
 */
export function normalizeSeed(seed: number | bigint | string): bigint {
  let value: bigint;
  if (typeof seed === 'number') {
    if (!Number.isInteger(seed)) throw new RangeError(`Seed ${seed} is not an integer; use a whole number from 0 to ${MAX_SEED}`);
    value = BigInt(seed);
  } else if (typeof seed === 'string') {
    if (!/^\d+$/.test(seed.trim())) throw new RangeError(`Seed "${seed}" is not a whole number; use digits only, from 0 to ${MAX_SEED}`);
    value = BigInt(seed.trim());
  } else {
    value = seed;
  }
  if (value < 0n || value > MAX_SEED) {
    const hint = typeof seed === 'number' && !Number.isSafeInteger(seed) ? ' (numbers above 2^53 are rounded by JavaScript: pass the seed as a bigint or a decimal string)' : '';
    throw new RangeError(`Seed ${value} is out of range; use a whole number from 0 to ${MAX_SEED}${hint}`);
  }
  return value;
}

function checkKind(kind: string): NoiseKind {
  if (!(NOISE_KINDS as readonly string[]).includes(kind)) {
    throw new RangeError(`Unknown noise algorithm "${kind}"; valid ones are: ${NOISE_KINDS.join(', ')}`);
  }
  return kind as NoiseKind;
}

export function createNoiseGenerator(seed: number | bigint | string, kind: NoiseKind = 'torch-cpu'): NoiseGenerator {
  const s = normalizeSeed(seed);
  const k = checkKind(kind);
  const source = k === 'torch-cpu' ? new TorchCpuNormal(s) : new PhiloxNormal(s);
  return {
    kind: k,
    seed: s,
    randn(shape: readonly number[]): Tensor {
      const data = new Float32Array(sizeOf(shape));
      source.fill(data);
      return { data, shape: [...shape] };
    },
  };
}

/** One draw from a fresh generator: ComfyUI's initial latent noise for `seed` when kind is 'torch-cpu'. */
export function randn(shape: readonly number[], seed: number | bigint | string, kind: NoiseKind = 'torch-cpu'): Tensor {
  return createNoiseGenerator(seed, kind).randn(shape);
}

/**
 * The generator for the per-step noise of ancestral samplers (euler_ancestral). ComfyUI seeds it with
 * `seed + 1` when sampling on the CPU (comfy/k_diffusion/sampling.py, default_noise_sampler), so the step noise
 * is not the initial noise again; with 'torch-cpu' this reproduces ComfyUI's CPU sampling. Wraps at 2^64.
 */
export function createAncestralNoiseGenerator(seed: number | bigint | string, kind: NoiseKind = 'torch-cpu'): NoiseGenerator {
  return createNoiseGenerator(BigInt.asUintN(64, normalizeSeed(seed) + 1n), kind);
}
