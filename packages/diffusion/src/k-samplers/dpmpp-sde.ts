/**
 * dpmpp_sde: the stochastic DPM-Solver++ of k-diffusion (Lu et al. 2022's DPM-Solver++ with ancestral noise
 * injected at both of its stages). Each step makes a first-order stochastic move to the intermediate level
 * lambda_s + r h (r = 1/2 by default), calls the model there, and makes the full stochastic move with the
 * mix (1 - 1/(2r)) D + 1/(2r) D_2. Each move goes down to its ancestral sigma_down and adds noise of std
 * sigma_up over (sigma, target) from the noise sampler, which ComfyUI makes a Brownian tree (so that a seed
 * gives the same image at any step count). A step to 0 returns D.
 *
 * dpmpp_sde_gpu is the same function: ComfyUI only builds its Brownian tree on the GPU instead of the CPU.
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { SamplerFunction } from './types.ts';
import { combine, lambdaOf, SamplerContext, stepsToNoise, unchanged } from './common.ts';

export const sampleDpmppSde: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpmpp_sde');
  if (ctx.steps === 0) return unchanged(x);
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const r = ctx.number('r', 1 / 2, (v) => v > 0, '> 0');
  const injects = eta > 0 && sNoise > 0;
  const noise = ctx.noise(injects && stepsToNoise(ctx.sigmas));
  const fac = 1 / (2 * r);
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    if (next === 0) {
      x = denoised;
    } else {
      const lambdaS = lambdaOf(sigma);
      const h = lambdaOf(next) - lambdaS;
      const sigmaMid = Math.exp(-(lambdaS + r * h));
      // Stage 1: to the intermediate level.
      const first = ancestralStep(sigma, sigmaMid, eta);
      const h1 = lambdaOf(first.sigmaDown) - lambdaS;
      let x2 = combine([Math.exp(-h1), x], [-Math.expm1(-h1), denoised]);
      if (injects) x2 = noise.add(x2, sigma, sigmaMid, sNoise * first.sigmaUp);
      const second = await ctx.model(x2, sigmaMid, i, 1);
      // Stage 2: the whole step with the mixed estimate.
      const full = ancestralStep(sigma, next, eta);
      const h2 = lambdaOf(full.sigmaDown) - lambdaS;
      const c = -Math.expm1(-h2);
      x = combine([Math.exp(-h2), x], [c * (1 - fac), denoised], [c * fac, second.denoised]);
      if (injects) x = noise.add(x, sigma, next, sNoise * full.sigmaUp);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return x;
};
