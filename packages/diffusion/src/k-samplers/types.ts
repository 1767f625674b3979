/**
 * Samplers as k-diffusion and ComfyUI write them: a function of the sample, the noise levels and a model that
 * returns the clean-latent estimate. Unlike the one-call-per-step Scheduler (schedulers/types.ts), a sampler
 * here may call the model several times per step (heun, dpm_2, dpmpp_sde, ...) or a number of times it chooses
 * (dpm_adaptive), so the loop hands it the model as a callback.
 *
 * Units: k-diffusion's. The sample is x = x0 + sigma * eps (the variance-exploding convention; the model
 * callback scales it for the UNet), sigmas decrease and usually end with 0.
 */
import type { Tensor } from '../tensor.ts';

/** Which model call this is: the sampler's step index (0-based, into sigmas) and the call's index within it. */
export interface ModelCall {
  readonly step: number;
  /** 0 for the first call of a step, 1 for the second (heun's corrector, dpm_2's midpoint), ... */
  readonly call: number;
}

/** What one model call gives back. */
export interface Denoised {
  /** The guided clean-latent estimate at the call's sigma (after CFG), shaped like the sample. */
  denoised: Tensor;
  /**
   * The negative prompt's own clean-latent estimate (before the CFG mix), for the cfg++ samplers; undefined
   * when the call ran no negative branch (cfg 1), in which case cfg++ samplers use `denoised`.
   */
  uncond?: Tensor;
}

/** The model at noise level sigma (any sigma > 0, not only the schedule's). Never modifies x. */
export type Denoiser = (x: Tensor, sigma: number, call: ModelCall) => Promise<Denoised>;

/**
 * Unit Gaussian noise shaped like the sample for the move from sigma to sigmaNext. The default draws the next
 * values of one seeded generator whatever the sigmas (ComfyUI's default_noise_sampler); the SDE samplers use a
 * Brownian tree, whose draws depend on (sigma, sigmaNext), so that a seed gives the same path at any step count.
 */
export type NoiseSampler = (sigma: number, sigmaNext: number) => Tensor;

/** After each step: its index, the sample after it, and the step's clean-latent estimate (previews). */
export type StepCallback = (info: { step: number; x: Tensor; denoised: Tensor; sigma: number; sigmaNext: number }) => void;

/** The model's discrete training schedule, for samplers defined on it (ddpm, lcm, the timestep of a sigma). */
export interface ModelSampling {
  /** Smallest and largest sigma of the model's training schedule. */
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** alphas_cumprod of the training schedule, index = training timestep. */
  readonly alphasCumprod: Float64Array | readonly number[];
}

/** Options ComfyUI's samplers take beside the model, sigmas and noise (each sampler reads the ones it has). */
export interface SamplerOptions {
  /** Amount of fresh noise of ancestral and SDE samplers (ComfyUI's defaults per sampler when omitted). */
  eta?: number;
  /** Scale of that noise (s_noise, default 1). */
  sNoise?: number;
}

export interface SamplerRun {
  model: Denoiser;
  /** Noise levels, decreasing, length steps + 1 (usually ending with 0). */
  sigmas: readonly number[];
  /** Needed by the samplers that draw noise; a sampler that needs it and gets none throws. */
  noise?: NoiseSampler;
  modelSampling: ModelSampling;
  options?: SamplerOptions;
  /** Interruption is the model's to raise: the loop's model callback throws before a call when asked to stop. */
  callback?: StepCallback;
}

/** A sampler: the final sample from the starting one (already noised to sigmas[0]). Never modifies x. */
export type SamplerFunction = (x: Tensor, run: SamplerRun) => Promise<Tensor>;
