/**
 * How a 4-d tensor lays out its pixels. ComfyUI resizes channels-first tensors ([N, C, H, W]: latents, masks
 * given a channel axis); an IMAGE is channels-last ([B, H, W, C]) and ComfyUI moves its channels first before
 * resizing. Resizing here reads either layout in place, so an image is never copied twice just to be permuted.
 */
import type { Tensor } from '../tensor.ts';

export type Layout = 'nchw' | 'nhwc';

export interface Grid {
  batch: number;
  channels: number;
  height: number;
  width: number;
  layout: Layout;
}

/** The grid of a [N, C, H, W] or [B, H, W, C] tensor; throws a RangeError on another rank or an empty size. */
export function gridOf(t: Tensor, layout: Layout, what: string): Grid {
  if (t.shape.length !== 4) {
    const expected = layout === 'nchw' ? '[batch, channels, height, width]' : '[batch, height, width, channels]';
    throw new RangeError(`${what}: expected ${expected}, got [${t.shape.join(', ')}]`);
  }
  const [a, b, c, d] = t.shape as [number, number, number, number];
  const grid = layout === 'nchw' ? { batch: a, channels: b, height: c, width: d, layout } : { batch: a, height: b, width: c, channels: d, layout };
  if (grid.height === 0 || grid.width === 0) throw new RangeError(`${what}: the tensor [${t.shape.join(', ')}] has no pixels`);
  return grid;
}

/** The shape of `grid` at another height and width, in its layout. */
export function shapeOf(grid: Grid, height: number, width: number): number[] {
  return grid.layout === 'nchw' ? [grid.batch, grid.channels, height, width] : [grid.batch, height, width, grid.channels];
}

/**
 * The tensor seen as [outer, H, W, inner]: the axes that are resized and those that are not. Channels-first:
 * outer = N * C, inner = 1; channels-last: outer = B, inner = C. Per-channel filters work on this view.
 */
export function planesOf(grid: Grid): { outer: number; inner: number } {
  return grid.layout === 'nchw' ? { outer: grid.batch * grid.channels, inner: 1 } : { outer: grid.batch, inner: grid.channels };
}

/** Offset of element (b, c, y, x) and the distance between two channels of one pixel. */
export function indexer(grid: Grid): { at: (b: number, c: number, y: number, x: number) => number; channelStride: number } {
  const { channels: C, height: H, width: W } = grid;
  if (grid.layout === 'nchw') return { at: (b, c, y, x) => ((b * C + c) * H + y) * W + x, channelStride: H * W };
  return { at: (b, c, y, x) => ((b * H + y) * W + x) * C + c, channelStride: 1 };
}

/** Checks a target size: whole numbers of at least 1 pixel. */
export function checkSize(width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: ${width}x${height} is not a size (width and height must be whole numbers of at least 1)`);
  }
}
