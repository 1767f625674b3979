/**
 * The training noise schedule of a model (diffusers' `scheduler/scheduler_config.json`) and the discrete
 * noise levels derived from it: betas -> alphas_cumprod (abar_t) -> sigma_t = sqrt((1 - abar_t) / abar_t), the
 * "variance exploding" noise level k-diffusion and ComfyUI sample in. Everything is computed in float64.
 */
import { betasFromAlphasCumprod, rescaleZeroTerminalSnr, terminalAlphaCumprod } from './zero-snr.ts';

export type BetaSchedule = 'scaled_linear' | 'linear';
export type PredictionType = 'epsilon' | 'v_prediction';
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  /** 'scaled_linear': betas = linspace(sqrt(beta_start), sqrt(beta_end))^2 (SD); 'linear': linspace(beta_start, beta_end). */
  beta_schedule: BetaSchedule;
  /** What the UNet predicts: the noise (SD 1.x, SD 2 base) or v = alpha eps - sigma x0 (SD 2 768-v). */
  prediction_type: PredictionType;
  /** DDIM without a ComfyUI schedule: how the inference timesteps are spread (diffusers semantics). */
  timestep_spacing: TimestepSpacing;
  /** DDIM 'leading' spacing: added to every timestep (SD: 1, giving 961 ... 1 for 25 steps). */
  steps_offset: number;
  /** DDIM: alpha of the step after the last one; false => alphas_cumprod[0] (SD), true => 1. */
  set_alpha_to_one: boolean;
  /** Explicit betas overriding beta_start/beta_end/beta_schedule (diffusers' trained_betas). */
  trained_betas?: number[] | null;
  /**
   * Zero terminal SNR (diffusers' key): the betas are rescaled so abar at the last training timestep is 0
   * (see zero-snr.ts). Needs prediction_type 'v_prediction'.
   */
  rescale_betas_zero_snr: boolean;
}

/** Stable Diffusion 1.x (and the embedded tiny-sd model), as in its scheduler_config.json. */
export const SD_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 1,
  set_alpha_to_one: false,
  rescale_betas_zero_snr: false,
});

const BETA_SCHEDULES: readonly BetaSchedule[] = ['scaled_linear', 'linear'];
const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction'];
const SPACINGS: readonly TimestepSpacing[] = ['leading', 'linspace', 'trailing'];

function oneOf<T extends string>(value: unknown, valid: readonly T[], key: string): T {
  if (typeof value !== 'string' || !(valid as readonly string[]).includes(value)) {
    throw new RangeError(`Scheduler config: ${key} = ${JSON.stringify(value)} is not supported; use one of: ${valid.join(', ')}`);
  }
  return value as T;
}

