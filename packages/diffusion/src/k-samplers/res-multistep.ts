/**
 * res_multistep and its cfg++ / ancestral forms: the second-order multistep exponential integrator of
 * "Refined Exponential Solver" (Zhang et al. 2023, arXiv 2308.02157) in data prediction. With t = -log sigma,
 * h = t_down - t (the step ends at the ancestral sigma_down; sigma' itself without eta) and
 * c2 = (t_prev - t_old_down) / h locating the previous estimate:
 *   x' = e^-h x + h (b1 D + b2 D_prev),  b1 = phi1(-h) - phi2(-h) / c2,  b2 = phi2(-h) / c2
 * with phi1(z) = (e^z - 1) / z and phi2(z) = (phi1(z) - 1) / z. The first step, and any step to 0, is Euler.
 * Then ancestral noise sigma_up (eta: 0 for res_multistep, 1 for the _ancestral forms). cfg++ moves x by
 * (D - U) and uses the negative prompt's estimates U in place of D inside the update (CFG++, Chung et al.).
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, derivative, lambdaOf, nanToZero, SamplerContext, stepsToNoise, unchanged, uncondOf } from './common.ts';

async function resMultistep(name: string, x: Tensor, run: SamplerRun, cfgPp: boolean, defaultEta: number): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  const eta = ctx.number('eta', defaultEta);
  const sNoise = ctx.number('sNoise', 1);
  const noise = ctx.noise(eta > 0 && sNoise !== 0 && stepsToNoise(ctx.sigmas));
  let previous: Tensor | undefined;
  let previousSigmaDown = 0;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const out = await ctx.model(x, sigma, i);
    const { denoised } = out;
    const uncond = uncondOf(out);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, next, eta);
    if (sigmaDown === 0 || previous === undefined) {
      x = cfgPp
        ? combine([1, denoised], [sigmaDown, derivative(x, sigma, uncond)])
        : combine([1, x], [sigmaDown - sigma, derivative(x, sigma, denoised)]);
    } else {
      const t = lambdaOf(sigma);
      const h = lambdaOf(sigmaDown) - t;
      const c2 = (lambdaOf(ctx.sigma(i - 1)) - lambdaOf(previousSigmaDown)) / h;
      const phi1 = Math.expm1(-h) / -h;
      const phi2 = (phi1 - 1) / -h;
      const b1 = nanToZero(phi1 - phi2 / c2);
      const b2 = nanToZero(phi2 / c2);
      const decay = Math.exp(-h);
      x = cfgPp
        ? combine([decay, x], [decay, denoised], [h * b1 - decay, uncond], [h * b2, previous])
        : combine([decay, x], [h * b1, denoised], [h * b2, previous]);
    }
    if (next > 0) x = noise.add(x, sigma, next, sNoise * sigmaUp);
    previous = cfgPp ? uncond : denoised;
    previousSigmaDown = sigmaDown;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

export const sampleResMultistep: SamplerFunction = (x, run) => resMultistep('res_multistep', x, run, false, 0);
export const sampleResMultistepCfgPp: SamplerFunction = (x, run) => resMultistep('res_multistep_cfg_pp', x, run, true, 0);
export const sampleResMultistepAncestral: SamplerFunction = (x, run) => resMultistep('res_multistep_ancestral', x, run, false, 1);
export const sampleResMultistepAncestralCfgPp: SamplerFunction = (x, run) => resMultistep('res_multistep_ancestral_cfg_pp', x, run, true, 1);
