/**
 * dpmpp_2s_ancestral and its cfg++ form: DPM-Solver++(2S) (Lu et al. 2022, arXiv 2211.01095, the
 * single-step second-order data-prediction solver) from sigma down to sigma_down with its intermediate model
 * call halfway in log sigma, then ancestral noise of std sigma_up (eta 1 by default). A step whose
 * sigma_down is 0 returns D. With t = -log sigma, h = t_down - t, s = t + h/2:
 *   u  = (sigma_s / sigma) x - (e^(-h/2) - 1) D
 *   x' = (sigma_down / sigma) x - (e^(-h) - 1) D(u, sigma_s)
 * cfg++ (Chung et al. 2024) moves x by (D - U) before both updates, U being the negative prompt's estimate. As
 * in ComfyUI, whose post-CFG hook keeps the latest call's U, the full update takes U from the intermediate call
 * (at u, sigma_s) and D from the step's first call.
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, lambdaOf, SamplerContext, stepsToNoise, unchanged, uncondOf } from './common.ts';

async function dpmpp2sAncestral(name: string, x: Tensor, run: SamplerRun, cfgPp: boolean): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const noise = ctx.noise(eta > 0 && sNoise !== 0 && stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const out = await ctx.model(x, sigma, i);
    const { denoised } = out;
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, next, eta);
    if (sigmaDown === 0) {
      x = denoised;
    } else {
      const t = lambdaOf(sigma);
      const h = lambdaOf(sigmaDown) - t;
      const sigmaMid = Math.exp(-(t + h / 2));
      const base = cfgPp ? combine([1, x], [1, denoised], [-1, uncondOf(out)]) : x;
      const u = combine([sigmaMid / sigma, base], [-Math.expm1(-h / 2), denoised]);
      const second = await ctx.model(u, sigmaMid, i, 1);
      const finalBase = cfgPp ? combine([1, x], [1, denoised], [-1, uncondOf(second)]) : x;
      x = combine([sigmaDown / sigma, finalBase], [-Math.expm1(-h), second.denoised]);
    }
    if (next > 0) x = noise.add(x, sigma, next, sNoise * sigmaUp);
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

export const sampleDpmpp2sAncestral: SamplerFunction = (x, run) => dpmpp2sAncestral('dpmpp_2s_ancestral', x, run, false);
export const sampleDpmpp2sAncestralCfgPp: SamplerFunction = (x, run) => dpmpp2sAncestral('dpmpp_2s_ancestral_cfg_pp', x, run, true);
