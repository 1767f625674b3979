/**
 * dpmpp_2m and dpmpp_2m_cfg_pp: DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2, the
 * multistep second-order data-prediction solver) in k-diffusion's sigma form. With t = -log sigma,
 * h = t' - t and r = h_last / h:
 *   first step, or a step to 0:  x' = (sigma'/sigma) x - (e^-h - 1) D
 *   otherwise:                   x' = (sigma'/sigma) x - (e^-h - 1) ((1 + 1/(2r)) D - (1/(2r)) D_prev)
 * The cfg++ form (Chung et al. 2024) keeps the negative prompt's estimates U and lands on D:
 *   x' = D + e^-h (x - U) - (e^-h - 1) (1/(2r)) (D - U_prev)   (the last term from the second step on)
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, lambdaOf, SamplerContext, unchanged, uncondOf } from './common.ts';

export const sampleDpmpp2m: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpmpp_2m');
  let previous: Tensor | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const h = lambdaOf(next) - lambdaOf(sigma);
    const c = -Math.expm1(-h);
    if (previous === undefined || next === 0) {
      x = combine([next / sigma, x], [c, denoised]);
    } else {
      const r = (lambdaOf(sigma) - lambdaOf(ctx.sigma(i - 1))) / h;
      const k = 1 / (2 * r);
      x = combine([next / sigma, x], [c * (1 + k), denoised], [-c * k, previous]);
    }
    previous = denoised;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};

export const sampleDpmpp2mCfgPp: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpmpp_2m_cfg_pp');
  let previousUncond: Tensor | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const out = await ctx.model(x, sigma, i);
    const { denoised } = out;
    const uncond = uncondOf(out);
    const h = lambdaOf(next) - lambdaOf(sigma);
    const decay = Math.exp(-h);
    if (previousUncond === undefined || next === 0) {
      x = combine([1, denoised], [-decay, uncond], [decay, x]);
    } else {
      const r = (lambdaOf(sigma) - lambdaOf(ctx.sigma(i - 1))) / h;
      const k = -Math.expm1(-h) / (2 * r);
      x = combine([1 + k, denoised], [-decay, uncond], [-k, previousUncond], [decay, x]);
    }
    previousUncond = uncond;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
