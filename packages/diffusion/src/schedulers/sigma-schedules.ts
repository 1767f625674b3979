/**
 * ComfyUI's "scheduler" choices: how `steps` noise levels are picked from a model's discrete sigmas.
 * Each returns steps + 1 sigmas, decreasing, ending with 0 (ddim_uniform may return a different count, as in
 * ComfyUI). Semantics follow comfy/samplers.py (calculate_sigmas) and k-diffusion; the code is ours.
 */
import { lastTimestep, timestepToSigma, type NoiseLevels } from './config.ts';
import { inverseRegularizedIncompleteBeta } from './incomplete-beta.ts';

export type ScheduleName =
  | 'normal'
  | 'karras'
  | 'exponential'
  | 'sgm_uniform'
  | 'simple'
  | 'ddim_uniform'
  | 'beta'
  | 'linear_quadratic'
  | 'kl_optimal';

/** In ComfyUI's order, for the KSampler `scheduler` combo. */
export const SCHEDULER_NAMES: readonly ScheduleName[] = [
  'normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta', 'linear_quadratic', 'kl_optimal',
];

/** Karras et al. 2022's rho (eq. 5). */
export const KARRAS_RHO = 7;

/** n values from a to b inclusive, like torch.linspace / np.linspace. */
export function linspace(a: number, b: number, n: number): number[] {
  if (n === 1) return [a];
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = a + ((b - a) * i) / (n - 1);
  return out;
}

/**
 * 'normal': timesteps evenly spaced from the model's highest (t = T-1) to lowest (t = 0) training timestep,
 * sigma interpolated log-linearly between the discrete levels (diffusers' "linspace" spacing).
 * 'sgm_uniform': the same with steps + 1 points, dropping the last one (SGM / SDXL-turbo style).
 */
function normalSchedule(levels: NoiseLevels, steps: number, sgm: boolean): number[] {
  // ComfyUI's timestep(sigma_max) and timestep(sigma_min): T-1 and 0, or for a distilled table (every 20th level
  // of 1000) 999 and 19.
  const start = lastTimestep(levels);
  const end = (levels.timestepStride ?? 1) - 1;
  const ts = sgm ? linspace(start, end, steps + 1).slice(0, -1) : linspace(start, end, steps);
  return [...ts.map((t) => timestepToSigma(levels, t)), 0];
}

/** Karras et al. 2022, eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho, then 0. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = KARRAS_RHO): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return [...linspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho), 0];
}

/** Evenly spaced in log sigma from max to min, then 0. */
function exponentialSchedule(levels: NoiseLevels, steps: number): number[] {
  return [...linspace(Math.log(levels.sigmaMax), Math.log(levels.sigmaMin), steps).map(Math.exp), 0];
}

/** 'simple': every (T/steps)-th discrete sigma counting down from the top, then 0. */
function simpleSchedule(levels: NoiseLevels, steps: number): number[] {
  const n = levels.numTrainTimesteps;
  const stride = n / steps;
  const out: number[] = [];
  for (let x = 0; x < steps; x++) out.push(levels.sigmas[n - 1 - Math.trunc(x * stride)]!);
  out.push(0);
  return out;
}

/**
 * 'ddim_uniform': the discrete sigmas at t = 1, 1 + s, 1 + 2s, ... (s = floor(T / steps)), highest first, then 0;
 * for SD and 25 steps that is t = 961, 921, ..., 1 (DDIM's "leading" spacing with steps_offset 1). When s does
 * not divide T - 1 evenly this yields more than `steps` steps, exactly as ComfyUI does.
 */
function ddimUniformSchedule(levels: NoiseLevels, steps: number): number[] {
  const n = levels.numTrainTimesteps;
  const stride = Math.max(Math.floor(n / steps), 1);
  const out: number[] = [];
  for (let t = 1; t < n; t += stride) out.push(levels.sigmas[t]!);
  out.reverse();
  out.push(0);
  return out;
}

/** numpy.rint: to the nearest integer, halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * 'beta' (Lee et al. 2024, arXiv 2407.12173, "Beta Sampling is All You Need"): the timesteps at the Beta(alpha,
 * beta) quantiles of 1, 1 - 1/steps, ..., 1/steps, scaled to 0..T-1 and rounded (numpy.rint), the discrete
 * sigma at each, a timestep repeated next to itself dropped (so fewer steps may come out, as in ComfyUI),
 * then 0. alpha = beta = 0.6 (ComfyUI's default) spends more steps at both ends of the schedule.
 */
