/**
 * SEEDS (Gonzalez et al. 2023, arXiv 2305.14267, "Stochastic Explicit Exponential Derivative-free Solvers",
 * VP data prediction) with 2 and 3 stages, and the exponential Heun methods ComfyUI builds from SEEDS-2.
 * With lambda = -log sigma, h = lambda' - lambda, h_eta = h (1 + eta), stage points at fractions r of h, and
 * phi_1(z) = e^z - 1, phi_2(z) = (e^z - 1 - z) / z (both times z, as the reference writes them):
 *   stage at fraction c:  x_c = (sigma_c / sigma) e^(-c h eta) x - (combination of the earlier D's, weighted
 *                         by phi_1 and phi_2 of -c h_eta)
 * and each stage's noise continues the previous stage's noise (scaled by e^((c_prev - c) h eta)) with a fresh
 * draw over (sigma_prev_stage, sigma_c), so the injected noise is one Brownian path through the step.
 * seeds_2: r = 1/2, solver 'phi_1' (D's mixed as (1 - 1/(2r)) D + 1/(2r) D_2) or 'phi_2'; eta 1, s_noise 1.
 * seeds_3: stages at 1/3 and 2/3. exp_heun_2_x0: seeds_2 with r = 1, 'phi_2' and no noise (deterministic
 * exponential Heun in x0 and log-SNR); exp_heun_2_x0_sde: the same with noise (eta 1, s_noise 1).
 * A step to 0 returns D.
 */
import { zeros, type Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, lambdaOf, SamplerContext, stepsToNoise, unchanged, type NoiseDraw, type Term } from './common.ts';

/** z phi_1(z) in exponential-integrator notation: e^z - 1. */
const hPhi1 = (z: number): number => Math.expm1(z);
/** z phi_2(z): (e^z - 1 - z) / z. */
const hPhi2 = (z: number): number => (Math.expm1(z) - z) / z;

/**
 * The running noise of a step: carried from one stage to the next, decayed by e^segment and topped up with a
 * fresh draw over the stage's own interval, so that the total matches the SDE's variance.
 */
function continueNoise(noise: NoiseDraw, carried: Tensor | undefined, segment: number, from: number, to: number, like: Tensor): Tensor {
  const weight = Math.sqrt(-Math.expm1(2 * segment));
  const fresh = noise.draw(from, to, weight, like);
  const terms: Term[] = [];
  if (carried !== undefined) terms.push([Math.exp(segment), carried]);
  if (fresh !== undefined) terms.push([weight, fresh]);
  return terms.length > 0 ? combine(...terms) : zeros(like.shape);
}

type SeedsTwoSolver = 'phi_1' | 'phi_2';

async function seeds2(name: string, x: Tensor, run: SamplerRun, eta: number, sNoise: number, r: number, solver: SeedsTwoSolver): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  if (solver !== 'phi_1' && solver !== 'phi_2') throw new RangeError(`${name}: solverType must be 'phi_1' or 'phi_2' (got ${String(solver)})`);
  const inject = eta > 0 && sNoise > 0;
  const noise = ctx.noise(inject && stepsToNoise(ctx.sigmas));
  const fac = 1 / (2 * r);
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    if (next === 0) {
      x = denoised;
      ctx.report(i, x, denoised, sigma, next);
      continue;
    }
    const lambdaS = lambdaOf(sigma);
    const h = lambdaOf(next) - lambdaS;
    const hEta = h * (eta + 1);
    const sigmaMid = Math.exp(-(lambdaS + r * h));
    let x2 = combine([(sigmaMid / sigma) * Math.exp(-r * h * eta), x], [-hPhi1(-r * hEta), denoised]);
    let sde: Tensor | undefined;
    if (inject) {
      sde = continueNoise(noise, undefined, -r * h * eta, sigma, sigmaMid, x);
      x2 = combine([1, x2], [sigmaMid * sNoise, sde]);
    }
    const second = (await ctx.model(x2, sigmaMid, i, 1)).denoised;
    const keep = (next / sigma) * Math.exp(-h * eta);
    if (solver === 'phi_1') {
      const c = hPhi1(-hEta);
      x = combine([keep, x], [-c * (1 - fac), denoised], [-c * fac, second]);
    } else {
      const b2 = hPhi2(-hEta) / r;
      const b1 = hPhi1(-hEta) - b2;
      x = combine([keep, x], [-b1, denoised], [-b2, second]);
    }
    if (inject) {
      sde = continueNoise(noise, sde, (r - 1) * h * eta, sigmaMid, next, x);
      x = combine([1, x], [next * sNoise, sde]);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
}

