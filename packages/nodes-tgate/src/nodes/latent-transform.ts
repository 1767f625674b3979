/**
 * ComfyUI's latent resizing and compositing nodes: LatentUpscale, LatentUpscaleBy, LatentComposite,
 * LatentCompositeMasked. Sizes and offsets are in pixels and become latent cells at 8 pixels per cell, as in
 * ComfyUI (whose SD latents all have that factor). The result keeps the latent's other keys (noise_mask,
 * batch_index) like ComfyUI's `samples.copy()`; an empty latent stays empty at its new size.
 */
import { boolean, combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { commonUpscale, CROP_METHODS, interpolate, LATENT_UPSCALE_METHODS, roundHalfEven, type Tensor } from '@gategraph/diffusion';
import { MAX_RESOLUTION } from '../latent.ts';
import { latentDims, maskAsPlanes, PIXELS_PER_CELL, repeatToBatch, withSamples } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Latent } from '../types.ts';

/** ComfyUI's smallest LatentUpscale size: 64 pixels (8 cells) a side. */
const MIN_UPSCALE_PIXELS = 64;

const METHOD_TOOLTIP =
  'How new latent cells are computed: nearest-exact copies the nearest cell, bilinear and bicubic blend neighbours, area averages the cells ' +
  'it covers (best for shrinking), bislerp blends neighbouring cells along the sphere (keeps their magnitude, often sharper for latents).';

/** Resizes a latent's samples to cells w x h, refusing a size that does not fit in memory. */
function upscaleSamples(latent: Latent, w: number, h: number, method: (typeof LATENT_UPSCALE_METHODS)[number], crop: 'disabled' | 'center', input: string): Latent {
  const [B, C] = latentDims(latent, 'samples');
  if (w < 1 || h < 1) throw new NodeInputError(`the upscaled latent would be ${w}x${h} cells: it needs at least one cell a side; raise ${input}`, input);
  checkTensorFits([B, C, h, w], input, 'the upscaled latent', { copies: method === 'bislerp' ? 2 : 1 });
  return withSamples(latent, commonUpscale(latent.samples, w, h, method, crop));
}

