/**
 * ipndm and ipndm_v: the improved pseudo-numerical methods of Zhang & Chen 2023 (DEIS paper, iPNDM), as in
 * zju-pi/diff-sampler and ComfyUI: Adams–Bashforth in sigma on the slopes d = (x - D) / sigma, order rising by
 * one per step up to 4 (the `order` option lowers the cap). ipndm uses the fixed-step Adams–Bashforth weights
 * whatever the spacing of the sigmas; ipndm_v ("variable step") uses weights derived for the actual uneven
 * steps. A step to 0 returns D.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, derivative, SamplerContext, unchanged } from './common.ts';

/** Fixed-step Adams–Bashforth weights of d_i, d_i-1, ... for orders 1..4. */
const ADAMS_BASHFORTH: readonly (readonly number[])[] = [[1], [3 / 2, -1 / 2], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24]];

/**
 * ipndm_v's weights of d_i, d_i-1, ... for step i of `order`, from the step h_n = sigma_i+1 - sigma_i and the
 * previous ones h_n-k = sigma_i-k+1 - sigma_i-k (diff-sampler's variable-step iPNDM).
 */
export function variableStepWeights(sigmas: readonly number[], i: number, order: number): number[] {
  if (order === 1) return [1];
  const s = (k: number): number => sigmas[k]!;
  const hn = s(i + 1) - s(i);
  const hn1 = s(i) - s(i - 1);
  if (order === 2) return [(2 + hn / hn1) / 2, -(hn / hn1) / 2];
  const hn2 = s(i - 1) - s(i - 2);
  const temp1 = (1 - ((hn / (3 * (hn + hn1))) * (hn * (hn + hn1))) / (hn1 * (hn1 + hn2))) / 2;
  if (order === 3) {
    return [(2 + hn / hn1) / 2 + temp1, -(hn / hn1) / 2 - (1 + hn1 / hn2) * temp1, (temp1 * hn1) / hn2];
  }
  const hn3 = s(i - 2) - s(i - 3);
  const temp2 =
    ((1 - hn / (3 * (hn + hn1))) / 2 + ((1 - hn / (2 * (hn + hn1))) * hn) / (6 * (hn + hn1 + hn2))) *
    ((hn * (hn + hn1) * (hn + hn1 + hn2)) / (hn1 * (hn1 + hn2) * (hn1 + hn2 + hn3)));
  const ratio = (hn1 * (hn1 + hn2)) / (hn2 * (hn2 + hn3));
  return [
    (2 + hn / hn1) / 2 + temp1 + temp2,
    -(hn / hn1) / 2 - (1 + hn1 / hn2) * temp1 - (1 + hn1 / hn2 + ratio) * temp2,
    (temp1 * hn1) / hn2 + (hn1 / hn2 + ratio * (1 + hn2 / hn3)) * temp2,
    ((-temp2 * ratio) * hn1) / hn2,
  ];
}

async function ipndm(name: string, x: Tensor, run: SamplerRun, variable: boolean): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  const maxOrder = ctx.integer('order', 4, 1, 4);
  const slopes: Tensor[] = []; // newest first, at most maxOrder - 1 earlier slopes
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const d = derivative(x, sigma, denoised);
    const order = Math.min(maxOrder, i + 1);
    if (next === 0) {
      x = denoised;
    } else {
      const weights = variable ? variableStepWeights(ctx.sigmas, i, order) : ADAMS_BASHFORTH[order - 1]!;
      const h = next - sigma;
      x = combine([1, x], ...[d, ...slopes].slice(0, order).map((slope, k) => [h * weights[k]!, slope] as const));
    }
    slopes.unshift(d);
    if (slopes.length > maxOrder - 1) slopes.length = maxOrder - 1;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

export const sampleIpndm: SamplerFunction = (x, run) => ipndm('ipndm', x, run, false);
export const sampleIpndmV: SamplerFunction = (x, run) => ipndm('ipndm_v', x, run, true);
