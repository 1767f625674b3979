/**
 * er_sde: the Extended Reverse-time SDE solver (Cui et al. 2023, arXiv 2309.06169, "VP ER-SDE-Solver-3"), in
 * the form of the authors' code and ComfyUI. In k-diffusion units its time lambda is sigma itself. With a noise
 * scaler f (ER-SDE's f(l) = l (e^(l^0.3) + 10) by default) and r = f(sigma') / f(sigma):
 *   stage 1:  x' = r x + (1 - r) D
 *   stage 2:  + (dt + S f(sigma')) (D - D_prev) / (sigma - sigma_prev),  S = integral of 1/f over [sigma', sigma]
 *   stage 3:  + (dt^2/2 + S_u f(sigma')) * the second divided difference, S_u = integral of (l - sigma)/f(l)
 * (dt = sigma' - sigma; the integrals are the authors' 200-point left sums, kept so that results match theirs),
 * then noise sqrt(sigma'^2 - sigma^2 r^2) z. Stages rise with the steps up to maxStage (3). A step to 0 returns D.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, SamplerContext, stepsToNoise, unchanged } from './common.ts';

const INTEGRATION_POINTS = 200;

/** ER-SDE's default noise scaler. */
export function erSdeNoiseScaler(lambda: number): number {
  return lambda * (Math.exp(lambda ** 0.3) + 10);
}

export const sampleErSde: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'er_sde');
  const sNoise = ctx.number('sNoise', 1);
  const maxStage = ctx.integer('maxStage', 3, 1, 3);
  const f = ctx.options.noiseScaler ?? erSdeNoiseScaler;
  const noise = ctx.noise(sNoise > 0 && stepsToNoise(ctx.sigmas));
  let previous: Tensor | undefined;
  let previousSlope: Tensor | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const stage = Math.min(maxStage, i + 1);
    if (next === 0) {
      x = denoised;
    } else {
      const r = f(next) / f(sigma);
      x = combine([r, x], [1 - r, denoised]);
      if (stage >= 2) {
        const dt = next - sigma;
        const width = -dt / INTEGRATION_POINTS;
        let s = 0;
        let sU = 0;
        for (let k = 0; k < INTEGRATION_POINTS; k++) {
          const l = next + k * width;
          s += width / f(l);
          sU += ((l - sigma) / f(l)) * width;
        }
        const gap = sigma - ctx.sigma(i - 1);
        const slope = combine([1 / gap, denoised], [-1 / gap, previous!]);
        x = combine([1, x], [dt + s * f(next), slope]);
        if (stage >= 3) {
          const halfGap = (sigma - ctx.sigma(i - 2)) / 2;
          const curvature = combine([1 / halfGap, slope], [-1 / halfGap, previousSlope!]);
          x = combine([1, x], [(dt * dt) / 2 + sU * f(next), curvature]);
        }
        previousSlope = slope;
      }
      if (sNoise > 0) {
        const std = Math.sqrt(next * next - sigma * sigma * r * r);
        x = noise.add(x, sigma, next, sNoise * (Number.isNaN(std) ? 0 : std));
      }
    }
    previous = denoised;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
