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
  /** alphas_cumprod of the training schedule, index = training timestep (a level of a distilled table). */
  readonly alphasCumprod: Float64Array | readonly number[];
  /** Training timesteps per entry of alphasCumprod (NoiseLevels.timestepStride): 20 for LCM's table, default 1. */
  readonly timestepStride?: number;
}

/** Options ComfyUI's samplers take beside the model, sigmas and noise (each sampler reads the ones it has). */
export interface SamplerOptions {
  /** Amount of fresh noise of ancestral and SDE samplers (ComfyUI's defaults per sampler when omitted). */
  eta?: number;
  /** Scale of that noise (s_noise, default 1). */
  sNoise?: number;
  /**
   * Where the intermediate model call sits within a step, as a fraction of the step in log-SNR:
   * dpmpp_sde (default 1/2), seeds_2 (default 1/2). ComfyUI's `r`.
   */
  r?: number;
  /**
   * dpmpp_2m_sde: 'midpoint' (default) or 'heun' (what dpmpp_2m_sde_heun uses); seeds_2: 'phi_1' (default) or
   * 'phi_2' (what exp_heun_2_x0 uses). ComfyUI's `solver_type`.
   */
  solverType?: 'midpoint' | 'heun' | 'phi_1' | 'phi_2';
  /**
   * lms: order (default 4); ipndm, ipndm_v: maximum order, 1..4 (default 4); deis: maximum order, 1..4
   * (default 3); dpm_adaptive: 2 or 3 (default 3).
   */
  order?: number;
  /** dpm_adaptive's step-size controller (ComfyUI's defaults: 0.05, 0.0078, 0.05, 0, 1, 0, 0.81). */
  rtol?: number;
  atol?: number;
  hInit?: number;
  pcoeff?: number;
  icoeff?: number;
  dcoeff?: number;
  acceptSafety?: number;
  /** er_sde: how many stages each step uses, 1..3 (default 3). */
  maxStage?: number;
  /**
   * er_sde: the noise scaler f(lambda) of the ER-SDE family (lambda = sigma here). Default ER-SDE's
   * lambda (e^(lambda^0.3) + 10); ComfyUI's "Reverse-time SDE" is lambda^(eta + 1) and "ODE" is lambda with
   * sNoise 0.
   */
  noiseScaler?: (lambda: number) => number;
  /** gradient_estimation: the gamma of the gradient estimate (default 2). */
  geGamma?: number;
  /** sa_solver: predictor order 1..6 (default 3) and corrector order 0..6 (default 4). */
  predictorOrder?: number;
  correctorOrder?: number;
  /** sa_solver: the paper's simplified order-2 coefficients when two points are used (default false). */
  simpleOrder2?: boolean;
  /**
   * sa_solver: noise is added (with strength eta, default 1) only while sigma lies between the sigmas at these
   * fractions of the training schedule (ComfyUI's sde_start_percent 0.2 and sde_end_percent 0.8).
   */
  sdeStartPercent?: number;
  sdeEndPercent?: number;
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
