/**
 * ddpm: ancestral sampling of Ho et al. 2020 (DDPM, Algorithm 2) between the run's noise levels. Each level is
 * turned into its cumulative alpha, abar = 1 / (1 + sigma^2), as ComfyUI does (from sigma, so any schedule
 * works, not only the training timesteps); in the variance-preserving sample x_vp = x / sqrt(1 + sigma^2), with
 * a = abar / abar' for the move from sigma to sigma':
 *   x_vp' = (x_vp - (1 - a) eps / sqrt(1 - abar)) / sqrt(a) + sqrt((1 - a)(1 - abar') / (1 - abar)) z
 * (the posterior mean and variance of q(x_t-1 | x_t, x0)), with no noise on a step to 0, and x' = x_vp'
 * sqrt(1 + sigma'^2) back in k-diffusion units.
 */
import type { SamplerFunction } from './types.ts';
import { combine, SamplerContext, stepsToNoise, unchanged } from './common.ts';

export const sampleDdpm: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'ddpm');
  const noise = ctx.noise(stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const abar = 1 / (sigma * sigma + 1);
    const abarNext = 1 / (next * next + 1);
    const alpha = abar / abarNext;
    const toVp = 1 / Math.sqrt(1 + sigma * sigma);
    // eps = (x - D) / sigma; the mean is (x_vp - (1 - alpha) eps / sqrt(1 - abar)) / sqrt(alpha).
    const epsWeight = (1 - alpha) / Math.sqrt(1 - abar) / sigma;
    const meanScale = 1 / Math.sqrt(alpha);
    let mean = combine([meanScale * (toVp - epsWeight), x], [meanScale * epsWeight, denoised]);
    if (next > 0) {
      mean = noise.add(mean, sigma, next, Math.sqrt(((1 - alpha) * (1 - abarNext)) / (1 - abar)));
      x = combine([Math.sqrt(1 + next * next), mean]);
    } else {
      x = mean;
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
