/**
 * lcm: the multistep sampling of Latent Consistency Models (Luo et al. 2023, Algorithm 1): each step jumps to
 * the model's estimate D and, unless the next level is 0, noises it afresh to that level, x' = D + sigma' z
 * (ComfyUI's noise_scaling for eps and v models: the training schedule enters only through the sigmas). Nothing
 * of x survives a step except through D, so it is meant for LCM-distilled models and few steps.
 */
import type { SamplerFunction } from './types.ts';
import { SamplerContext, stepsToNoise, unchanged } from './common.ts';

export const sampleLcm: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'lcm');
  const noise = ctx.noise(stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    x = next > 0 ? noise.add(denoised, sigma, next, next) : denoised;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
