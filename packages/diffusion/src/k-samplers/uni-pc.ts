/**
 * uni_pc and uni_pc_bh2: UniPC (Zhao et al. 2023, arXiv 2302.04867), the unified predictor–corrector in data
 * prediction, multistep, order min(3, steps - 1) with lower orders at the start and at the end, as ComfyUI
 * runs it (comfy/extra_samplers/uni_pc.py, variants B(h) = h ('bh1') and B(h) = e^h - 1 ('bh2')).
 *
 * The reference works on variance-preserving samples with t = sigma; written back in k-diffusion units (divide
 * by alpha_t) its update from the last level s to t, with lambda = -log sigma, h = lambda_t - lambda_s, the
 * earlier estimates' offsets r_k = (lambda_k - lambda_s) / h and D1_k = (D_k - D_s) / r_k, reads
 *   x_t = (sigma_t / sigma_s) x - (e^-h - 1) D_s - B(h) sum_k rho_k D1_k
 * where rho solves R rho = g (R_ik = r_k^(i-1), g_i = i! phi_(i+1)(-h) / B(h)). The predictor uses the earlier
 * estimates; the corrector calls the model at the predicted x_t and adds its D1 = D_t - D_s with the last rho.
 * That call is also the next step's estimate, so UniPC costs one model call per step. A final sigma of 0 is
 * replaced by 0.001 and the last step has no corrector, so the result keeps 0.001 of noise, as in ComfyUI.
 *
 * One difference: with a single step ComfyUI's order comes out as 0 and it returns the input unchanged; here
 * that step is a first-order step (DPM-Solver-1 / DDIM) so that a one-step run still denoises.
 */
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction, SamplerRun } from './types.ts';
import { combine, lambdaOf, SamplerContext, unchanged, type Term } from './common.ts';

export type UniPcVariant = 'bh1' | 'bh2';

/** Solves A y = b for a small dense system (Gaussian elimination with partial pivoting). */
export function solveLinear(matrix: readonly (readonly number[])[], rhs: readonly number[]): number[] {
  const n = rhs.length;
  const a = matrix.map((row, i) => [...row.slice(0, n), rhs[i]!]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    if (a[pivot]![col] === 0) throw new RangeError('uni_pc: singular coefficient system (repeated noise levels?)');
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    for (let r = col + 1; r < n; r++) {
      const f = a[r]![col]! / a[col]![col]!;
      for (let c = col; c <= n; c++) a[r]![c]! -= f * a[col]![c]!;
    }
  }
  const y = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = a[r]![n]!;
    for (let c = r + 1; c < n; c++) s -= a[r]![c]! * y[c]!;
    y[r] = s / a[r]![r]!;
  }
  return y;
}

/** The rho vectors of one UniPC update of `order` from offsets r_k (the last one 1, for the new point). */
export function uniPcRhos(rks: readonly number[], h: number, variant: UniPcVariant): { predictor: number[]; corrector: number[]; bh: number; hPhi1: number } {
  const order = rks.length;
  const hh = -h;
  const hPhi1 = Math.expm1(hh);
  const bh = variant === 'bh1' ? hh : Math.expm1(hh);
  const g: number[] = [];
  let hPhiK = hPhi1 / hh - 1;
  let factorial = 1;
  for (let i = 1; i <= order; i++) {
    g.push((hPhiK * factorial) / bh);
    factorial *= i + 1;
    hPhiK = hPhiK / hh - 1 / factorial;
  }
  const rows = Array.from({ length: order }, (_, i) => rks.map((r) => r ** i));
  // Orders 2 (predictor) and 1 (corrector) use the fixed 1/2 of the paper rather than the 1x1 solve.
  const predictor = order < 2 ? [] : order === 2 ? [0.5] : solveLinear(rows.slice(0, -1).map((row) => row.slice(0, -1)), g.slice(0, -1));
  const corrector = order === 1 ? [0.5] : solveLinear(rows, g);
  return { predictor, corrector, bh, hPhi1 };
}

interface Estimate {
  sigma: number;
  denoised: Tensor;
}

