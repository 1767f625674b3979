/**
 * ComfyUI's comfy.utils.common_upscale: what its LatentUpscale, ImageScale and friends call. An optional centre
 * crop to the target's aspect ratio, then one of the resampling methods.
 */
import type { Tensor } from '../tensor.ts';
import { bislerp } from './bislerp.ts';
import { gridOf, indexer, shapeOf, type Layout } from './grid.ts';
import { interpolate, type InterpolateMode } from './interpolate.ts';
import { lanczos } from './lanczos.ts';

export type UpscaleMethod = InterpolateMode | 'lanczos' | 'bislerp';
export type CropMethod = 'disabled' | 'center';

/** ComfyUI's menus: images offer lanczos, latents bislerp. */
export const IMAGE_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] as const;
export const LATENT_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] as const;
export const CROP_METHODS = ['disabled', 'center'] as const;

/**
 * Python 3's round(): to the nearest integer, halves to the even one (round(2.5) = 2, round(3.5) = 4). ComfyUI
 * computes sizes with it, and Math.round would make some of them one pixel larger.
 */
export function roundHalfEven(x: number): number {
  const down = Math.floor(x);
  const diff = x - down;
  if (diff < 0.5) return down;
  if (diff > 0.5) return down + 1;
  return down % 2 === 0 ? down : down + 1;
}

/**
 * The centred window of `t` with the aspect ratio of `width` x `height` (ComfyUI's crop="center"): the wider
 * side is cut by the same number of pixels on both ends.
 */
export function centerCrop(t: Tensor, width: number, height: number, layout: Layout = 'nchw'): Tensor {
  const grid = gridOf(t, layout, 'centerCrop');
  const { width: W, height: H } = grid;
  const oldAspect = W / H;
  const newAspect = width / height;
  let x = 0;
  let y = 0;
  if (oldAspect > newAspect) x = roundHalfEven((W - W * (newAspect / oldAspect)) / 2);
  else if (oldAspect < newAspect) y = roundHalfEven((H - H * (oldAspect / newAspect)) / 2);
  if (x === 0 && y === 0) return t;
  const h = H - 2 * y;
  const w = W - 2 * x;
  const from = indexer(grid);
  const outGrid = { ...grid, height: h, width: w };
  const to = indexer(outGrid);
  const data = new Float32Array(grid.batch * grid.channels * h * w);
  if (layout === 'nhwc') {
    // Whole rows of pixels (all channels) are contiguous.
    for (let b = 0; b < grid.batch; b++) {
      for (let r = 0; r < h; r++) data.set(t.data.subarray(from.at(b, 0, r + y, x), from.at(b, 0, r + y, x + w)), to.at(b, 0, r, 0));
    }
  } else {
    for (let b = 0; b < grid.batch; b++) {
      for (let c = 0; c < grid.channels; c++) {
        for (let r = 0; r < h; r++) data.set(t.data.subarray(from.at(b, c, r + y, x), from.at(b, c, r + y, x + w)), to.at(b, c, r, 0));
      }
    }
  }
  return { data, shape: shapeOf(grid, h, w) };
}

/**
 * `t` resized to `width` x `height` as ComfyUI's common_upscale(samples, width, height, method, crop) does.
 * `layout` says where the channels are: 'nchw' for a LATENT's samples, 'nhwc' for an IMAGE (ComfyUI moves an
 * image's channels first before calling it; the result is the same). Always a new tensor.
 */
export function commonUpscale(t: Tensor, width: number, height: number, method: UpscaleMethod, crop: CropMethod, layout: Layout = 'nchw'): Tensor {
  const source = crop === 'center' ? centerCrop(t, width, height, layout) : t;
  switch (method) {
    case 'bislerp':
      return bislerp(source, width, height, layout);
    case 'lanczos':
      return lanczos(source, width, height, layout);
    default:
      return interpolate(source, width, height, method, layout);
  }
}
