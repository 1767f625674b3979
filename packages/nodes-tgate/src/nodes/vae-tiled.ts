/**
 * VAEDecodeTiled and VAEEncodeTiled: the VAE run on overlapping tiles (vae-tiles.ts), so its activations are
 * bounded by the tile size whatever the image size, with ComfyUI's inputs. temporal_size / temporal_overlap are
 * for video VAEs; the VAEs this pack opens are image VAEs, so they are accepted (ComfyUI's workflows set them) and
 * not used.
 */
import { defineNode, int, NodeInputError, socket, type ExecutionContext } from '@gategraph/core';
import { decodeLatents, encodeImage, type Tensor } from '@gategraph/diffusion';
import { latentSamplesFor, MAX_RESOLUTION } from '../latent.ts';
import { activationLimit, estimateVaeDecodeBytes, formatBytes, largestSquareSide } from '../memory.ts';
import { sizingOf, type SizedModel } from '../sizing.ts';
import type { Image, Latent, VaeRef } from '../types.ts';
import { blendTiles, comfyTilings, tileCount, tileShapes, type Span, type Tiling } from '../vae-tiles.ts';
import { cropToMultiple } from './vae.ts';

const TEMPORAL_NOTE = 'Only used by video VAEs; the VAEs this server runs are image VAEs, so it is accepted (for ComfyUI workflows) and ignored.';

/** ComfyUI's inputs of both nodes; only the tile size's step differs (32 to decode, 64 to encode, as in ComfyUI). */
function tileInputs(tileStep: number, action: string) {
  return {
    tile_size: int({
      default: 512,
      min: 64,
      max: 4096,
      step: tileStep,
      tooltip: `Side of the square tiles in pixels (rounded down to the VAE's block size). Smaller tiles ${action} larger images in less memory, with more seams to blend.`,
    }),
    overlap: int({
      default: 64,
      min: 0,
      max: 4096,
      step: 32,
      tooltip: 'Pixels by which neighbouring tiles overlap and are blended (at most a quarter of tile_size; more is lowered to that).',
    }),
    temporal_size: int({ default: 64, min: 8, max: 4096, step: 4, tooltip: `Frames per tile for video VAEs. ${TEMPORAL_NOTE}` }),
    temporal_overlap: int({ default: 8, min: 4, max: 4096, step: 4, tooltip: `Frames by which video tiles overlap. ${TEMPORAL_NOTE}` }),
  };
}

/** Tile and overlap in latent cells: ComfyUI lowers an overlap above a quarter of the tile to a quarter (decode). */
function cellsOf(tileSize: number, overlap: number, f: number): { tile: number; overlap: number } {
  const px = tileSize < overlap * 4 ? Math.floor(tileSize / 4) : overlap;
  return { tile: Math.max(1, Math.floor(tileSize / f)), overlap: Math.floor(px / f) };
}

/**
 * Refuses tilings the VAE cannot run before anything runs: tiles of another size than a VAE exported for one size
 * takes, and tiles whose activations would not fit in memory (the message says which tile_size fits).
 */
function checkTiles(model: SizedModel, tilings: readonly Tiling[], tileSize: number, action: 'decode' | 'encode'): void {
  const f = model.io.vae.scaleFactor;
  const shapes = tileShapes(tilings);
  const fixed = model.io.vae.fixedImageSize;
  if (fixed) {
    const other = shapes.find(([h, w]) => h * f !== fixed[0] || w * f !== fixed[1]);
    if (other) {
      throw new NodeInputError(
        `tile_size: ${model.name}'s VAE was exported for ${fixed[1]}x${fixed[0]} pixels only, so it cannot ${action} tiles of ${other[1] * f}x${other[0] * f} ` +
          `(ComfyUI's tiling also runs tiles half as wide and twice as high): use VAE${action === 'decode' ? 'Decode' : 'Encode'}, or a VAE exported with dynamic height and width`,
        'tile_size',
      );
    }
  }
  const sizing = sizingOf(model);
  const limit = activationLimit();
  for (const [h, w] of shapes) {
    const need = estimateVaeDecodeBytes(sizing, h, w);
    if (need <= limit.bytes) continue;
    const max = largestSquareSide(f, MAX_RESOLUTION, limit.bytes, (side) => estimateVaeDecodeBytes(sizing, side / f, side / f));
    throw new NodeInputError(
      `tile_size ${tileSize} makes tiles of ${w * f}x${h * f} pixels: ${action === 'decode' ? 'decoding' : 'encoding'} one with ${model.name}'s VAE needs an estimated ` +
        `${formatBytes(need)} of activations, above the limit of ${formatBytes(limit.bytes)} (${limit.source}). ` +
        (max > 0 ? `Lower tile_size to ${max} or less.` : 'Even the smallest tile does not fit.'),
      'tile_size',
    );
  }
}

/** Progress over every tile of every batch item; also where an interruption stops the loop. */
function tileProgress(ctx: ExecutionContext, total: number): () => void {
  let done = 0;
  return () => ctx.progress(++done, total);
}

/** The latent cells rows x cols of batch item `b` of a [B, C, h, w] latent, as a [1, C, rows, cols] tensor. */
function latentTile(latent: Tensor, b: number, rows: Span, cols: Span): Tensor {
  const [, C, h, w] = latent.shape as [number, number, number, number];
  const data = new Float32Array(C * rows.length * cols.length);
  let o = 0;
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < rows.length; y++) {
      const from = ((b * C + c) * h + rows.start + y) * w + cols.start;
      data.set(latent.data.subarray(from, from + cols.length), o);
      o += cols.length;
    }
  }
  return { data, shape: [1, C, rows.length, cols.length] };
}

