/**
 * The sampling-extension service: which code turns a MODEL's patches into sampling wrappers.
 *
 * A patch is data (a kind, settings, the node that added it); a pack registers, for the patch kinds it
 * defines, one `SamplingExtension` that is called once per sampling run with that run's patches of its kinds
 * and returns its wrappers (types.ts). The sampler chains the wrappers of every extension present, so any set
 * of kinds composes and no code is written per combination. An extension may claim several kinds and plan them
 * together when their combination is its own schedule (TGATE + DeepCache is one extension of two kinds).
 *
 * Chain order follows the MODEL: the extension whose first patch was added first is outermost, as ComfyUI calls
 * the wrapper added first first.
 *
 * One service per host process. It is kept on `globalThis` under a registry symbol, not in this module: a pack
 * that reaches a second copy of this package (its own node_modules, another version) still registers with the
 * service the host's sampler reads. For the same reason errors are recognised by `name`, never `instanceof`.
 */
import type { DiffusionModel } from '../model-folder.ts';
import type { Scheduler } from '../schedulers/types.ts';
import type { KDiffusionSampling } from '../k-sampling-loop.ts';
import type { SamplingWrappers } from './types.ts';

/** One change to a MODEL. Plain data plus a description: patches are compared and shown; extensions run them. */
export interface ModelPatch {
  /** What kind of patch this is ('tgate', 'deepcache', ...): the key extensions are registered under. */
  readonly kind: string;
  /** The node's settings, resolved (JSON-like values). Part of what the patch means; shown in errors. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Id of the node that added it, for messages ("the CacheCrossAttn node #7 ..."). */
  readonly nodeId?: string;
  /** One line for people: "TGATE: gate at step 10 of 25, cache self-attention". */
  describe(): string;
}

/** A MODEL value that carries patches (the sampler node pack's MODEL is one): what a patching node needs. */
export interface PatchableModel {
  readonly patches: readonly ModelPatch[];
  /** A new MODEL with `patch` appended; this one is unchanged (ComfyUI's `clone()` + `set_model_...`). */
  withPatch(patch: ModelPatch): PatchableModel;
}

/** Where an extension's notes go (the sampler node's log). */
export interface RunLog {
  info(message: string): void;
  warn(message: string): void;
}

/** What an extension knows about the run it wraps, before it starts. */
export interface SamplingRun {
  readonly model: DiffusionModel;
  /** The steps the scheduler will run (ddim_uniform may differ from the widget). */
  readonly steps: number;
  readonly cfg: number;
  /** The run's scheduler, or its k-diffusion sampler (sampler name, sigmas, timesteps alike). */
  readonly scheduler: Scheduler | KDiffusionSampling;
  /** [B, C, h, w] of the latent being sampled. */
  readonly latentShape: readonly number[];
  /** True when a negative conditioning is fed. */
  readonly hasNegative: boolean;
  readonly log: RunLog;
  readonly signal: AbortSignal;
}

export interface SamplingExtension {
  /** Who registered it (a pack's name), for messages. */
  readonly owner: string;
  /** The patch kinds it handles; a kind has one extension. */
  readonly kinds: readonly string[];
  /**
   * Called once per sampling run whose MODEL carries patches of its kinds (all of them, in MODEL order).
   * Throw `PatchError` for settings that cannot run: the sampler reports it on its `model` input.
   */
  wrap(patches: readonly ModelPatch[], run: SamplingRun): SamplingWrappers | Promise<SamplingWrappers>;
}

/** Patches the sampler cannot apply: reported as the user's error on the sampler's `model` input. */
export class PatchError extends Error {
  override name = 'PatchError';
}

/** True for a PatchError of any copy of this package. */
export function isPatchError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'PatchError';
}

const source = (patch: ModelPatch) => (patch.nodeId !== undefined ? ` (added by node #${patch.nodeId})` : '');

export class SamplingExtensions {
  readonly #byKind = new Map<string, SamplingExtension>();

  /**
   * Adds an extension for its kinds. A kind already claimed by another extension is an error naming both
   * owners (two packs defining one kind); registering the same object again changes nothing. Returns a
   * function that removes it again.
   */
  register(extension: SamplingExtension): () => void {
    const { kinds, owner } = extension;
    if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => typeof k !== 'string' || k === '')) {
      throw new TypeError(`sampling extension of ${String(owner)}: kinds must be a non-empty list of names; got ${JSON.stringify(kinds)}`);
    }
    if (typeof extension.wrap !== 'function') throw new TypeError(`sampling extension of ${owner}: wrap must be a function`);
    for (const kind of kinds) {
      const other = this.#byKind.get(kind);
      if (other && other !== extension) {
        throw new Error(`Patch kind "${kind}" is already handled by a sampling extension of ${other.owner}; ${owner} cannot register it too`);
      }
    }
    for (const kind of kinds) this.#byKind.set(kind, extension);
    return () => {
      for (const kind of kinds) if (this.#byKind.get(kind) === extension) this.#byKind.delete(kind);
    };
  }

  /** The kinds some extension handles, sorted. */
  kinds(): string[] {
    return [...this.#byKind.keys()].sort();
  }

  /**
   * The wrappers for a MODEL's patches, in chain order; none for no patches (plain sampling). Throws
   * `PatchError` for a kind no extension handles, naming it, the node that added it and the known kinds.
   */
  async wrappersFor(patches: readonly ModelPatch[], run: SamplingRun): Promise<SamplingWrappers[]> {
    const groups = new Map<SamplingExtension, ModelPatch[]>();
    for (const patch of patches) {
      const extension = this.#byKind.get(patch.kind);
      if (!extension) {
        const known = this.kinds();
        throw new PatchError(
          `the MODEL carries a patch of unknown kind "${patch.kind}"${source(patch)}: ${patch.describe()}. ` +
            (known.length ? `Known patch kinds: ${known.join(', ')}.` : 'No patch kinds are registered.') +
            ' Is the node pack that adds it loaded and up to date?',
        );
      }
      const group = groups.get(extension);
      if (group) group.push(patch);
      else groups.set(extension, [patch]);
    }
    const sets: SamplingWrappers[] = [];
    // Map iteration follows insertion: each extension at its first patch's place.
    for (const [extension, own] of groups) sets.push(await extension.wrap(own, run));
    return sets;
  }
}

const SLOT = Symbol.for('@gategraph/diffusion/sampling-extensions');

/** This process's sampling-extension service (the same object for every copy of this package). */
export function samplingExtensions(): SamplingExtensions {
  const slot = globalThis as { [SLOT]?: SamplingExtensions };
  return (slot[SLOT] ??= new SamplingExtensions());
}
