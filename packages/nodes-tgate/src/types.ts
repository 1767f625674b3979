/**
 * What flows on this pack's links. The shapes follow ComfyUI's, so its users (and its node authors) find what
 * they expect, but the contents are @gategraph/diffusion's: tensors are `{ data: Float32Array, shape }`, a model
 * is a `DiffusionModel` (ONNX sessions), not a torch module.
 *
 * The `declare global` block teaches the type checker these types, for this pack and for every pack that
 * imports this file: `socket('MODEL')` inputs are then typed `ModelRef`, and so on.
 */
import { BYTE_SIZE } from '@gategraph/core';
import type { DiffusionModel, ModelComponent, ModelPatch, OpenedTextEncoder, OpenedVae, PatchableModel, SdxlSizes, Tensor } from '@gategraph/diffusion';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * MODEL: the denoising UNet of a checkpoint plus the patches nodes added to it (TGATE, DeepCache, ...).
 *
 * Immutable, like ComfyUI's `ModelPatcher.clone()`: a patching node returns `withPatch(ref, patch)`, a NEW
 * value with one more patch, and the value it received is untouched (other branches of the graph may use it).
 * `model` is shared by every value made from one checkpoint: its ONNX sessions are opened once.
 */
export class ModelRef implements PatchableModel {
  readonly patches: readonly ModelPatch[];

  constructor(
    readonly model: DiffusionModel,
    patches: readonly ModelPatch[] = [],
  ) {
    this.patches = Object.freeze([...patches]);
    Object.freeze(this);
  }

  /** A new MODEL with `patch` appended; this one is unchanged. */
  withPatch(patch: ModelPatch): ModelRef {
    return new ModelRef(this.model, [...this.patches, patch]);
  }

  /** For the executor's cache budget: the UNet's weights on disk (what its session holds in memory). */
  [BYTE_SIZE](): number {
    return componentBytes(this.model.unet);
  }
}

/**
 * CLIP: the text side of a checkpoint (tokenizer + text encoder), and the layer it encodes with. Immutable like
 * MODEL: CLIPSetLastLayer returns a new value (ComfyUI's `clip.clone()` + `clip_layer(n)`).
 */
export class ClipRef {
  constructor(
    /** A checkpoint (the whole model: its text side is used) or a text encoder file opened alone (CLIPLoader). */
    readonly model: OpenedTextEncoder,
    /** ComfyUI's `stop_at_clip_layer` (-1 = the last layer); undefined = the model's default (-1 for SD-1.x, -2 for SD-2.x). */
    readonly stopAtClipLayer?: number,
  ) {
    Object.freeze(this);
  }

  /** A new CLIP of the same model that encodes with layer `stop`; this one is unchanged. */
  withLastLayer(stop: number): ClipRef {
    return new ClipRef(this.model, stop);
  }

  [BYTE_SIZE](): number {
    return componentBytes(this.model.textEncoder);
  }
}

/** VAE: the latent <-> pixel side of a checkpoint (decoder, and the encoder when the folder has one). */
export class VaeRef {
  /** A checkpoint's VAE (the whole model: its VAE part is used) or a VAE file opened alone (VAELoader). */
  constructor(readonly model: OpenedVae) {
    Object.freeze(this);
  }

  /** Pixels per latent cell (8 for SD, 4 for the embedded tiny-sd). */
  get scaleFactor(): number {
    return this.model.io.vae.scaleFactor;
  }

  [BYTE_SIZE](): number {
    return componentBytes(this.model.vaeDecoder) + (this.model.vaeEncoder ? componentBytes(this.model.vaeEncoder) : 0);
  }
}

/** One prompt's encoding, as ComfyUI's `[cond, {"pooled_output": ...}]` pair. */
export interface ConditioningEntry {
  /** The text encoder's last hidden state, [1, L, D] (L = 77, D = the UNet's cross-attention width). */
  readonly hiddenStates: Tensor;
  /** The pooled embedding [1, D'] when the text encoder has one (SDXL's text_embeds; SD-1.x does not use it). */
  readonly pooled?: Tensor;
  /**
   * SDXL's size conditioning (CLIPTextEncodeSDXL's width, height, crop and target size; ComfyUI's conditioning
   * keys). Absent: the sampler uses the latent's size in pixels, no crop, as ComfyUI does.
   */
  readonly sdxl?: SdxlSizes;
  /** The SDXL refiner's aesthetic score (CLIPTextEncodeSDXLRefiner's ascore); absent: ComfyUI's 6 / 2.5. */
  readonly aestheticScore?: number;
  /** The prompt as written, for error messages and diagnostics. */
  readonly text: string;
  /** The folder of the checkpoint whose text encoder made it: the sampler checks it fits the UNet. */
  readonly modelDir: string;
  /**
   * InpaintModelConditioning (ComfyUI's `concat_latent_image`): the latent of the image with the masked part
   * greyed out, [B, C, h, w], fed to an inpainting UNet's extra channels.
   */
  readonly concatLatentImage?: Tensor;
  /** InpaintModelConditioning (ComfyUI's `concat_mask`): the mask at pixel size, [B, 1, H, W], 1 = repaint. */
  readonly concatMask?: Tensor;
  /**
   * ConditioningSetArea (pixels) or ConditioningSetAreaPercentage (fractions of the image): where this entry
   * applies. Kept in the node's units and turned into latent cells by the sampler, which knows the model's
   * pixels per cell (ComfyUI stores pixels // 8).
   */
  readonly area?: ConditioningArea;
  /** The entry's weight beside the others (ConditioningSetArea's strength, ComfyUI's `strength`); default 1. */
  readonly strength?: number;
  /** ConditioningSetMask: where this entry applies, [B, H, W] or [H, W] at any size (resized to the latent). */
  readonly mask?: Tensor;
  /** ConditioningSetMask's strength (ComfyUI's `mask_strength`). */
  readonly maskStrength?: number;
  /** ConditioningSetMask's set_cond_area "mask bounds": the entry runs on the mask's bounding box only. */
  readonly setAreaToBounds?: boolean;
  /** ConditioningSetTimestepRange: the part of the sampling, 0 = start, 1 = end, where this entry is used. */
  readonly timestepRange?: { readonly start: number; readonly end: number };
}

