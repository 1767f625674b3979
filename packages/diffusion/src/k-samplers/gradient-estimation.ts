/**
 * gradient_estimation and its cfg++ form (Permenter & Yuan 2024, "Interpreting and Improving Diffusion Models
 * from an Optimization Perspective", openreview o2ND9v0CeK): Euler steps whose slope, from the second step on,
 * is extrapolated from the last two, d + (gamma - 1)(d - d_prev) with gamma 2 by default. The cfg++ form
 * (Chung et al. 2024) takes the slope from the negative prompt's estimate U and lands on D:
 * x' = D + sigma' (x - U) / sigma before the correction. A step to 0 returns D.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, derivative, SamplerContext, unchanged, uncondOf } from './common.ts';

async function gradientEstimation(name: string, x: Tensor, run: SamplerRun, cfgPp: boolean): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  const gamma = ctx.number('geGamma', 2, () => true, '');
  let previous: Tensor | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const out = await ctx.model(x, sigma, i);
    const { denoised } = out;
    const d = derivative(x, sigma, cfgPp ? uncondOf(out) : denoised);
    const dt = next - sigma;
    if (next === 0) {
      x = denoised;
    } else {
      x = cfgPp ? combine([1, denoised], [next, d]) : combine([1, x], [dt, d]);
      if (i >= 1) x = combine([1, x], [(gamma - 1) * dt, d], [-(gamma - 1) * dt, previous!]);
    }
    previous = d;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

export const sampleGradientEstimation: SamplerFunction = (x, run) => gradientEstimation('gradient_estimation', x, run, false);
export const sampleGradientEstimationCfgPp: SamplerFunction = (x, run) => gradientEstimation('gradient_estimation_cfg_pp', x, run, true);
