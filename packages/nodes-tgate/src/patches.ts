/**
 * Model patches: how nodes such as CacheCrossAttn (TGATE) or DeepCache change what KSampler does, without
 * KSampler knowing them.
 *
 * A patching node takes a MODEL and returns `model.withPatch(patch)`: a new MODEL carrying one more
 * `ModelPatch` (the input is untouched, like ComfyUI's `ModelPatcher.clone()` + `set_model_...`). When KSampler
 * runs, it calls `applyPatches(model.patches, context)`, which turns the list into what the engine's
 * sampling loop takes: a `StepPlanner` (which UNet variant and batch to run at each step) and the `UnetRunner`
 * that can run those variants.
 *
 * Patch kinds are registered by the pack that defines them, with `registerPatchPlanner([...kinds], build)`.
 * One builder handles one combination of kinds (TGATE alone, DeepCache alone, TGATE + DeepCache composed as
 * in the paper), because composing planners is not generic: the combined plan is its own schedule.
 *
 * - no patches: `undefined`, and KSampler runs the engine's plain sampling, bit for bit;
 * - a kind nobody registered: an error saying which kind, from which node, and which kinds are known;
 * - a combination nobody registered: an error naming the combination.
 */
import type { Logger } from '@gategraph/core';
import type { DiffusionModel, Scheduler, StepPlanner, UnetRunner } from '@gategraph/diffusion';

/** One change to a MODEL. Plain data plus a description: patches are compared and shown, never run. */
export interface ModelPatch {
  /** What kind of patch this is ('tgate', 'deepcache', ...): the key builders are registered under. */
  readonly kind: string;
  /** The node's settings, resolved (JSON-like values). Part of what the patch means; shown in errors. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Id of the node that added it, for messages ("the CacheCrossAttn node #7 ..."). */
  readonly nodeId?: string;
  /** One line for people: "TGATE: gate at step 10 of 25, cache self-attention". */
  describe(): string;
}

/** What a builder knows about the sampling run it plans. */
export interface PatchContext {
  model: DiffusionModel;
  /** The steps the scheduler will run (ddim_uniform may differ from the widget). */
  steps: number;
  cfg: number;
  scheduler: Scheduler;
  /** [B, C, h, w] of the latent being sampled. */
  latentShape: readonly number[];
  /** True when a negative conditioning is fed (KSampler always feeds one). */
  hasNegative: boolean;
  /** The KSampler node's logger: notes about the plan go here. */
  log: Logger;
  signal: AbortSignal;
}

/** What the sampling loop needs for a patched MODEL. */
export interface PatchedSampling {
  planner: StepPlanner;
  /** A runner with the UNet variants the planner asks for; default: the model's plain UNet only. */
  unet?: UnetRunner;
  /** Called once sampling has ended (finished, failed or interrupted): release derived sessions here. */
  dispose?(): void | Promise<void>;
}

export type PatchPlannerBuilder = (
  patches: readonly ModelPatch[],
  context: PatchContext,
) => PatchedSampling | Promise<PatchedSampling>;

/** Thrown for patch lists KSampler cannot apply; KSampler reports it as the user's error on its `model` input. */
export class PatchError extends Error {
  override name = 'PatchError';
}

const builders = new Map<string, PatchPlannerBuilder>();
const knownKinds = new Set<string>();

/** The registry key of a combination: its distinct kinds, sorted, joined with '+'. */
function comboKey(kinds: Iterable<string>): string {
  return [...new Set(kinds)].sort().join('+');
}

/**
 * Registers the builder for a combination of patch kinds (e.g. `['tgate']`, `['deepcache', 'tgate']`).
 * Registering the same combination twice is an error (two packs claiming one kind).
 */
export function registerPatchPlanner(kinds: readonly string[], build: PatchPlannerBuilder): void {
  if (kinds.length === 0 || kinds.some((k) => typeof k !== 'string' || k === '' || k.includes('+'))) {
    throw new TypeError(`registerPatchPlanner: kinds must be non-empty names without "+"; got ${JSON.stringify(kinds)}`);
  }
  const key = comboKey(kinds);
  if (builders.has(key)) throw new Error(`A planner for model patches "${key}" is already registered`);
  builders.set(key, build);
  for (const kind of kinds) knownKinds.add(kind);
}

/** The patch kinds some builder handles, sorted (for messages and diagnostics). */
export function registeredPatchKinds(): string[] {
  return [...knownKinds].sort();
}

function source(patch: ModelPatch): string {
  return patch.nodeId !== undefined ? ` (added by node #${patch.nodeId})` : '';
}

/**
 * Turns a MODEL's patches into the sampling loop's planner: `undefined` for no patches (plain sampling).
 * Throws `PatchError` for unknown kinds or unsupported combinations.
 */
export async function applyPatches(patches: readonly ModelPatch[], context: PatchContext): Promise<PatchedSampling | undefined> {
  if (patches.length === 0) return undefined;
  for (const patch of patches) {
    if (!knownKinds.has(patch.kind)) {
      const known = registeredPatchKinds();
      throw new PatchError(
        `the MODEL carries a patch of unknown kind "${patch.kind}"${source(patch)}: ${patch.describe()}. ` +
          (known.length ? `Known patch kinds: ${known.join(', ')}.` : 'No patch kinds are registered.') +
          ' Is the node pack that adds it loaded and up to date?',
      );
    }
  }
  const key = comboKey(patches.map((p) => p.kind));
  const build = builders.get(key);
  if (!build) {
    const supported = [...builders.keys()].sort().join(', ');
    throw new PatchError(
      `the MODEL carries patches of kinds ${key.split('+').join(' and ')}, and that combination is not supported` +
        ` (supported: ${supported}). Patches: ${patches.map((p) => p.describe()).join('; ')}.`,
    );
  }
  return build(patches, context);
}