/** ComfyUI's conditioning `area`: in pixels, or ("percentage", ...) fractions of the image. */
export type ConditioningArea =
  | { readonly unit: 'pixels'; readonly width: number; readonly height: number; readonly x: number; readonly y: number }
  | { readonly unit: 'fraction'; readonly width: number; readonly height: number; readonly x: number; readonly y: number };

/**
 * CONDITIONING: a list of encodings, like ComfyUI's. Several entries (ConditioningCombine) are all evaluated at
 * every step and blended by their areas, masks and strengths (the sampler's regional conditioning).
 */
export type Conditioning = readonly ConditioningEntry[];

/** LATENT: like ComfyUI's `{"samples": tensor, "batch_index": [...]}`. */
export interface Latent {
  /** [B, C, h, w] in the UNet's units (already multiplied by the VAE's scaling factor). */
  readonly samples: Tensor;
  /** Which noise of a seed's sequence each item gets (ComfyUI's `batch_index`); absent = 0..B-1. */
  readonly batch_index?: readonly number[];
  /**
   * Set by EmptyLatentImage: the image size this empty latent stands for. EmptyLatentImage cannot know the
   * model's pixels-per-latent-cell factor (8 for SD, 4 for tiny-sd), so `samples` is laid out for 8 like
   * ComfyUI's, and the sampler (which knows the model) re-makes the zeros at the model's size and channels.
   */
  readonly emptyImageSize?: { readonly width: number; readonly height: number };
  /**
   * ComfyUI's `noise_mask`, [B or 1, 1, H, W] at any resolution (resized to the latent when sampling): the
   * sampler changes the latent only where it is 1 (SetLatentNoiseMask, VAEEncodeForInpaint).
   */
  readonly noise_mask?: Tensor;
}

/** IMAGE: float [B, H, W, C] in 0..1, channels last (C = 3), like ComfyUI's. */
export type Image = Tensor;

/** MASK: float [B, H, W] in 0..1 (1 = masked), like ComfyUI's. */
export type Mask = Tensor;

/** SAMPLER (KSamplerSelect): a sampler of ComfyUI's list, run as a k-diffusion function. */
export interface SamplerChoice {
  readonly name: string;
}

/** SIGMAS: noise levels, decreasing, steps + 1 of them (a 1-D float32 tensor, as ComfyUI's). */
export type Sigmas = Tensor;

/** NOISE (RandomNoise, DisableNoise): the starting noise of a latent, and the seed that also seeds step noise. */
export interface NoiseSource {
  readonly seed: number;
  /** Noise shaped like the latent's samples (ComfyUI's generate_noise); batch_index picks items of the seed's batch. */
  generate(shape: readonly number[], batchIndex: readonly number[] | undefined): Tensor;
}

/** GUIDER (CFGGuider, BasicGuider, DualCFGGuider): the model and how its prompts guide each step. */
export interface Guider {
  readonly model: ModelRef;
  readonly positive: Conditioning;
  readonly negative?: Conditioning;
  readonly cfg: number;
  readonly dual?: { readonly middle: Conditioning; readonly cfgConds: number; readonly cfgCond2Negative: number; readonly nested: boolean };
}

// Declared globally (core's convention, see GateGraph.SocketTypes) so socket('MODEL') etc. are typed in
// this pack and in every pack that imports these types.
declare global {
  namespace GateGraph {
    interface SocketTypes {
      MODEL: ModelRef;
      CLIP: ClipRef;
      VAE: VaeRef;
      CONDITIONING: Conditioning;
      LATENT: Latent;
      IMAGE: Image;
      MASK: Mask;
      SAMPLER: SamplerChoice;
      SIGMAS: Sigmas;
      NOISE: NoiseSource;
      GUIDER: Guider;
    }
  }
}

/** Bytes of a component's ONNX file plus its external weights, 0 when the files are gone. */
function componentBytes(component: ModelComponent): number {
  let total = fileSize(component.path);
  if (component.externalData) total += fileSize(join(dirname(component.path), component.externalData));
  return total;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
