/**
 * Model patches: how nodes such as CacheCrossAttn (TGATE), DeepCache or a pack's own node change what KSampler
 * does, without KSampler knowing them.
 *
 * A patching node takes a MODEL and returns `model.withPatch(patch)`: a new MODEL carrying one more
 * `ModelPatch` (the input is untouched, like ComfyUI's `ModelPatcher.clone()` + `set_model_...`). When KSampler
 * runs, `samplingWrappersFor(model.patches, run)` asks the host's sampling-extension service
 * (`samplingExtensions()` of @gategraph/diffusion) for the wrappers of each patch kind, and the engine's
 * sampling loop runs them as chains: any set of kinds composes, with no code per combination.
 *
 * - no patches: no wrappers, and KSampler runs the engine's plain sampling, bit for bit;
 * - a kind no extension handles: an error saying which kind, from which node, and which kinds are known.
 */
import { samplingExtensions, type ModelPatch, type SamplingRun, type SamplingWrappers } from '@gategraph/diffusion';

export { PatchError, isPatchError, type ModelPatch, type SamplingRun } from '@gategraph/diffusion';

/** The wrappers of a MODEL's patches, in chain order (none for none). Throws PatchError for unknown kinds. */
export function samplingWrappersFor(patches: readonly ModelPatch[], run: SamplingRun): Promise<SamplingWrappers[]> {
  return samplingExtensions().wrappersFor(patches, run);
}
