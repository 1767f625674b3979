/**
 * What the latent, image and mask nodes share: checking the tensors they receive (with messages naming the
 * input), ComfyUI's `samples.copy()` with new samples, and picking batch rows the way ComfyUI's torch code does.
 */
import { NodeInputError } from '@gategraph/core';
import type { Tensor } from '@gategraph/diffusion';
import type { Image, Latent, Mask } from './types.ts';

/** ComfyUI's latents have 8 pixels per cell: the node widgets give sizes and offsets in pixels, cells = pixels // 8. */
export const PIXELS_PER_CELL = 8;

/** [B, C, h, w] of a LATENT's samples, or a NodeInputError naming `input`. */
export function latentDims(latent: Latent, input: string): [number, number, number, number] {
  const shape = latent?.samples?.shape;
  if (!shape || shape.length !== 4) throw new NodeInputError(`${input} is not a LATENT: its samples should be [batch, channels, height, width], got [${shape?.join(', ') ?? 'nothing'}]`, input);
  return shape as [number, number, number, number];
}

/** [B, H, W, C] of an IMAGE, or a NodeInputError naming `input`. */
export function imageDims(image: Image, input: string): [number, number, number, number] {
  if (image?.shape?.length !== 4) throw new NodeInputError(`${input} is not an IMAGE: it should be [batch, height, width, channels], got [${image?.shape?.join(', ') ?? 'nothing'}]`, input);
  return image.shape as [number, number, number, number];
}

/** [B, H, W] of a MASK ([H, W] counts as one mask), or a NodeInputError naming `input`. */
export function maskDims(mask: Mask, input: string): [number, number, number] {
  const shape = mask?.shape;
  if (shape?.length === 2) return [1, shape[0]!, shape[1]!];
  if (shape?.length !== 3) throw new NodeInputError(`${input} is not a MASK: it should be [batch, height, width], got [${shape?.join(', ') ?? 'nothing'}]`, input);
  return shape as [number, number, number];
}

/**
 * ComfyUI's `s = samples.copy(); s["samples"] = ...`: the new samples with the latent's other keys (batch_index,
 * noise_mask). An empty latent (EmptyLatentImage's placeholder zeros, which the sampler re-makes for its model)
 * stays empty when `stillEmpty` (its samples are still all zeros); its image size then follows the samples' size.
 */
export function withSamples(latent: Latent, samples: Tensor, stillEmpty = true): Latent {
  const { emptyImageSize, ...rest } = latent;
  if (!emptyImageSize || !stillEmpty) return { ...rest, samples };
  const [, , h, w] = samples.shape as [number, number, number, number];
  const [, , oldH, oldW] = latent.samples.shape as [number, number, number, number];
  // The same cells stand for the same image (EmptyLatentImage's 516 wide is 64 cells, and stays 516).
  const size = h === oldH && w === oldW ? emptyImageSize : { width: w * PIXELS_PER_CELL, height: h * PIXELS_PER_CELL };
  return { ...rest, samples, emptyImageSize: size };
}

/** The rows `rows` of a batch (dim 0) of `t`, in that order, as a new tensor. */
export function pickRows(t: Tensor, rows: readonly number[]): Tensor {
  const batch = t.shape[0]!;
  const per = batch === 0 ? 0 : t.data.length / batch;
  const data = new Float32Array(rows.length * per);
  rows.forEach((r, i) => data.set(t.data.subarray(r * per, (r + 1) * per), i * per));
  return { data, shape: [rows.length, ...t.shape.slice(1)] };
}

/** ComfyUI's repeat_to_batch_size: the batch tiled, or cut, to `batch` rows. */
export function repeatToBatch(t: Tensor, batch: number): Tensor {
  const have = t.shape[0]!;
  if (have === batch) return t;
  return pickRows(t, Array.from({ length: batch }, (_, i) => i % have));
}

/** A MASK [B, H, W] (or [H, W]) as ComfyUI's mask.reshape((-1, 1, H, W)): no copy. */
export function maskAsPlanes(mask: Mask, input: string): Tensor {
  const [b, h, w] = maskDims(mask, input);
  return { data: mask.data, shape: [b, 1, h, w] };
}