function positiveNumber(value: unknown, key: string, integer = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`Scheduler config: ${key} = ${JSON.stringify(value)} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

/**
 * What createScheduler accepts as a config: any subset of SchedulerConfig's keys with values still unchecked
 * (e.g. the parsed scheduler_config.json of a diffusers model, whose other keys, such as `_class_name` or
 * `clip_sample`, are ignored). resolveSchedulerConfig checks every value.
 */
export type SchedulerConfigInput = Partial<Record<keyof SchedulerConfig, unknown>> & Readonly<Record<string, unknown>>;

/** Fills in SD defaults and checks a config; errors name the key, the value and what is allowed. */
export function resolveSchedulerConfig(config: SchedulerConfigInput = {}): SchedulerConfig {
  const merged: Record<string, unknown> = { ...SD_SCHEDULER_CONFIG, ...stripUndefined(config) };
  const stepsOffset = merged['steps_offset'];
  if (typeof stepsOffset !== 'number' || !Number.isInteger(stepsOffset) || stepsOffset < 0) {
    throw new RangeError(`Scheduler config: steps_offset = ${JSON.stringify(stepsOffset)} must be a non-negative integer`);
  }
  const setAlphaToOne = merged['set_alpha_to_one'];
  if (typeof setAlphaToOne !== 'boolean') {
    throw new RangeError(`Scheduler config: set_alpha_to_one = ${JSON.stringify(setAlphaToOne)} must be true or false`);
  }
  const zeroSnr = merged['rescale_betas_zero_snr'];
  if (typeof zeroSnr !== 'boolean') {
    throw new RangeError(`Scheduler config: rescale_betas_zero_snr = ${JSON.stringify(zeroSnr)} must be true or false`);
  }
  const resolved: SchedulerConfig = {
    num_train_timesteps: positiveNumber(merged['num_train_timesteps'], 'num_train_timesteps', true),
    beta_start: positiveNumber(merged['beta_start'], 'beta_start'),
    beta_end: positiveNumber(merged['beta_end'], 'beta_end'),
    beta_schedule: oneOf(merged['beta_schedule'], BETA_SCHEDULES, 'beta_schedule'),
    prediction_type: oneOf(merged['prediction_type'], PREDICTION_TYPES, 'prediction_type'),
    timestep_spacing: oneOf(merged['timestep_spacing'], SPACINGS, 'timestep_spacing'),
    steps_offset: stepsOffset,
    set_alpha_to_one: setAlphaToOne,
    trained_betas: null,
    rescale_betas_zero_snr: zeroSnr,
  };
  const betas = merged['trained_betas'];
  if (betas !== null && betas !== undefined) {
    if (!Array.isArray(betas) || betas.length !== resolved.num_train_timesteps || betas.some((b) => !(typeof b === 'number' && b > 0 && b < 1))) {
      throw new RangeError(`Scheduler config: trained_betas must be null or ${resolved.num_train_timesteps} numbers in (0, 1)`);
    }
    resolved.trained_betas = betas as number[];
  }
  checkZeroSnr(resolved);
  return resolved;
}

/**
 * diffusers accepts zero SNR with any prediction type; we refuse epsilon. At the last timestep the UNet input is
 * pure noise, so an epsilon model's x0 = (x - sqrt(1 - abar) eps) / sqrt(abar) divides by 0 (diffusers' DDIM
 * gives NaN there) or, with the finite stand-in the sigma samplers use, by 2e-4: the image is the model's error
 * magnified ~4500 times. Lin et al. train zero-SNR models with v-prediction for this reason (section 3.2); a
 * config that says otherwise is a mistake in it, and a clear error beats a black or noisy image.
 */
function checkZeroSnr(config: SchedulerConfig): void {
  if (!config.rescale_betas_zero_snr) return;
  if (config.prediction_type !== 'v_prediction') {
    throw new RangeError(
      `Scheduler config: rescale_betas_zero_snr = true needs prediction_type "v_prediction" (got "${config.prediction_type}"): ` +
        'at zero terminal SNR an epsilon prediction cannot recover the image. If the model predicts v, set prediction_type; ' +
        'if it was not trained with zero terminal SNR, remove rescale_betas_zero_snr',
    );
  }
  if (config.num_train_timesteps < 3) {
    throw new RangeError(`Scheduler config: rescale_betas_zero_snr = true needs at least 3 training timesteps (got ${config.num_train_timesteps})`);
  }
}

function stripUndefined(o: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The discrete noise levels of the training schedule, index = training timestep t (0 = least noise). */
export interface NoiseLevels {
  readonly numTrainTimesteps: number;
  /** The training schedule as diffusers has it: with zero terminal SNR the last value is exactly 0. */
  readonly alphasCumprod: Float64Array;
  /**
   * sigma_t = sqrt((1 - abar_t) / abar_t), increasing with t: the levels ComfyUI's schedules and samplers use.
   * With zero terminal SNR the last one is ComfyUI's finite sigma_max (~4518.76 for SD), not infinity.
   */
  readonly sigmas: Float64Array;
  readonly logSigmas: Float64Array;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /**
   * Training timesteps per level (default 1): a distilled model's table (distilledNoiseLevels, ComfyUI's
   * ModelSamplingDiscreteDistilled) keeps every stride-th level, and level i is training timestep
   * i * stride + stride - 1. sigmaToTimestep and timestepToSigma speak training timesteps either way.
   */
  readonly timestepStride?: number;
}

/** The highest training timestep the levels stand for (999 for SD, whether or not the table is distilled). */
export function lastTimestep(levels: NoiseLevels): number {
  return levels.numTrainTimesteps * (levels.timestepStride ?? 1) - 1;
}

/**
 * The training betas: from the config, and with rescale_betas_zero_snr the rescaled ones diffusers stores
 * (ending with beta = 1).
 */
export function betasOf(config: SchedulerConfig): Float64Array {
  return config.rescale_betas_zero_snr ? betasFromAlphasCumprod(alphasCumprodOf(config)) : configBetas(config);
}

/** The betas the config names, before any rescaling. */
function configBetas(config: SchedulerConfig): Float64Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas) return Float64Array.from(config.trained_betas);
  const betas = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = n === 1 ? 0 : i / (n - 1);
    if (config.beta_schedule === 'scaled_linear') {
      const s = Math.sqrt(config.beta_start) + w * (Math.sqrt(config.beta_end) - Math.sqrt(config.beta_start));
      betas[i] = s * s;
    } else {
      betas[i] = config.beta_start + w * (config.beta_end - config.beta_start);
    }
  }
  return betas;
}

/** alphas_cumprod of the training schedule (abar_t = prod (1 - beta)), rescaled for zero terminal SNR if asked. */
function alphasCumprodOf(config: SchedulerConfig): Float64Array {
  const betas = configBetas(config);
  const alphasCumprod = new Float64Array(betas.length);
  let prod = 1;
  for (let i = 0; i < betas.length; i++) {
    prod *= 1 - betas[i]!;
    alphasCumprod[i] = prod;
  }
  return config.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(alphasCumprod) : alphasCumprod;
}

export function noiseLevels(config: SchedulerConfig): NoiseLevels {
  const alphasCumprod = alphasCumprodOf(config);
  const n = alphasCumprod.length;
  const sigmas = new Float64Array(n);
  const logSigmas = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // A zero-SNR schedule's last abar is 0 (infinite sigma): the sigma samplers get ComfyUI's finite stand-in.
    const a = config.rescale_betas_zero_snr && i === n - 1 ? terminalAlphaCumprod(alphasCumprod) : alphasCumprod[i]!;
    sigmas[i] = Math.sqrt((1 - a) / a);
    logSigmas[i] = Math.log(sigmas[i]!);
  }
  return { numTrainTimesteps: n, alphasCumprod, sigmas, logSigmas, sigmaMin: sigmas[0]!, sigmaMax: sigmas[n - 1]! };
}

/**
 * The training timestep whose noise level is nearest to `sigma` in log space (ComfyUI's
 * ModelSamplingDiscrete.timestep; for a distilled table, ModelSamplingDiscreteDistilled.timestep): the integer
 * timestep the UNet is given for a sigma.
 */
export function sigmaToTimestep(levels: NoiseLevels, sigma: number): number {
  const stride = levels.timestepStride ?? 1;
  return nearestLevel(levels, sigma) * stride + stride - 1;
}

/** The index of the level nearest to `sigma` in log space. */
function nearestLevel(levels: NoiseLevels, sigma: number): number {
  const target = Math.log(sigma);
  const ls = levels.logSigmas;
  // logSigmas increase with t: binary search, then compare the two neighbours.
  let lo = 0;
  let hi = ls.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ls[mid]! < target) lo = mid;
    else hi = mid;
  }
  // ties go to the lower index, like argmin
  return Math.abs(target - ls[lo]!) <= Math.abs(target - ls[hi]!) ? lo : hi;
}

/**
 * sigma at a fractional training timestep, interpolating log sigma linearly between the levels (ComfyUI's
 * ModelSamplingDiscrete.sigma; for a distilled table, ModelSamplingDiscreteDistilled.sigma).
 */
export function timestepToSigma(levels: NoiseLevels, t: number): number {
  const last = levels.numTrainTimesteps - 1;
  const stride = levels.timestepStride ?? 1;
  const tc = Math.min(Math.max((t - (stride - 1)) / stride, 0), last);
  const low = Math.floor(tc);
  const high = Math.ceil(tc);
  const w = tc - low;
  return Math.exp((1 - w) * levels.logSigmas[low]! + w * levels.logSigmas[high]!);
}
