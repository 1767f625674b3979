/**
 * deis: Zhang & Chen 2023's Diffusion Exponential Integrator Sampler in its "tAB" form (zju-pi/diff-sampler,
 * as ComfyUI runs it): Adams–Bashforth on the slopes d = (x - D) / sigma with the past slopes interpolated by
 * a polynomial in the VP time t rather than in sigma, order rising to 3 (the `order` option sets the cap,
 * 1..4). Step i with order k:
 *   x' = x + sum_j c_ij d_i-j,   c_ij = integral from sigma_i to sigma_i+1 of L_j(t(sigma)) dsigma
 * where L_j is the Lagrange basis polynomial of t_i, ..., t_i-k+1 that is 1 at t_i-j, and t(sigma) is the
 * time of a VP SDE with linear beta fitted to EDM's range (sigma 0.002 to 80 at t = 1e-3 to 1; ComfyUI fixes
 * these constants whatever the model). The reference code writes c_ij as an integral over t of L_j times
 * dsigma/dt and sums it with 10,000 equal samples in float32; here the same integral is taken in sigma with
 * adaptive Gauss–Kronrod quadrature, so the coefficients agree with the reference's to about 1e-5 relative
 * (its discretisation) and are exact to 1e-10 here. Steps to 0 are Euler steps (= D), as there.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, derivative, SamplerContext, unchanged, type Term } from './common.ts';
import { integrate, lagrangeBasis } from './quadrature.ts';

const EDM_EPSILON_T = 1e-3;
const EDM_SIGMA_MIN = 0.002;
const EDM_SIGMA_MAX = 80;

/** The VP time of a sigma for DEIS: log(1 + sigma^2) = beta_d t^2 / 2 + beta_min t, solved for t >= 0. */
export function deisTime(sigma: number): number {
  const logMax = Math.log1p(EDM_SIGMA_MAX ** 2);
  const betaD = (2 * (Math.log1p(EDM_SIGMA_MIN ** 2) / EDM_EPSILON_T - logMax)) / (EDM_EPSILON_T - 1);
  const betaMin = logMax - 0.5 * betaD;
  return (Math.sqrt(betaMin * betaMin + 2 * betaD * Math.log1p(sigma * sigma)) - betaMin) / betaD;
}

/** c_i0 .. c_i(order-1) of deis for step i (order >= 2; order 1 is the Euler step). */
export function deisCoefficients(sigmas: readonly number[], i: number, order: number): number[] {
  if (order - 1 > i) throw new RangeError(`deis: order ${order} is too high for step ${i}`);
  const nodes = Array.from({ length: order }, (_, k) => deisTime(sigmas[i - k]!));
  return nodes.map((_, j) => {
    const basis = lagrangeBasis(nodes, j);
    return integrate((sigma) => basis(deisTime(sigma)), sigmas[i]!, sigmas[i + 1]!);
  });
}

export const sampleDeis: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'deis');
  const maxOrder = ctx.integer('order', 3, 1, 4);
  const slopes: Tensor[] = []; // newest first, at most maxOrder - 1 earlier slopes
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    const d = derivative(x, sigma, denoised);
    const order = next <= 0 ? 1 : Math.min(maxOrder, i + 1);
    if (order === 1) {
      x = combine([1, x], [next - sigma, d]);
    } else {
      const c = deisCoefficients(ctx.sigmas, i, order);
      const terms: Term[] = [[1, x]];
      [d, ...slopes].slice(0, order).forEach((slope, j) => terms.push([c[j]!, slope]));
      x = combine(...terms);
    }
    slopes.unshift(d);
    if (slopes.length > maxOrder - 1) slopes.length = maxOrder - 1;
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
