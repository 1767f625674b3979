/**
 * sa_solver and sa_solver_pece: SA-Solver (Xue et al. 2023, arXiv 2309.05019, "Stochastic Adams Solver"), a
 * predictor–corrector multistep method for the diffusion SDE in data prediction. With lambda = -log sigma,
 * tau the stochasticity and h = lambda' - lambda, both predictor (order 3) and corrector (order 4) are
 *   x' = (sigma'/sigma) e^(-tau^2 h) x + sum_k b_k D_k  (+ sigma' sqrt(1 - e^(-2 tau^2 h)) z on the predictor)
 * with b_k = (1 + tau^2) * integral over [lambda, lambda'] of e^((1 + tau^2)(l - lambda')) L_k(l) dl, L_k the
 * Lagrange basis through the lambdas of the estimates used (eqs. 15 and 18). The corrector redoes the previous
 * step with the newest estimate included and the predictor's own noise; sa_solver_pece evaluates the model
 * again at the corrected point (2 calls per step). tau is eta (1) while sigma lies between the sigmas at
 * sdeStartPercent (0.2) and sdeEndPercent (0.8) of the training schedule, 0 (an ODE step) outside. Orders drop
 * near the end when the schedule ends at 0, and the last step returns D.
 */
import type { Tensor } from '../tensor.ts';
import type { ModelSampling, SamplerFunction, SamplerRun } from './types.ts';
import { combine, lambdaOf, SamplerContext, unchanged, type Term } from './common.ts';

/**
 * ComfyUI's percent_to_sigma for discrete models: the sigma at training timestep (1 - percent) * 999, with
 * log-sigma interpolated between the integer timesteps (999 is ComfyUI's constant, whatever the model's count;
 * a distilled table's entry i stands for timestep i * stride + stride - 1).
 */
export function percentToSigma(modelSampling: ModelSampling, percent: number): number {
  if (percent <= 0) return 999999999.9;
  if (percent >= 1) return 0;
  const ac = modelSampling.alphasCumprod;
  const stride = modelSampling.timestepStride ?? 1;
  const logSigma = (k: number): number => 0.5 * Math.log((1 - ac[k]!) / ac[k]!);
  const t = Math.min(Math.max(((1 - percent) * 999 - (stride - 1)) / stride, 0), ac.length - 1);
  const low = Math.floor(t);
  const high = Math.ceil(t);
  const w = t - low;
  return Math.exp((1 - w) * logSigma(low) + w * logSigma(high));
}

/** Coefficients of the polynomial prod_k (u - roots[k]), lowest degree first. */
function polynomialFromRoots(roots: readonly number[]): number[] {
  let coefficients = [1];
  for (const root of roots) {
    const next = new Array<number>(coefficients.length + 1).fill(0);
    coefficients.forEach((c, p) => {
      next[p + 1]! += c;
      next[p]! -= root * c;
    });
    coefficients = next;
  }
  return coefficients;
}

/**
 * The b_k of one SA-Solver update from lambdaS to lambdaT through estimates at `nodes` (oldest first), in
 * k-diffusion units (alpha = 1). Works in u = lambda - lambdaT, where the weighted moments have the closed
 * form m_p = (1 + tau^2) * integral from -h to 0 of e^((1 + tau^2) u) u^p du, by integration by parts.
 */
export function stochasticAdamsCoefficients(
  nodes: readonly number[],
  lambdaS: number,
  lambdaT: number,
  tau: number,
  simpleOrder2 = false,
  corrector = false,
): number[] {
  const tauMul = 1 + tau * tau;
  const h = lambdaT - lambdaS;
  const n = nodes.length;
  if (simpleOrder2 && n === 2) {
    const whole = -Math.expm1(-h * tauMul);
    // The paper's simplified order-2 weights (Appendix D), [older, newer].
    if (corrector) return [whole - 0.5 * tauMul * h, 0.5 * tauMul * h];
    const older = (0.5 * tauMul * h * h) / (nodes[0]! - lambdaS);
    return [older, whole - older];
  }
  const decay = Math.exp(-tauMul * h);
  const moments = [-Math.expm1(-tauMul * h)];
  for (let p = 1; p < n; p++) moments.push(-((-h) ** p) * decay - (p / tauMul) * moments[p - 1]!);
  const shifted = nodes.map((l) => l - lambdaT);
  return shifted.map((own, k) => {
    const others = shifted.filter((_, m) => m !== k);
    const denominator = others.reduce((acc, u) => acc * (own - u), 1);
    const numerator = polynomialFromRoots(others);
    return numerator.reduce((acc, c, p) => acc + c * moments[p]!, 0) / denominator;
  });
}

