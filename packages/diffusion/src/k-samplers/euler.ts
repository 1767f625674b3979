/**
 * The Euler family: euler, euler_ancestral and their cfg++ forms (comfy/k_diffusion/sampling.py).
 *
 * euler (Karras et al. 2022, Algorithm 2 without churn): x' = x + (sigma' - sigma) d, d = (x - D) / sigma.
 * euler_ancestral: the Euler step goes down to sigma_down, then fresh noise of std sigma_up brings the sample
 * back to sigma' (k-diffusion's ancestral split, eta = 1 by default); a step to sigma' = 0 returns D.
 * cfg++ (Chung et al. 2024, "CFG++"): the step's direction is taken from the negative prompt's estimate U and
 * its landing point from the guided D: x' = D + sigma_down (x - U) / sigma, which lets guidance act like a
 * small cfg. euler_cfg_pp is euler_ancestral_cfg_pp with eta 0.
 *
 * These are the variance-exploding forms; ComfyUI switches euler_ancestral to a different update for
 * rectified-flow models (CONST model sampling), which this engine does not run.
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, derivative, SamplerContext, stepsToNoise, unchanged, uncondOf } from './common.ts';

export const sampleEuler: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'euler');
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const ratio = next / sigma;
    x = combine([ratio, x], [1 - ratio, denoised]);
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};

export const sampleEulerAncestral: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'euler_ancestral');
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const noise = ctx.noise(eta > 0 && sNoise !== 0 && stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, next, eta);
    if (sigmaDown === 0) {
      x = denoised;
    } else {
      const ratio = sigmaDown / sigma;
      x = noise.add(combine([ratio, x], [1 - ratio, denoised]), sigma, next, sNoise * sigmaUp);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};

async function eulerAncestralCfgPp(name: string, x: Tensor, run: SamplerRun, eta: number, sNoise: number): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  // ComfyUI draws only when both are positive (not merely when the weight is non-zero).
  const noise = ctx.noise(eta > 0 && sNoise > 0 && stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const out = await ctx.model(x, sigma, i);
    const { denoised } = out;
    if (next === 0) {
      x = denoised;
    } else {
      // In k-diffusion units alpha = 1 at every sigma, so the ancestral split is the plain one.
      const { sigmaDown, sigmaUp } = ancestralStep(sigma, next, eta);
      x = combine([1, denoised], [sigmaDown, derivative(x, sigma, uncondOf(out))]);
      if (eta > 0 && sNoise > 0) x = noise.add(x, sigma, next, sNoise * sigmaUp);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

export const sampleEulerAncestralCfgPp: SamplerFunction = (x, run) => {
  const probe = new SamplerContext(run, 'euler_ancestral_cfg_pp');
  return eulerAncestralCfgPp('euler_ancestral_cfg_pp', x, run, probe.number('eta', 1), probe.number('sNoise', 1));
};

/** ComfyUI fixes eta and s_noise at 0 here (options are ignored, as there). */
export const sampleEulerCfgPp: SamplerFunction = (x, run) => eulerAncestralCfgPp('euler_cfg_pp', x, run, 0, 0);
