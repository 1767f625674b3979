/**
 * dpmpp_2m_sde, dpmpp_2m_sde_heun and dpmpp_3m_sde: the multistep DPM-Solver++ SDE solvers (Lu et al. 2022,
 * arXiv 2211.01095, section on SDE solvers; the 3M form is k-diffusion's). With lambda = -log sigma,
 * h = lambda' - lambda and h_eta = h (1 + eta), each step is the exact exponential-integrator move
 *   x' = (sigma'/sigma) e^(-eta h) x + (1 - e^(-h_eta)) D
 * plus corrections from the previous estimates (first differences for 2M, first and second for 3M) and
 * fresh noise sigma' sqrt(1 - e^(-2 eta h)) z. A step to 0 returns D. eta 1 and s_noise 1 by default.
 * dpmpp_2m_sde's correction is the 'midpoint' one by default, dpmpp_2m_sde_heun's the 'heun' one.
 *
 * ComfyUI draws z from a Brownian tree over (sigma, sigma'); the _gpu variants are the same functions with
 * the tree built on the GPU, i.e. they differ only in where the noise is drawn.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, lambdaOf, SamplerContext, stepsToNoise, unchanged, type NoiseDraw } from './common.ts';

/** The noise term of both solvers: sigma' sqrt(1 - e^(-2 eta h)) s_noise z when eta and s_noise are positive. */
function addSdeNoise(noise: NoiseDraw, x: Tensor, sigma: number, next: number, h: number, eta: number, sNoise: number): Tensor {
  if (!(eta > 0 && sNoise > 0)) return x;
  return noise.add(x, sigma, next, next * Math.sqrt(-Math.expm1(-2 * h * eta)) * sNoise);
}

async function dpmpp2mSde(name: string, x: Tensor, run: SamplerRun, defaultSolver: 'midpoint' | 'heun'): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  if (ctx.steps === 0) return unchanged(x);
  const solver = ctx.options.solverType ?? defaultSolver;
  if (solver !== 'midpoint' && solver !== 'heun') throw new RangeError(`${name}: solverType must be 'midpoint' or 'heun' (got ${String(solver)})`);
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const noise = ctx.noise(eta > 0 && sNoise > 0 && stepsToNoise(ctx.sigmas));
  let previous: Tensor | undefined;
  // h keeps its value across a step to 0, as ComfyUI's does (it only matters for a 0 inside the schedule).
  let h: number | undefined;
  let hLast: number | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    if (next === 0) {
      x = denoised;
    } else {
      h = lambdaOf(next) - lambdaOf(sigma);
      const hEta = h * (eta + 1);
      const decayed = -Math.expm1(-hEta);
      const keep = (next / sigma) * Math.exp(-h * eta);
      if (previous === undefined) {
        x = combine([keep, x], [decayed, denoised]);
      } else {
        const r = hLast! / h;
        const c = solver === 'heun' ? (decayed / -hEta + 1) / r : (0.5 * decayed) / r;
        x = combine([keep, x], [decayed + c, denoised], [-c, previous]);
      }
      x = addSdeNoise(noise, x, sigma, next, h, eta, sNoise);
    }
    previous = denoised;
    hLast = h;
    ctx.report(i, x, denoised, sigma, next);
  }
  return x;
}

export const sampleDpmpp2mSde: SamplerFunction = (x, run) => dpmpp2mSde('dpmpp_2m_sde', x, run, 'midpoint');
export const sampleDpmpp2mSdeHeun: SamplerFunction = (x, run) => dpmpp2mSde('dpmpp_2m_sde_heun', x, run, 'heun');

export const sampleDpmpp3mSde: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpmpp_3m_sde');
  if (ctx.steps === 0) return unchanged(x);
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const noise = ctx.noise(eta > 0 && sNoise > 0 && stepsToNoise(ctx.sigmas));
  let d1: Tensor | undefined; // the previous estimate
  let d2: Tensor | undefined; // the one before
  let h: number | undefined;
  let h1: number | undefined;
  let h2: number | undefined;
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    if (next === 0) {
      x = denoised;
    } else {
      h = lambdaOf(next) - lambdaOf(sigma);
      const hEta = h * (eta + 1);
      const keep = (next / sigma) * Math.exp(-h * eta);
      const decayed = -Math.expm1(-hEta);
      const phi2 = Math.expm1(-hEta) / hEta + 1;
      if (h2 !== undefined) {
        // Second-order correction from the divided differences of the last three estimates:
        // phi2 (d1_0 + (d1_0 - d1_1) r0 / (r0 + r1)) - phi3 (d1_0 - d1_1) / (r0 + r1), with
        // d1_0 = (D - D_1) / r0 and d1_1 = (D_1 - D_2) / r1, expanded into weights of D, D_1, D_2.
        const r0 = h1! / h;
        const r1 = h2 / h;
        const phi3 = phi2 / hEta - 0.5;
        const a = phi2 * (1 + r0 / (r0 + r1)) - phi3 / (r0 + r1);
        const b = -phi2 * (r0 / (r0 + r1)) + phi3 / (r0 + r1);
        x = combine([keep, x], [decayed + a / r0, denoised], [b / r1 - a / r0, d1!], [-b / r1, d2!]);
      } else if (h1 !== undefined) {
        const c = phi2 / (h1 / h);
        x = combine([keep, x], [decayed + c, denoised], [-c, d1!]);
      } else {
        x = combine([keep, x], [decayed, denoised]);
      }
      x = addSdeNoise(noise, x, sigma, next, h, eta, sNoise);
    }
    d2 = d1;
    d1 = denoised;
    h2 = h1;
    h1 = h;
    ctx.report(i, x, denoised, sigma, next);
  }
  return x;
};