export const LatentUpscale = defineNode({
  id: 'LatentUpscale',
  displayName: 'Upscale Latent',
  category: 'latent',
  description:
    'Resizes a latent to a size in pixels (8 pixels per latent cell, at least 64 a side). A width or height of 0 keeps the aspect ratio from the other; both 0 leave the latent as it is. ' +
    'Sample the result again (with denoise below 1) to add detail at the new size. The noise mask and batch indices are kept.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The latent to resize.' }),
    upscale_method: combo(LATENT_UPSCALE_METHODS, { tooltip: METHOD_TOOLTIP }),
    width: int({ default: 512, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Target width in pixels (rounded down to a multiple of 8); 0 = from the height, keeping the aspect ratio.' }),
    height: int({ default: 512, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Target height in pixels (rounded down to a multiple of 8); 0 = from the width, keeping the aspect ratio.' }),
    crop: combo(CROP_METHODS, { tooltip: 'disabled stretches the latent to the new aspect ratio; center cuts the sides that do not fit the new aspect ratio first.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The resized latent.' }],
  execute({ samples, upscale_method, width, height, crop }) {
    if (width === 0 && height === 0) return [samples];
    const [, , h, w] = latentDims(samples, 'samples');
    let W = Math.max(MIN_UPSCALE_PIXELS, width);
    let H = Math.max(MIN_UPSCALE_PIXELS, height);
    if (width === 0) W = Math.max(MIN_UPSCALE_PIXELS, roundHalfEven((w * H) / h));
    else if (height === 0) H = Math.max(MIN_UPSCALE_PIXELS, roundHalfEven((h * W) / w));
    const input = width === 0 ? 'height' : 'width';
    return [upscaleSamples(samples, Math.floor(W / PIXELS_PER_CELL), Math.floor(H / PIXELS_PER_CELL), upscale_method, crop, input)];
  },
});

export const LatentUpscaleBy = defineNode({
  id: 'LatentUpscaleBy',
  displayName: 'Upscale Latent By',
  category: 'latent',
  description: 'Resizes a latent by a factor (each side multiplied by scale_by and rounded). Sample the result again (with denoise below 1) to add detail at the new size.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The latent to resize.' }),
    upscale_method: combo(LATENT_UPSCALE_METHODS, { tooltip: METHOD_TOOLTIP }),
    scale_by: float({ default: 1.5, min: 0.01, max: 8, step: 0.01, tooltip: 'The factor for width and height: 2 doubles each side (four times the cells).' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The resized latent.' }],
  execute({ samples, upscale_method, scale_by }) {
    const [, , h, w] = latentDims(samples, 'samples');
    return [upscaleSamples(samples, roundHalfEven(w * scale_by), roundHalfEven(h * scale_by), upscale_method, 'disabled', 'scale_by')];
  },
});

/** Python's slice a[start:stop] of a length-n axis, as the half-open range it selects. */
function pySlice(start: number, stop: number, n: number): [number, number] {
  const norm = (i: number) => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const from = norm(start);
  return [from, Math.max(from, norm(stop))];
}

/**
 * LatentComposite's feather weights for a pasted region of rh x rw cells at (x, y) in a W x H latent: edges
 * that lie inside the destination fade in over `feather` cells ((t + 1) / feather at distance t), edges on the
 * destination's border stay hard. Rows and columns are picked with Python's slices, as ComfyUI's loop does.
 */
function featherWeights(rh: number, rw: number, x: number, y: number, H: number, W: number, feather: number): Float32Array {
  const weights = new Float32Array(rh * rw).fill(1);
  const scaleRows = (from: number, to: number, f: number) => {
    for (let r = from; r < to; r++) for (let c = 0; c < rw; c++) weights[r * rw + c] = Math.fround(weights[r * rw + c]! * f);
  };
  const scaleCols = (from: number, to: number, f: number) => {
    for (let r = 0; r < rh; r++) for (let c = from; c < to; c++) weights[r * rw + c] = Math.fround(weights[r * rw + c]! * f);
  };
  for (let t = 0; t < feather; t++) {
    const f = (1 / feather) * (t + 1);
    if (y !== 0) scaleRows(...pySlice(t, t + 1, rh), f);
    if (y + rh < H) scaleRows(...pySlice(rh - 1 - t, rh - t, rh), f);
    if (x !== 0) scaleCols(...pySlice(t, t + 1, rw), f);
    if (x + rw < W) scaleCols(...pySlice(rw - 1 - t, rw - t, rw), f);
  }
  return weights;
}

/** Checks that `from` can be pasted into `to`: same channels, a batch of 1 or the same batch. */
function checkPaste(to: Tensor, from: Tensor, fromInput: string, toInput: string, batchOk: (fb: number, b: number) => boolean): void {
  const [B, C] = to.shape as [number, number];
  const [fb, fc] = from.shape as [number, number];
  if (fc !== C) throw new NodeInputError(`${fromInput} has ${fc} latent channels and ${toInput} ${C}: both must come from the same kind of model`, fromInput);
  if (!batchOk(fb, B)) throw new NodeInputError(`${fromInput} is a batch of ${fb} and ${toInput} a batch of ${B}: use a batch of 1 or of ${B}`, fromInput);
}

export const LatentComposite = defineNode({
  id: 'LatentComposite',
  displayName: 'Latent Composite',
  category: 'latent',
  description:
    'Pastes one latent onto another at (x, y) in pixels (8 pixels per latent cell); what falls outside is cut. A feather fades the pasted edges that lie inside the destination. ' +
    "The result keeps samples_to's noise mask and batch indices.",
  inputs: {
    samples_to: socket('LATENT', { tooltip: 'The latent pasted onto (the background).' }),
    samples_from: socket('LATENT', { tooltip: 'The latent pasted (a batch of 1 goes onto every image of samples_to).' }),
    x: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Left edge of the pasted latent, in pixels (rounded down to a multiple of 8).' }),
    y: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Top edge of the pasted latent, in pixels (rounded down to a multiple of 8).' }),
    feather: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Width of the fade at the pasted edges, in pixels (8 per cell); 0 = a hard edge.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'samples_to with samples_from pasted in.' }],
  execute({ samples_to, samples_from, x, y, feather }) {
    const [B, C, H, W] = latentDims(samples_to, 'samples_to');
    const [fb, , fh, fw] = latentDims(samples_from, 'samples_from');
    checkPaste(samples_to.samples, samples_from.samples, 'samples_from', 'samples_to', (f, b) => f === 1 || f === b);
    const cx = Math.floor(x / PIXELS_PER_CELL);
    const cy = Math.floor(y / PIXELS_PER_CELL);
    const cells = Math.floor(feather / PIXELS_PER_CELL);
    const out = samples_to.samples.data.slice();
    const rh = Math.max(0, Math.min(fh, H - cy));
    const rw = Math.max(0, Math.min(fw, W - cx));
    const weights = cells > 0 && rh > 0 && rw > 0 ? featherWeights(rh, rw, cx, cy, H, W, cells) : undefined;
    const from = samples_from.samples.data;
    for (let b = 0; b < B; b++) {
      const sb = fb === 1 ? 0 : b;
      for (let c = 0; c < C; c++) {
        for (let r = 0; r < rh; r++) {
          const to = ((b * C + c) * H + cy + r) * W + cx;
          const src = ((sb * C + c) * fh + r) * fw;
          for (let k = 0; k < rw; k++) {
            const m = weights ? weights[r * rw + k]! : 1;
            out[to + k] = m === 1 ? from[src + k]! : from[src + k]! * m + out[to + k]! * Math.fround(1 - m);
          }
        }
      }
    }
    return [withSamples(samples_to, { data: out, shape: [B, C, H, W] }, samples_from.emptyImageSize !== undefined)];
  },
});

export const LatentCompositeMasked = defineNode({
  id: 'LatentCompositeMasked',
  displayName: 'LatentCompositeMasked',
  category: 'latent',
  description:
    "Pastes source onto destination at (x, y) in pixels (8 pixels per latent cell), through a mask: where the mask is 1 the source is taken, where 0 the destination is kept. " +
    "The mask is resized to the source. The result keeps destination's noise mask and batch indices.",
  inputs: {
    destination: socket('LATENT', { tooltip: 'The latent pasted onto.' }),
    source: socket('LATENT', { tooltip: 'The latent pasted (its batch is repeated or cut to the destination\'s).' }),
    x: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Left edge of the source in the destination, in pixels (rounded down to a multiple of 8).' }),
    y: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Top edge of the source in the destination, in pixels (rounded down to a multiple of 8).' }),
    resize_source: boolean({ default: false, tooltip: 'Stretch the source to the destination\'s size first (bilinear).' }),
    mask: socket('MASK', { optional: true, tooltip: 'Where to take the source (1) or keep the destination (0); resized to the source. Unconnected: the whole source.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The destination with the source pasted in.' }],
  execute({ destination, source, x, y, resize_source, mask }) {
    const [B, C, H, W] = latentDims(destination, 'destination');
    latentDims(source, 'source');
    checkPaste(destination.samples, source.samples, 'source', 'destination', () => true);
    let src = resize_source ? interpolate(source.samples, W, H, 'bilinear') : source.samples;
    src = repeatToBatch(src, B);
    const [, , sh, sw] = src.shape as [number, number, number, number];
    // Offsets below 0 are not offered (the widgets start at 0); one that arrives through a link counts as 0.
    const left = Math.floor(Math.max(0, Math.min(x, W * PIXELS_PER_CELL)) / PIXELS_PER_CELL);
    const top = Math.floor(Math.max(0, Math.min(y, H * PIXELS_PER_CELL)) / PIXELS_PER_CELL);
    const rh = Math.min(sh, H - top);
    const rw = Math.min(sw, W - left);
    const weights = mask ? repeatToBatch(interpolate(maskAsPlanes(mask, 'mask'), sw, sh, 'bilinear'), B) : undefined;
    const out = destination.samples.data.slice();
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        for (let r = 0; r < rh; r++) {
          const to = ((b * C + c) * H + top + r) * W + left;
          const from = ((b * C + c) * sh + r) * sw;
          const m0 = (b * sh + r) * sw;
          for (let k = 0; k < rw; k++) {
            const m = weights ? weights.data[m0 + k]! : 1;
            out[to + k] = m * src.data[from + k]! + Math.fround(1 - m) * out[to + k]!;
          }
        }
      }
    }
    return [withSamples(destination, { data: out, shape: [B, C, H, W] }, source.emptyImageSize !== undefined)];
  },
});
