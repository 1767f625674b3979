import type { Tensor } from '../tensor.ts';
import type { NoiseGenerator } from '../noise.ts';
import type { PredictionType } from './config.ts';
import type { ScheduleName } from './sigma-schedules.ts';

export type SamplerName = 'euler' | 'euler_ancestral' | 'dpmpp_2m' | 'lcm' | 'ddim';

/** Fresh Gaussian noise for a stochastic step: a tensor shaped like the sample, or a generator to draw from. */
export type StepNoise = Tensor | NoiseGenerator;

export interface SchedulerOptions {
  /**
   * ComfyUI scheduler name choosing the noise levels. Default 'normal', except 'ddim', which without a schedule
   * uses diffusers' DDIM timesteps (config.timestep_spacing + steps_offset, set_alpha_to_one).
   */
  schedule?: ScheduleName;
  /** Shorthand for schedule: 'karras' (Karras et al. 2022 sigmas, rho 7). */
  karras?: boolean;
  /**
   * img2img strength in (0, 1], ComfyUI's rule: the schedule is built for floor(steps / denoise) steps and the
   * last `steps` are run. 1 (default) = from pure noise; 0 = no step.
   */
  denoise?: number;
  /** Noise amount of stochastic samplers: euler_ancestral (default 1), ddim (default 0 = deterministic DDIM); lcm has none. */
  eta?: number;
  /**
   * A window of the schedule, ComfyUI's KSamplerAdvanced: the noise levels are built for `steps`, then cut to
   * steps [startStep, endStep). An `endStep` before the end leaves noise in the result unless
   * `forceFullDenoise` sets the last level to 0; a `startStep` at or past the (cut) end leaves no step. Needs a
   * `schedule` (the windows are defined on the levels ComfyUI's schedules produce).
   */
  startStep?: number;
  endStep?: number;
  forceFullDenoise?: boolean;
}

/**
 * One sampling run's schedule and update rule. The loop is:
 *
 *   let x = s.addNoise(latent ?? zeros, noise)          // initial sample (txt2img: latent = zeros)
 *   for (let i = 0; i < s.timesteps.length; i++) {
 *     const input = s.scaleModelInput(x, i)              // what the UNet sees (the "VP" sample)
 *     const out = unet(input, s.timesteps[i])            // eps or v, after CFG
 *     x = s.step(out, i, x, ancestralNoise)              // next sample; `denoised(out, i, x)` for previews
 *   }
 *
 * Schedulers keep per-run state (dpmpp_2m remembers the previous step), so create one per run and call step()
 * with i = 0, 1, 2, ... in order. step() never modifies its inputs.
 */
export interface Scheduler {
  readonly sampler: SamplerName;
  /** Where the noise levels came from: a ComfyUI scheduler name, or 'diffusers' for DDIM's own timesteps. */
  readonly schedule: ScheduleName | 'diffusers';
  readonly predictionType: PredictionType;
  /** The UNet timestep for each step (integer training timesteps); its length is the number of steps. */
  readonly timesteps: number[];
  /**
   * Noise level (sigma = sqrt((1 - abar) / abar)) at the start of each step, plus the level after the last one
   * (0 for ComfyUI schedules): length steps + 1 (empty when there is no step). Infinity where abar is 0: the
   * first step of diffusers' own DDIM timesteps on a zero-terminal-SNR schedule ('trailing' / 'linspace'
   * spacing start at the last training timestep); ComfyUI schedules stay finite (see zero-snr.ts).
   */
  readonly sigmas: number[];
  /** Factor by which a pure-noise start multiplies unit Gaussian noise (in the scheduler's sample space). */
  readonly initNoiseSigma: number;
  /** True when step() needs fresh noise (euler_ancestral, lcm when a step ends above sigma 0, ddim with eta > 0). */
  readonly stochastic: boolean;
  /**
   * The UNet input for step i: the sample in the variance-preserving convention (x / sqrt(sigma^2 + 1)).
   * DDIM's samples already are, so it returns `sample` itself: treat the result as read-only.
   */
  scaleModelInput(sample: Tensor, i: number): Tensor;
  /** The model's estimate of the clean latent at step i (previews, TGATE diagnostics). */
  denoised(modelOutput: Tensor, i: number, sample: Tensor): Tensor;
  /**
   * The inverse of `denoised`: the model output (eps or v) whose clean-latent estimate at step i is `denoised`.
   * Lets the loop change the estimate (inpainting keeps the original latent outside the mask) and still hand
   * step() a model output.
   */
  modelOutputFor(denoised: Tensor, i: number, sample: Tensor): Tensor;
  /**
   * `latent` noised to step i's level with `noise`, in this scheduler's sample units: ComfyUI's noise_scaling
   * (latent + sigma_i * noise) without its pure-noise start. What an inpainting run puts outside the mask
   * before each model call.
   */
  noised(latent: Tensor, noise: Tensor, i: number): Tensor;
  /** Advances from step i to i + 1 given the model output (eps or v, as configured). */
  step(modelOutput: Tensor, i: number, sample: Tensor, noise?: StepNoise): Tensor;
  /**
   * The starting sample for a run that begins at `startStep` (default 0) from a clean latent (img2img) or zeros
   * (txt2img). At step 0 of a full-strength schedule this matches ComfyUI exactly (noise * sqrt(1 + sigma^2)).
   */
  addNoise(latent: Tensor, noise: Tensor, startStep?: number): Tensor;
  /**
   * The sample after the last step as a LATENT value: ComfyUI's convention, x0 + sigma * noise, whatever the
   * sampler's internal units. Only differs from `sample` when a run stops with noise left (KSamplerAdvanced's
   * return_with_leftover_noise) in a sampler that works in variance-preserving units (DDIM), so the next stage
   * (any sampler, add_noise off) continues from the same point.
   */
  finalLatent(sample: Tensor): Tensor;
}
