/**
 * ModelSamplingDiscrete's override of how a MODEL samples (ComfyUI's `add_object_patch("model_sampling", ...)`):
 * the prediction type its UNet's output is read as, and the noise levels (zero terminal SNR, or LCM's 50 distilled
 * levels). It is a patch on the MODEL, so it travels with it through every node that keeps patches (LoraLoader,
 * the TGATE / DeepCache nodes, ModelMergeSimple's model1) exactly as ComfyUI's object patch does; the last one
 * wins. It changes no UNet call, so its sampling extension adds no wrapper: the sampler nodes read it through
 * `samplingOf` when they build their schedule (sampler-choice.ts).
 *
 * The engine's one-call-per-step schedulers (euler, euler_ancestral, dpmpp_2m, lcm and ddim as KSampler runs
 * them) know eps and v only: a MODEL read as x0, img_to_img or lcm runs those names as ComfyUI's k-diffusion
 * functions instead (every name of ComfyUI's list exists there).
 */
import {
  distilledNoiseLevels,
  noiseLevels,
  resolveSchedulerConfig,
  samplingExtensions,
  type ModelPatch,
  type ModelPrediction,
  type NoiseLevels,
  type SchedulerConfig,
  type SamplingExtension,
} from '@gategraph/diffusion';
import type { ModelRef } from './types.ts';

export const MODEL_SAMPLING_PATCH = 'model-sampling';

/** ModelSamplingDiscrete's `sampling` choices, in ComfyUI's order. */
export const SAMPLING_MODES = ['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img'] as const;
export type SamplingMode = (typeof SAMPLING_MODES)[number];

export interface ModelSamplingSettings {
  readonly sampling: SamplingMode;
  readonly zsnr: boolean;
}

const PREDICTION_OF: Record<SamplingMode, ModelPrediction> = {
  eps: 'epsilon',
  v_prediction: 'v_prediction',
  lcm: 'lcm',
  x0: 'x0',
  img_to_img: 'img_to_img',
};

/**
 * Why a combination cannot sample, or undefined. The engine refuses zero terminal SNR with an epsilon reading
 * (schedulers/config.ts, checkZeroSnr): at the top level the UNet sees pure noise and x0 = x - sigma * eps
 * magnifies the model's error ~4500 times. ComfyUI lets it run; LCM's boundary condition is epsilon-based too.
 */
export function modelSamplingProblem(settings: ModelSamplingSettings): string | undefined {
  if (!settings.zsnr || (settings.sampling !== 'eps' && settings.sampling !== 'lcm')) return undefined;
  return (
    `zsnr with sampling "${settings.sampling}": at zero terminal SNR the first step sees pure noise, and an epsilon prediction ` +
    'cannot recover the image from it (the image would be the model\'s error magnified ~4500 times). Zero-SNR models predict v: use v_prediction'
  );
}

export function modelSamplingPatch(settings: ModelSamplingSettings, nodeId: string | undefined): ModelPatch {
  return {
    kind: MODEL_SAMPLING_PATCH,
    settings: { ...settings },
    ...(nodeId !== undefined ? { nodeId } : {}),
    describe: () => `ModelSamplingDiscrete: ${settings.sampling}${settings.zsnr ? ', zero terminal SNR' : ''}`,
  };
}

export function isModelSamplingPatch(patch: ModelPatch): boolean {
  return patch.kind === MODEL_SAMPLING_PATCH;
}

/** The patches a sampling run turns into wrappers: all but the sampling override, which the schedule reads. */
export function stepPatches(model: ModelRef): readonly ModelPatch[] {
  return model.patches.filter((p) => !isModelSamplingPatch(p));
}

/** How a MODEL samples: its scheduler config, noise levels and prediction type. */
export interface ModelSampling {
  /** For the one-call-per-step schedulers (valid only when `oneCallSchedulers`). */
  readonly config: SchedulerConfig;
  readonly levels: NoiseLevels;
  readonly prediction: ModelPrediction;
  /** False when the engine's one-call schedulers cannot run it (x0, img_to_img, lcm): use the k-diffusion functions. */
  readonly oneCallSchedulers: boolean;
}

/** The sampling of `model`: its checkpoint's scheduler config, as its last ModelSamplingDiscrete patch overrides it. */
export function samplingOf(model: ModelRef): ModelSampling {
  const own = model.model.schedulerConfig;
  const patch = [...model.patches].reverse().find(isModelSamplingPatch);
  if (!patch) {
    const config = resolveSchedulerConfig(own);
    return { config, levels: noiseLevels(config), prediction: config.prediction_type, oneCallSchedulers: true };
  }
  const settings = patch.settings as unknown as ModelSamplingSettings;
  const problem = modelSamplingProblem(settings);
  if (problem) throw new RangeError(problem);
  const prediction = PREDICTION_OF[settings.sampling];
  // The checkpoint's schedule (betas) with the node's zsnr, as ComfyUI builds ModelSamplingAdvanced from the model
  // config: its zsnr input replaces the checkpoint's. Resolved without zsnr first so the zero-SNR check (about eps
  // readings, refused above) does not see the placeholder prediction of the non-eps/v types.
  const base = resolveSchedulerConfig({ ...own, rescale_betas_zero_snr: false });
  const oneCall = prediction === 'epsilon' || prediction === 'v_prediction';
  const config: SchedulerConfig = { ...base, rescale_betas_zero_snr: settings.zsnr, prediction_type: oneCall ? prediction : base.prediction_type };
  const levels = noiseLevels(config);
  return { config, levels: settings.sampling === 'lcm' ? distilledNoiseLevels(levels) : levels, prediction, oneCallSchedulers: oneCall };
}

/**
 * The extension for the override's patch kind: no wrappers (the schedule reads the patch), registered so that a
 * host asking the service for a MODEL's wrappers does not take the kind for an unknown one.
 */
const extension: SamplingExtension = { owner: 'nodes-tgate', kinds: [MODEL_SAMPLING_PATCH], wrap: () => ({}) };

export function registerModelSamplingExtension(): void {
  samplingExtensions().register(extension);
}