async function saSolver(name: string, x: Tensor, run: SamplerRun, pece: boolean): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  if (ctx.steps === 0) return unchanged(x);
  const sNoise = ctx.number('sNoise', 1);
  const eta = ctx.number('eta', 1);
  const predictorOrder = ctx.integer('predictorOrder', 3, 1, 6);
  const correctorOrder = ctx.integer('correctorOrder', 4, 0, 6);
  const simpleOrder2 = ctx.options.simpleOrder2 ?? false;
  const startSigma = percentToSigma(run.modelSampling, ctx.number('sdeStartPercent', 0.2, (v) => v >= 0 && v <= 1, 'from 0 to 1'));
  const endSigma = percentToSigma(run.modelSampling, ctx.number('sdeEndPercent', 0.8, (v) => v >= 0 && v <= 1, 'from 0 to 1'));
  const tauAt = (sigma: number): number => (eta > 0 && startSigma >= sigma && sigma >= endSigma ? eta : 0);
  const sigmas = ctx.sigmas;
  const stochastic = sNoise > 0 && sigmas.slice(1).some((s) => s > 0 && tauAt(s) > 0);
  const noise = ctx.noise(stochastic);
  const lambdas = sigmas.map(lambdaOf);
  const maxUsed = Math.max(predictorOrder, correctorOrder);
  const lowerOrderToEnd = sigmas[sigmas.length - 1] === 0;
  let predicted = x;
  let h = 0;
  let tau = 0;
  let stepNoise: Tensor | undefined; // the predictor's noise, added again by the corrector
  const estimates: Tensor[] = []; // oldest first, at most maxUsed
  const combined = (base: Term, used: number, coefficients: number[]): Tensor =>
    combine(base, ...estimates.slice(estimates.length - used).map((d, k) => [coefficients[k]!, d] as const));
  for (let i = 0; i < ctx.steps; i++) {
    const sigma = sigmas[i]!;
    const next = sigmas[i + 1]!;
    let { denoised } = await ctx.model(predicted, sigma, i);
    const firstEstimate = denoised;
    estimates.push(denoised);
    if (estimates.length > maxUsed) estimates.shift();
    let predictorUsed = Math.min(predictorOrder, estimates.length);
    let correctorUsed = i === 0 || (next === 0 && !pece) ? 0 : Math.min(correctorOrder, estimates.length);
    if (lowerOrderToEnd) {
      predictorUsed = Math.min(predictorUsed, sigmas.length - 2 - i);
      correctorUsed = Math.min(correctorUsed, sigmas.length - 1 - i);
    }
    // Corrector: redo the step into sigma with the estimate made there.
    if (correctorUsed === 0) {
      x = predicted;
    } else {
      const b = stochasticAdamsCoefficients(lambdas.slice(i - correctorUsed + 1, i + 1), lambdas[i - 1]!, lambdas[i]!, tau, simpleOrder2, true);
      x = combined([(sigma / sigmas[i - 1]!) * Math.exp(-(tau ** 2) * h), x], correctorUsed, b);
      if (tau > 0 && sNoise > 0 && stepNoise !== undefined) x = combine([1, x], [1, stepNoise]);
      if (pece) {
        denoised = (await ctx.model(x, sigma, i, 1)).denoised;
        estimates[estimates.length - 1] = denoised;
      }
    }
    // Predictor: to the next sigma.
    if (next === 0) {
      predicted = denoised;
    } else {
      tau = tauAt(next);
      const b = stochasticAdamsCoefficients(lambdas.slice(i - predictorUsed + 1, i + 1), lambdas[i]!, lambdas[i + 1]!, tau, simpleOrder2, false);
      h = lambdas[i + 1]! - lambdas[i]!;
      predicted = combined([(next / sigma) * Math.exp(-(tau ** 2) * h), x], predictorUsed, b);
      if (tau > 0 && sNoise > 0) {
        const weight = next * Math.sqrt(-Math.expm1(-2 * tau ** 2 * h)) * sNoise;
        const z = noise.draw(sigma, next, weight, x);
        stepNoise = z === undefined ? undefined : combine([weight, z]);
        if (stepNoise !== undefined) predicted = combine([1, predicted], [1, stepNoise]);
      }
    }
    ctx.report(i, predicted, firstEstimate, sigma, next);
  }
  return predicted;
}

export const sampleSaSolver: SamplerFunction = (x, run) => saSolver('sa_solver', x, run, false);
export const sampleSaSolverPece: SamplerFunction = (x, run) => saSolver('sa_solver_pece', x, run, true);