/** The pixels of batch item `b` of an IMAGE [B, H, W, C] under latent cells rows x cols, as a [1, h, w, C] tensor. */
function imageTile(image: Tensor, b: number, rows: Span, cols: Span, f: number): Tensor {
  const [, H, W, C] = image.shape as [number, number, number, number];
  const h = rows.length * f;
  const w = cols.length * f;
  const data = new Float32Array(h * w * C);
  for (let y = 0; y < h; y++) {
    const from = ((b * H + rows.start * f + y) * W + cols.start * f) * C;
    data.set(image.data.subarray(from, from + w * C), y * w * C);
  }
  return { data, shape: [1, h, w, C] };
}

/** Decodes a latent [B, C, h, w] tile by tile into an IMAGE [B, h*f, w*f, 3]. */
export async function decodeTiled(vae: VaeRef, samples: Tensor, tileSize: number, overlapPx: number, ctx: ExecutionContext): Promise<Image> {
  const model = vae.model;
  const f = model.io.vae.scaleFactor;
  const [batch, , h, w] = samples.shape as [number, number, number, number];
  const { tile, overlap } = cellsOf(tileSize, overlapPx, f);
  const tilings = comfyTilings(h, w, tile, overlap);
  checkTiles(model, tilings, tileSize, 'decode');
  const H = h * f;
  const W = w * f;
  const out = new Float32Array(batch * H * W * 3);
  const step = tileProgress(ctx, batch * tileCount(tilings));
  for (let b = 0; b < batch; b++) {
    await blendTiles({
      tilings,
      scale: f,
      overlap,
      target: { data: out.subarray(b * H * W * 3, (b + 1) * H * W * 3), height: H, width: W, channels: 3, interleaved: true },
      run: async (rows, cols) => (await decodeLatents(model, latentTile(samples, b, rows, cols))).data,
      onTile: step,
    });
  }
  return { data: out, shape: [batch, H, W, 3] };
}

/** Encodes an IMAGE tile by tile into a latent [B, C, H/f, W/f] (centre-cropped to the VAE's block size first). */
export async function encodeTiled(vae: VaeRef, pixels: Tensor, tileSize: number, overlapPx: number, ctx: ExecutionContext): Promise<Tensor> {
  const model = vae.model;
  if (!model.vaeEncoder) {
    throw new NodeInputError(`vae: ${model.name} has no vae_encoder/model.onnx, so it cannot encode images; add the encoder to ${model.dir} or use another checkpoint`, 'vae');
  }
  const f = model.io.vae.scaleFactor;
  if (pixels.shape.length !== 4 || pixels.shape[1]! < f || pixels.shape[2]! < f || pixels.shape[3]! < 3) {
    throw new NodeInputError(`pixels is [${pixels.shape.join(', ')}]; an RGB IMAGE of at least ${f}x${f} pixels is needed`, 'pixels');
  }
  const image = cropToMultiple(pixels, f);
  const [batch, H, W] = image.shape as [number, number, number, number];
  const h = H / f;
  const w = W / f;
  const { tile, overlap } = cellsOf(tileSize, overlapPx, f);
  const tilings = comfyTilings(h, w, tile, overlap);
  checkTiles(model, tilings, tileSize, 'encode');
  const channels = model.io.vae.latentChannels;
  const out = new Float32Array(batch * channels * h * w);
  const step = tileProgress(ctx, batch * tileCount(tilings));
  for (let b = 0; b < batch; b++) {
    await blendTiles({
      tilings,
      scale: 1,
      overlap,
      target: { data: out.subarray(b * channels * h * w, (b + 1) * channels * h * w), height: h, width: w, channels, interleaved: false },
      run: async (rows, cols) => (await encodeImage(model, imageTile(image, b, rows, cols, f))).data,
      onTile: step,
    });
  }
  return { data: out, shape: [batch, channels, h, w] };
}

export const VAEDecodeTiled = defineNode({
  id: 'VAEDecodeTiled',
  displayName: 'VAE Decode (Tiled)',
  category: '_for_testing',
  description:
    "Turns latents into images with the VAE decoder one overlapping tile at a time, blending the tiles as ComfyUI does (three tilings averaged), so memory is bounded by the tile size at any image size. " +
    'Close to VAEDecode, not identical: each tile is normalised on its own.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The latent to decode.' }),
    vae: socket('VAE', { tooltip: 'The VAE of the checkpoint that made the latent; its decoder must take any size (most do).' }),
    ...tileInputs(32, 'decode'),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The decoded images.' }],
  async execute({ samples, vae, tile_size, overlap }, ctx) {
    const latent = latentSamplesFor(samples, vae.model, 'samples');
    return [await decodeTiled(vae, latent, tile_size, overlap, ctx)];
  },
});

export const VAEEncodeTiled = defineNode({
  id: 'VAEEncodeTiled',
  displayName: 'VAE Encode (Tiled)',
  category: '_for_testing',
  description:
    'Turns images into latents with the VAE encoder one overlapping tile at a time, blending the tiles as ComfyUI does (three tilings averaged), so memory is bounded by the tile size at any image size. ' +
    "Sizes that are not a multiple of the VAE's block size are centre-cropped to one, as in VAEEncode.",
  inputs: {
    pixels: socket('IMAGE', { tooltip: 'The images to encode.' }),
    vae: socket('VAE', { tooltip: 'The VAE of the checkpoint that will sample the latent; its encoder must take any size (most do).' }),
    ...tileInputs(64, 'encode'),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The encoded latents.' }],
  async execute({ pixels, vae, tile_size, overlap }, ctx) {
    const latent: Latent = { samples: await encodeTiled(vae, pixels, tile_size, overlap, ctx) };
    return [latent];
  },
});
