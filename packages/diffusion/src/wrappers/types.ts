/**
 * The points of the sampling loop a wrapper can take hold of, ComfyUI's wrapper points by another name:
 *
 * | here         | called                         | ComfyUI                                                        |
 * |--------------|--------------------------------|----------------------------------------------------------------|
 * | `sample`     | once per run, around the loop  | `WrappersMP.OUTER_SAMPLE` / `SAMPLER_SAMPLE`                   |
 * | `unet`       | every UNet evaluation          | `WrappersMP.APPLY_MODEL`, `set_model_unet_function_wrapper`    |
 * | `cfg`        | every CFG mix ('cfg' steps)    | `sampler_cfg_function` (`set_model_sampler_cfg_function`)      |
 * | `prediction` | every step, after the CFG mix  | `sampler_post_cfg_function`                                    |
 *
 * A wrapper receives `next` and the call's arguments (chain.ts) and returns what `next` would have. Several
 * wrappers at one point form a chain, so any set of them composes without code that knows the combination.
 *
 * `sample` is where an extension that decides which UNet variant runs at each step (TGATE, DeepCache) installs
 * its `planner` and `unet` runner: it calls `next` with them set and releases what it opened once `next`
 * settles. Only one planner can steer a run; the others observe or change values at the finer points.
 *
 * Predictions are in the model's own units (eps or v, per the scheduler config): `toDenoised` and
 * `fromDenoised` convert to and from the clean-latent estimate (ComfyUI's `denoised`), for ports written in
 * those terms.
 */
import type { SampleOptions, SampleResult, StepContext, StepPlan } from '../sampling.ts';
import type { FeedValue } from '../sessions.ts';
import type { Tensor } from '../tensor.ts';
import type { Wrapper } from './chain.ts';

/** One UNet evaluation of a step: the variant the plan chose, its feeds, and what to fetch. */
export interface UnetCall {
  readonly variant: string;
  /** Feeds by input name: sample, timestep, encoder_hidden_states (absent when the halves run apart), extras. */
  readonly feeds: Readonly<Record<string, FeedValue>>;
  /** The noise prediction's output name first, then the outputs the plan captures. */
  readonly fetches: readonly string[];
  /** Rows of the call: 2B for a 'cfg' step ([uncond, cond]), B otherwise. */
  readonly rows: number;
  readonly plan: StepPlan;
  readonly context: StepContext;
}

/** The outputs of a UNet call, by name: every name of `fetches`. */
export type UnetOutputs = Record<string, Tensor>;

/** What the `cfg` and `prediction` points know about their step. */
export interface StepValues {
  readonly plan: StepPlan;
  readonly context: StepContext;
  /** The sample at the start of the step, [B, C, h, w], in the scheduler's units (ComfyUI's `input`). */
  readonly sample: Tensor;
  /** The clean-latent estimate (ComfyUI's `denoised`) a prediction of this step stands for. */
  toDenoised(prediction: Tensor): Tensor;
  /** The prediction whose clean-latent estimate at this step is `denoised`. */
  fromDenoised(denoised: Tensor): Tensor;
}

/** The CFG mix of a 'cfg' step; the original returns `uncond + cfg * (cond - uncond)`. */
export interface CfgCall extends StepValues {
  readonly uncond: Tensor;
  readonly cond: Tensor;
  readonly cfg: number;
}

/** The step's prediction, after the CFG mix when there was one; the original returns it unchanged. */
export interface PredictionCall extends StepValues {
  readonly prediction: Tensor;
}

/** One extension's wrappers, any of the points. */
export interface SamplingWrappers {
  sample?: Wrapper<SampleOptions, Promise<SampleResult>>;
  unet?: Wrapper<UnetCall, Promise<UnetOutputs>>;
  cfg?: Wrapper<CfgCall, Promise<Tensor>>;
  prediction?: Wrapper<PredictionCall, Promise<Tensor>>;
}

/** The wrappers of one point, in chain order (the first outermost). */
export function wrappersAt<K extends keyof SamplingWrappers>(sets: readonly SamplingWrappers[] | undefined, point: K): NonNullable<SamplingWrappers[K]>[] {
  const found: NonNullable<SamplingWrappers[K]>[] = [];
  for (const set of sets ?? []) {
    const wrapper = set[point];
    if (wrapper) found.push(wrapper);
  }
  return found;
}