export function betaScheduleSigmas(levels: NoiseLevels, steps: number, alpha = 0.6, beta = 0.6): number[] {
  const top = levels.numTrainTimesteps - 1;
  const out: number[] = [];
  let last = -1;
  for (let k = 0; k < steps; k++) {
    const t = roundHalfEven(inverseRegularizedIncompleteBeta(1 - k / steps, alpha, beta) * top);
    if (t !== last) out.push(levels.sigmas[t]!);
    last = t;
  }
  out.push(0);
  return out;
}

/**
 * 'linear_quadratic' (Genmo's Mochi schedule, as ComfyUI has it): in "1 - sigma / sigma_max" the first half of
 * the steps rises linearly to `threshold` (0.025), the rest quadratically to 1, so that the schedule leaves the
 * top slowly; times sigma_max. One step is [sigma_max, 0].
 */
export function linearQuadraticSigmas(levels: NoiseLevels, steps: number, threshold = 0.025, linearSteps = Math.floor(steps / 2)): number[] {
  if (steps === 1) return [levels.sigmaMax, 0];
  const rising: number[] = [];
  for (let i = 0; i < linearSteps; i++) rising.push((i * threshold) / linearSteps);
  const thresholdStepDiff = linearSteps - threshold * steps;
  const quadraticSteps = steps - linearSteps;
  const quadraticCoef = thresholdStepDiff / (linearSteps * quadraticSteps ** 2);
  const linearCoef = threshold / linearSteps - (2 * thresholdStepDiff) / quadraticSteps ** 2;
  const constant = quadraticCoef * linearSteps ** 2;
  for (let i = linearSteps; i < steps; i++) rising.push(quadraticCoef * i * i + linearCoef * i + constant);
  rising.push(1);
  return rising.map((v) => (1 - v) * levels.sigmaMax);
}

/**
 * 'kl_optimal' (Sabour et al. 2024, "Align Your Steps", the KL-optimal schedule, via A1111 PR 15608):
 * sigma_k = tan((k / (n-1)) atan(sigma_min) + (1 - k / (n-1)) atan(sigma_max)), then 0. For one step ComfyUI
 * divides by 0 and gets NaN; here it is [sigma_max, 0].
 */
export function klOptimalSigmas(n: number, sigmaMin: number, sigmaMax: number): number[] {
  if (n === 1) return [sigmaMax, 0];
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const w = k / (n - 1);
    out.push(Math.tan(w * Math.atan(sigmaMin) + (1 - w) * Math.atan(sigmaMax)));
  }
  out.push(0);
  return out;
}

export function scheduleSigmas(schedule: ScheduleName, levels: NoiseLevels, steps: number): number[] {
  switch (schedule) {
    case 'normal':
      return normalSchedule(levels, steps, false);
    case 'sgm_uniform':
      return normalSchedule(levels, steps, true);
    case 'karras':
      return karrasSigmas(steps, levels.sigmaMin, levels.sigmaMax);
    case 'exponential':
      return exponentialSchedule(levels, steps);
    case 'simple':
      return simpleSchedule(levels, steps);
    case 'ddim_uniform':
      return ddimUniformSchedule(levels, steps);
    case 'beta':
      return betaScheduleSigmas(levels, steps);
    case 'linear_quadratic':
      return linearQuadraticSigmas(levels, steps);
    case 'kl_optimal':
      return klOptimalSigmas(steps, levels.sigmaMin, levels.sigmaMax);
  }
}

/**
 * The sigmas a sampler runs for `steps` steps at `denoise` strength, ComfyUI's KSampler rule: below 1, build
 * the schedule for floor(steps / denoise) steps and keep its last steps + 1 sigmas, so img2img still runs
 * `steps` steps but starts part-way down the noise levels. denoise <= 0 gives no step at all.
 */
export function denoisedScheduleSigmas(schedule: ScheduleName, levels: NoiseLevels, steps: number, denoise = 1): number[] {
  if (denoise > 0.9999) return scheduleSigmas(schedule, levels, steps);
  if (denoise <= 0) return [];
  const full = scheduleSigmas(schedule, levels, Math.floor(steps / denoise));
  return full.slice(-(steps + 1));
}
