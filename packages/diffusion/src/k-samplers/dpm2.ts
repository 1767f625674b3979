/**
 * dpm_2 and dpm_2_ancestral (k-diffusion's "DPM-Solver-2 inspired" samplers): an Euler half-step to the
 * geometric mean of the step's two sigmas, the model there, and the full step with that midpoint slope; the
 * step to 0 is plain Euler. The ancestral form steps down to sigma_down and adds fresh noise of std sigma_up
 * (eta 1 by default). ComfyUI runs both on one more sigma than asked and drops the penultimate one
 * (DISCARD_PENULTIMATE_SIGMA_SAMPLERS), which is the schedule's business: see the sampler descriptors.
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, derivative, SamplerContext, stepsToNoise, unchanged, type NoiseDraw } from './common.ts';

/** x + (target - sigma) * slope at the midpoint sqrt(sigma * target); the caller has the slope d at sigma. */
async function midpointStep(ctx: SamplerContext, x: Tensor, d: Tensor, sigma: number, target: number, step: number): Promise<Tensor> {
  const mid = Math.exp((Math.log(sigma) + Math.log(target)) / 2);
  const x2 = combine([1, x], [mid - sigma, d]);
  const d2 = derivative(x2, mid, (await ctx.model(x2, mid, step, 1)).denoised);
  return combine([1, x], [target - sigma, d2]);
}

export const sampleDpm2: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpm_2');
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const d = derivative(x, sigma, denoised);
    x = next === 0 ? combine([1, x], [next - sigma, d]) : await midpointStep(ctx, x, d, sigma, next, i);
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};

export const sampleDpm2Ancestral: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpm_2_ancestral');
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const noise: NoiseDraw = ctx.noise(eta > 0 && sNoise !== 0 && stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, next, eta);
    const d = derivative(x, sigma, denoised);
    if (sigmaDown === 0) {
      x = combine([1, x], [-sigma, d]);
    } else {
      x = await midpointStep(ctx, x, d, sigma, sigmaDown, i);
      x = noise.add(x, sigma, next, sNoise * sigmaUp);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
