/**
 * Heun's family: heun (Karras et al. 2022, Algorithm 2 without churn: an Euler predictor to sigma', the model
 * again there, and the trapezoid of the two slopes; the step to 0 is plain Euler) and heunpp2 (ComfyUI's port
 * of "Heun++" from sd-webui-samplers-scheduler: the slopes at up to three levels, sigma_i, sigma_i+1 and
 * sigma_i+2, averaged with weights sigma_k / (n sigma_0) that shrink as sampling proceeds).
 */
import type { SamplerFunction } from './types.ts';
import { combine, derivative, SamplerContext, unchanged } from './common.ts';

export const sampleHeun: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'heun');
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const d = derivative(x, sigma, denoised);
    const dt = next - sigma;
    const euler = combine([1, x], [dt, d]);
    if (next === 0) {
      x = euler;
    } else {
      const second = await ctx.model(euler, next, i, 1);
      const d2 = derivative(euler, next, second.denoised);
      x = combine([1, x], [dt / 2, d], [dt / 2, d2]);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};

export const sampleHeunpp2: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'heunpp2');
  const sigmas = ctx.sigmas;
  const last = sigmas[sigmas.length - 1];
  const first = sigmas[0]!;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const d = derivative(x, sigma, denoised);
    const dt = next - sigma;
    const x2 = combine([1, x], [dt, d]);
    if (next === last) {
      x = x2; // the last step: Euler
    } else {
      const d2 = derivative(x2, next, (await ctx.model(x2, next, i, 1)).denoised);
      const afterNext = sigmas[i + 2]!;
      if (afterNext === last) {
        // Second to last: Heun with the slope at sigma_i+1 weighted sigma_i+1 / (2 sigma_0).
        const w2 = next / (2 * first);
        x = combine([1, x], [(1 - w2) * dt, d], [w2 * dt, d2]);
      } else {
        const x3 = combine([1, x2], [afterNext - next, d2]);
        const d3 = derivative(x3, afterNext, (await ctx.model(x3, afterNext, i, 2)).denoised);
        const w2 = next / (3 * first);
        const w3 = afterNext / (3 * first);
        x = combine([1, x], [(1 - w2 - w3) * dt, d], [w2 * dt, d2], [w3 * dt, d3]);
      }
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
