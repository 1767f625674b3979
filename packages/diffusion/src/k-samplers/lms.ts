/**
 * lms: k-diffusion's linear multistep sampler. The ODE dx/dsigma = d(x, sigma) is stepped by integrating the
 * polynomial through the last `order` slopes (Adams–Bashforth on the uneven sigma grid):
 *   x' = x + sum_j c_j d_{i-j},   c_j = integral from sigma_i to sigma_i+1 of the Lagrange basis polynomial
 *   of the nodes sigma_i, ..., sigma_i-order+1 that is 1 at sigma_i-j.
 * ComfyUI computes c_j with scipy's integrate.quad; here our Gauss–Kronrod quadrature does (exact for these
 * polynomials). The first steps use as many slopes as there are; a step to 0 returns D.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, derivative, SamplerContext, unchanged, type Term } from './common.ts';
import { integrate, lagrangeBasis } from './quadrature.ts';

/**
 * c_j for step i with `order` slopes: the integral over [t_i, t_i+1] of the Lagrange basis of the nodes
 * t_i, t_i-1, ..., t_i-order+1 that is 1 at t_i-j.
 */
export function lmsCoefficient(order: number, t: readonly number[], i: number, j: number): number {
  if (order - 1 > i) throw new RangeError(`lms: order ${order} is too high for step ${i}`);
  const nodes = Array.from({ length: order }, (_, k) => t[i - k]!);
  return integrate(lagrangeBasis(nodes, j), t[i]!, t[i + 1]!);
}

export const sampleLms: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'lms');
  const order = ctx.integer('order', 4, 1, 100);
  const slopes: Tensor[] = []; // newest last, at most `order`
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = ctx.sigma(i);
    const next = ctx.sigma(i + 1);
    const { denoised } = await ctx.model(x, sigma, i);
    slopes.push(derivative(x, sigma, denoised));
    if (slopes.length > order) slopes.shift();
    if (next === 0) {
      x = denoised;
    } else {
      const used = Math.min(i + 1, order);
      const terms: Term[] = [[1, x]];
      for (let j = 0; j < used; j++) terms.push([lmsCoefficient(used, ctx.sigmas, i, j), slopes[slopes.length - 1 - j]!]);
      x = combine(...terms);
    }
    ctx.report(i, x, denoised, sigma, next);
  }
  return ctx.steps === 0 ? unchanged(x) : x;
};