async function uniPcUpdate(
  ctx: SamplerContext,
  x: Tensor,
  history: readonly Estimate[],
  sigmaT: number,
  order: number,
  useCorrector: boolean,
  variant: UniPcVariant,
  step: number,
): Promise<{ x: Tensor; denoised: Tensor | undefined }> {
  const last = history[history.length - 1]!;
  const lambdaLast = lambdaOf(last.sigma);
  const h = lambdaOf(sigmaT) - lambdaLast;
  const rks: number[] = [];
  const differences: Tensor[] = [];
  for (let k = 1; k < order; k++) {
    const earlier = history[history.length - 1 - k]!;
    const rk = (lambdaOf(earlier.sigma) - lambdaLast) / h;
    rks.push(rk);
    differences.push(combine([1 / rk, earlier.denoised], [-1 / rk, last.denoised]));
  }
  rks.push(1);
  const { predictor, corrector, bh, hPhi1 } = uniPcRhos(rks, h, variant);
  const base = combine([sigmaT / last.sigma, x], [-hPhi1, last.denoised]);
  const predicted = combine([1, base], ...predictor.map((rho, k) => [-bh * rho, differences[k]!] as Term));
  if (!useCorrector) return { x: predicted, denoised: undefined };
  const { denoised } = await ctx.model(predicted, sigmaT, step);
  const terms: Term[] = [[1, base], ...corrector.slice(0, -1).map((rho, k) => [-bh * rho, differences[k]!] as Term)];
  const rhoT = corrector[corrector.length - 1]!;
  terms.push([-bh * rhoT, denoised], [bh * rhoT, last.denoised]);
  return { x: combine(...terms), denoised };
}

async function sampleUniPcVariant(name: string, x: Tensor, run: SamplerRun, variant: UniPcVariant): Promise<Tensor> {
  const ctx = new SamplerContext(run, name);
  if (ctx.steps === 0) return unchanged(x);
  const ts = [...ctx.sigmas];
  if (ts[ts.length - 1] === 0) ts[ts.length - 1] = 0.001;
  const steps = ts.length - 1;
  const order = Math.min(3, ts.length - 2);
  const first = await ctx.model(x, ts[0]!, 0);
  let history: Estimate[] = [{ sigma: ts[0]!, denoised: first.denoised }];
  if (steps === 1) {
    x = (await uniPcUpdate(ctx, x, history, ts[1]!, 1, false, variant, 1)).x;
    ctx.report(0, x, first.denoised, ctx.sigma(0), ctx.sigma(1));
    return x;
  }
  ctx.report(0, x, first.denoised, ctx.sigma(0), ctx.sigma(1));
  for (let stepIndex = 1; stepIndex < steps; stepIndex++) {
    if (stepIndex < order) {
      // Warm-up: the order rises with the estimates available.
      const out = await uniPcUpdate(ctx, x, history, ts[stepIndex]!, stepIndex, true, variant, stepIndex);
      x = out.x;
      history.push({ sigma: ts[stepIndex]!, denoised: out.denoised! });
    } else {
      // The last step index also takes the final step to ts[steps], without a corrector.
      const targets = stepIndex === steps - 1 ? [stepIndex, stepIndex + 1] : [stepIndex];
      for (const target of targets) {
        const stepOrder = Math.min(order, steps + 1 - target);
        const useCorrector = target !== steps;
        const out = await uniPcUpdate(ctx, x, history, ts[target]!, stepOrder, useCorrector, variant, target);
        x = out.x;
        if (out.denoised !== undefined) history = [...history, { sigma: ts[target]!, denoised: out.denoised }].slice(-order);
      }
    }
    ctx.report(stepIndex, x, history[history.length - 1]!.denoised, ctx.sigma(stepIndex), ctx.sigma(stepIndex + 1));
  }
  return x;
}

export const sampleUniPc: SamplerFunction = (x, run) => sampleUniPcVariant('uni_pc', x, run, 'bh1');
export const sampleUniPcBh2: SamplerFunction = (x, run) => sampleUniPcVariant('uni_pc_bh2', x, run, 'bh2');
