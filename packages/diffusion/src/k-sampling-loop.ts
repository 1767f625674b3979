/**
 * The sampling loop for k-diffusion samplers (k-samplers/): the sampler function drives, calling the model as
 * often as its method needs; this module turns each call into a UNet evaluation with the step's plan.
 *
 * Steps and plans: a step is one interval of the noise levels (sigmas[i] -> sigmas[i + 1]), whatever the number
 * of model calls in it. The planner plans each step once, at its first call, and every call of that step runs
 * the same plan: TGATE's gate and DeepCache's interval count steps, never calls. A second call of a step
 * (heun's corrector at sigmas[i + 1], dpm_2's midpoint, the SDE samplers' intermediate points) therefore reuses
 * what the first call's plan reuses: after TGATE's gate the cached cross-attention, on a DeepCache shallow step
 * the deep feature captured at the last full step. The planner's afterStep sees the first call's outputs only,
 * the ones computed at the step's own noise level, which is what TGATE and DeepCache capture.
 *
 * Units are k-diffusion's: the sample is x = x0 + sigma * eps; the UNet sees x / sqrt(sigma^2 + 1) (x itself for
 * an img_to_img model) at the training timestep nearest sigma (ComfyUI's ModelSamplingDiscrete: argmin of
 * |log sigma - log sigma_t|), and its output becomes the clean-latent estimate as model-prediction.ts says.
 */
import { scale, type Tensor } from './tensor.ts';
import { blendMasked } from './inpaint.ts';
import { sigmaToTimestep, type NoiseLevels } from './schedulers/config.ts';
import { denoisedAt, predictionAt, scalesModelInput, type ModelPrediction } from './model-prediction.ts';
import type { Denoiser, NoiseSampler, SamplerFunction, SamplerOptions } from './k-samplers/types.ts';
import type { Evaluated, ModelEvaluation, SampleOptions, StepContext, StepPlan } from './sampling.ts';

/** A k-diffusion sampler with the noise levels of one run, what SampleOptions.scheduler takes besides a Scheduler. */
export interface KDiffusionSampling {
  readonly kind: 'k-diffusion';
  /** The sampler's name, for messages (ComfyUI's sampler_name). */
  readonly sampler: string;
  readonly run: SamplerFunction;
  /** Noise levels, decreasing, steps + 1 long (usually ending with 0); empty or one long: no step. */
  readonly sigmas: readonly number[];
  /** The model's training schedule (timesteps of sigmas, sigma_min / sigma_max, alphas for ddpm / lcm). */
  readonly levels: NoiseLevels;
  /** What the UNet's output means (model-prediction.ts): eps and v as the model's config says, or ModelSamplingDiscrete's choice. */
  readonly predictionType: ModelPrediction;
  /** The training timestep of each step's starting level, for planners and reports. */
  readonly timesteps: readonly number[];
  /** Step noise for the samplers that draw it (a seeded generator, or ComfyUI's Brownian tree for the SDE ones). */
  readonly noise?: NoiseSampler;
  readonly options?: SamplerOptions;
  /**
   * Noise for the region an inpainting run keeps, when it is not the starting noise: ComfyUI's `ddim` draws its
   * own (seed + 1). Default: SampleOptions.noise.
   */
  readonly inpaintNoise?: Tensor;
  /**
   * Run the negative prompt even at cfg 1: the cfg++ samplers read its estimate (ComfyUI turns its cfg 1
   * shortcut off for them).
   */
  readonly needsUncond?: boolean;
}

export function isKDiffusionSampling(value: unknown): value is KDiffusionSampling {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'k-diffusion';
}

/** Builds the run description; the timesteps come from the sigmas. */
export function kDiffusionSampling(args: Omit<KDiffusionSampling, 'kind' | 'timesteps'>): KDiffusionSampling {
  const steps = Math.max(0, args.sigmas.length - 1);
  return {
    ...args,
    kind: 'k-diffusion',
    timesteps: args.sigmas.slice(0, steps).map((s) => sigmaToTimestep(args.levels, s)),
  };
}

// The conversions live with the prediction types; re-exported here, where the loop's users found them first.
export { denoisedAt, predictionAt };

/** latent + sigma * noise: ComfyUI's noise_scaling without the pure-noise start (the kept region of an inpainting run). */
function noisedTo(latent: Tensor, noise: Tensor, sigma: number): Tensor {
  const out = new Float32Array(latent.data.length);
  for (let k = 0; k < out.length; k++) out[k] = latent.data[k]! + noise.data[k]! * sigma;
  return { data: out, shape: [...latent.shape] };
}

