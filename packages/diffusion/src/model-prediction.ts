/**
 * What a UNet's output means, and how the k-diffusion loop turns it into the clean-latent estimate (ComfyUI's
 * model_sampling "type" classes in comfy/model_sampling.py and comfy_extras/nodes_model_advanced.py):
 *
 * | here           | ComfyUI      | denoised from the output p at (x, sigma)                        | UNet input        |
 * |----------------|--------------|-----------------------------------------------------------------|-------------------|
 * | 'epsilon'      | EPS          | x - sigma p                                                     | x / sqrt(s^2 + 1) |
 * | 'v_prediction' | V_PREDICTION | x / (s^2 + 1) - p s / sqrt(s^2 + 1)                             | x / sqrt(s^2 + 1) |
 * | 'x0'           | X0           | p                                                               | x / sqrt(s^2 + 1) |
 * | 'img_to_img'   | IMG_TO_IMG   | p                                                               | x                 |
 * | 'lcm'          | LCM          | c_out (x - sigma p) + c_skip x, c_* of the timestep (LCM's      | x / sqrt(s^2 + 1) |
 * |                |              | boundary condition, sigma_data 0.5, timestep scaling 10)         |                   |
 *
 * The noise scaling (x0 + sigma * noise, sqrt(1 + sigma^2) noise at the top) is EPS's for all of them.
 * The one-call-per-step schedulers (schedulers/) know 'epsilon' and 'v_prediction' only.
 */
import type { Tensor } from './tensor.ts';
import type { PredictionType } from './schedulers/config.ts';

export type ModelPrediction = PredictionType | 'x0' | 'img_to_img' | 'lcm';

/** Every prediction type, for messages and checks. */
export const MODEL_PREDICTIONS: readonly ModelPrediction[] = ['epsilon', 'v_prediction', 'x0', 'img_to_img', 'lcm'];

/** LCM's sigma_data and timestep scaling (ComfyUI's LCM.calculate_denoised, diffusers' LCMScheduler defaults). */
const LCM_SIGMA_DATA = 0.5;
const LCM_TIMESTEP_SCALING = 10;

/**
 * LCM's boundary condition at a training timestep: denoised = c_out * x0 + c_skip * x, so that at timestep 0 the
 * model is the identity (c_skip 1, c_out 0) and from a few timesteps up it is its own x0 estimate.
 */
export function lcmBoundary(timestep: number): { cSkip: number; cOut: number } {
  const t = timestep * LCM_TIMESTEP_SCALING;
  const d2 = LCM_SIGMA_DATA * LCM_SIGMA_DATA;
  return { cSkip: d2 / (t * t + d2), cOut: t / Math.sqrt(t * t + d2) };
}

/** False for the one type whose UNet sees the sample as it is (img_to_img); the others see x / sqrt(sigma^2 + 1). */
export function scalesModelInput(type: ModelPrediction): boolean {
  return type !== 'img_to_img';
}

/**
 * The clean-latent estimate of a prediction at sigma, for the sample the model saw (ComfyUI's calculate_denoised).
 * `timestep` (the training timestep of sigma) is read by 'lcm' only.
 */
export function denoisedAt(prediction: Tensor, sample: Tensor, sigma: number, type: ModelPrediction, timestep = 0): Tensor {
  const out = new Float32Array(sample.data.length);
  const p = prediction.data;
  const x = sample.data;
  switch (type) {
    case 'v_prediction': {
      const a = 1 / (sigma * sigma + 1);
      const b = sigma / Math.sqrt(sigma * sigma + 1);
      for (let k = 0; k < out.length; k++) out[k] = x[k]! * a - p[k]! * b;
      break;
    }
    case 'x0':
    case 'img_to_img':
      out.set(p);
      break;
    case 'lcm': {
      const { cSkip, cOut } = lcmBoundary(timestep);
      for (let k = 0; k < out.length; k++) out[k] = cOut * (x[k]! - p[k]! * sigma) + cSkip * x[k]!;
      break;
    }
    default:
      for (let k = 0; k < out.length; k++) out[k] = x[k]! - p[k]! * sigma;
  }
  return { data: out, shape: [...sample.shape] };
}

/**
 * The prediction whose clean-latent estimate at sigma is `denoised`: the inverse of denoisedAt (what a wrapper
 * that changes the estimate hands back to the loop). For 'lcm' at timestep 0 (c_out 0, where the output does
 * not matter) it is not defined; distilled levels never reach it (their lowest timestep is 19).
 */
export function predictionAt(denoised: Tensor, sample: Tensor, sigma: number, type: ModelPrediction, timestep = 0): Tensor {
  const out = new Float32Array(sample.data.length);
  const d = denoised.data;
  const x = sample.data;
  switch (type) {
    case 'v_prediction': {
      const a = 1 / (sigma * sigma + 1);
      const b = sigma / Math.sqrt(sigma * sigma + 1);
      for (let k = 0; k < out.length; k++) out[k] = (x[k]! * a - d[k]!) / b;
      break;
    }
    case 'x0':
    case 'img_to_img':
      out.set(d);
      break;
    case 'lcm': {
      const { cSkip, cOut } = lcmBoundary(timestep);
      if (cOut === 0) throw new RangeError('predictionAt: an LCM model at timestep 0 ignores its output; there is no prediction to give back');
      for (let k = 0; k < out.length; k++) out[k] = (x[k]! - (d[k]! - cSkip * x[k]!) / cOut) / sigma;
      break;
    }
    default:
      for (let k = 0; k < out.length; k++) out[k] = (x[k]! - d[k]!) / sigma;
  }
  return { data: out, shape: [...sample.shape] };
}