function seedsTwoSolver(ctx: SamplerContext, fallback: SeedsTwoSolver): SeedsTwoSolver {
  return (ctx.options.solverType ?? fallback) as SeedsTwoSolver;
}

export const sampleSeeds2: SamplerFunction = (x, run) => {
  const ctx = new SamplerContext(run, 'seeds_2');
  const r = ctx.number('r', 0.5, (v) => v > 0 && v <= 1, 'in (0, 1]');
  return seeds2('seeds_2', x, run, ctx.number('eta', 1), ctx.number('sNoise', 1), r, seedsTwoSolver(ctx, 'phi_1'));
};

/** ComfyUI passes no eta, s_noise or r to it: they are fixed (0, 0, 1), only the solver can change. */
export const sampleExpHeun2X0: SamplerFunction = (x, run) =>
  seeds2('exp_heun_2_x0', x, run, 0, 0, 1, seedsTwoSolver(new SamplerContext(run, 'exp_heun_2_x0'), 'phi_2'));

export const sampleExpHeun2X0Sde: SamplerFunction = (x, run) => {
  const ctx = new SamplerContext(run, 'exp_heun_2_x0_sde');
  return seeds2('exp_heun_2_x0_sde', x, run, ctx.number('eta', 1), ctx.number('sNoise', 1), 1, seedsTwoSolver(ctx, 'phi_2'));
};

export const sampleSeeds3: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'seeds_3');
  const eta = ctx.number('eta', 1);
  const sNoise = ctx.number('sNoise', 1);
  const r1 = 1 / 3;
  const r2 = 2 / 3;
  const inject = eta > 0 && sNoise > 0;
  const noise = ctx.noise(inject && stepsToNoise(ctx.sigmas));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    if (next === 0) {
      x = denoised;
      ctx.report(i, x, denoised, sigma, next);
      continue;
    }
    const lambdaS = lambdaOf(sigma);
    const h = lambdaOf(next) - lambdaS;
    const hEta = h * (eta + 1);
    const sigma1 = Math.exp(-(lambdaS + r1 * h));
    const sigma2 = Math.exp(-(lambdaS + r2 * h));
    // Stage 1, at r1.
    let x2 = combine([(sigma1 / sigma) * Math.exp(-r1 * h * eta), x], [-hPhi1(-r1 * hEta), denoised]);
    let sde: Tensor | undefined;
    if (inject) {
      sde = continueNoise(noise, undefined, -r1 * h * eta, sigma, sigma1, x);
      x2 = combine([1, x2], [sigma1 * sNoise, sde]);
    }
    const d2 = (await ctx.model(x2, sigma1, i, 1)).denoised;
    // Stage 2, at r2.
    const a32 = (r2 / r1) * hPhi2(-r2 * hEta);
    const a31 = hPhi1(-r2 * hEta) - a32;
    let x3 = combine([(sigma2 / sigma) * Math.exp(-r2 * h * eta), x], [-a31, denoised], [-a32, d2]);
    if (inject) {
      sde = continueNoise(noise, sde, (r1 - r2) * h * eta, sigma1, sigma2, x);
      x3 = combine([1, x3], [sigma2 * sNoise, sde]);
    }
    const d3 = (await ctx.model(x3, sigma2, i, 2)).denoised;
    // The whole step.
    const b3 = hPhi2(-hEta) / r2;
    const b1 = hPhi1(-hEta) - b3;
    x = combine([(next / sigma) * Math.exp(-h * eta), x], [-b1, denoised], [-b3, d3]);
    if (inject) {
      sde = continueNoise(noise, sde, (r2 - 1) * h * eta, sigma2, next, x);
      x = combine([1, x], [next * sNoise, sde]);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