/** What the loop in sampling.ts lends this one: step contexts, planning, and one evaluation of the UNet. */
export interface KLoopHooks {
  stepContext(step: number, total: number, timestep: number, sigma: number): StepContext;
  planFor(step: number, context: StepContext): Promise<StepPlan>;
  evaluate(call: ModelEvaluation): Promise<Evaluated>;
  interrupted(step: number, total: number): Error;
}

/** Runs a k-diffusion sampler; returns the final latent. */
export async function runKDiffusion(sampling: KDiffusionSampling, options: SampleOptions, hooks: KLoopHooks): Promise<Tensor> {
  const { sigmas, levels, predictionType } = sampling;
  const scalesInput = scalesModelInput(predictionType);
  const total = Math.max(0, sigmas.length - 1);
  const latent = options.latent;
  if (total === 0) return latent;
  const mask = options.denoiseMask;
  const inpaintNoise = sampling.inpaintNoise ?? options.noise;
  if (inpaintNoise.data.length !== latent.data.length) {
    throw new RangeError(`sample: the inpainting noise [${inpaintNoise.shape.join(', ')}] must have the latent's shape [${latent.shape.join(', ')}]`);
  }

  // ComfyUI's noise_scaling: a start at the top of the schedule is pure noise scaled by sqrt(1 + sigma^2)
  // (the variance of x0 + sigma * eps with unit-variance latents), any other start the latent plus sigma * noise.
  const first = sigmas[0]!;
  const maxDenoise = Math.abs(first - levels.sigmaMax) <= 1e-5 * levels.sigmaMax || first > levels.sigmaMax;
  const noiseScale = maxDenoise ? Math.sqrt(1 + first * first) : first;
  const start = new Float32Array(latent.data.length);
  for (let k = 0; k < start.length; k++) start[k] = latent.data[k]! + options.noise.data[k]! * noiseScale;

  let current: { step: number; plan: StepPlan; context: StepContext } | undefined;
  const model: Denoiser = async (x, sigma, call) => {
    if (options.signal?.aborted || options.shouldInterrupt?.()) throw hooks.interrupted(call.step, total);
    if (current?.step !== call.step) {
      const level = sigmas[call.step] ?? sigma;
      const context = hooks.stepContext(call.step, total, sigmaToTimestep(levels, level), level);
      current = { step: call.step, plan: await hooks.planFor(call.step, context), context };
    }
    const { plan, context } = current;
    // Inpainting (ComfyUI's KSamplerX0Inpaint): outside the mask the model sees the kept latent at this level.
    const modelSample = mask ? blendMasked(x, noisedTo(latent, inpaintNoise, sigma), mask) : x;
    const input = scalesInput ? scale(modelSample, 1 / Math.sqrt(sigma * sigma + 1)) : modelSample;
    const timestep = sigmaToTimestep(levels, sigma);
    const convert = {
      toDenoised: (prediction: Tensor) => denoisedAt(prediction, modelSample, sigma, predictionType, timestep),
      fromDenoised: (denoised: Tensor) => predictionAt(denoised, modelSample, sigma, predictionType, timestep),
    };
    const evaluated = await hooks.evaluate({ plan, context, input, timestep, convert, modelSample, sigma, firstCall: call.call === 0 });
    if (call.call === 0 && options.planner?.afterStep) {
      await options.planner.afterStep(call.step, { plan, outputs: evaluated.captured, modelOutput: evaluated.modelOutput, context });
    }
    let denoised = convert.toDenoised(evaluated.modelOutput);
    let uncond = evaluated.uncond ? convert.toDenoised(evaluated.uncond) : undefined;
    if (mask) {
      denoised = blendMasked(denoised, latent, mask);
      if (uncond) uncond = blendMasked(uncond, latent, mask);
    }
    return uncond ? { denoised, uncond } : { denoised };
  };

  return sampling.run(
    { data: start, shape: [...latent.shape] },
    {
      model,
      sigmas,
      ...(sampling.noise ? { noise: sampling.noise } : {}),
      modelSampling: {
        sigmaMin: levels.sigmaMin,
        sigmaMax: levels.sigmaMax,
        alphasCumprod: levels.alphasCumprod,
        ...(levels.timestepStride !== undefined ? { timestepStride: levels.timestepStride } : {}),
      },
      ...(sampling.options ? { options: sampling.options } : {}),
      // Samplers that choose their own steps (dpm_fast, dpm_adaptive) may report more steps than levels.
      callback: ({ step, denoised }) => options.onProgress?.(Math.min(step + 1, total), total, options.previews ? denoised : undefined),
    },
  );
}
