/**
 * Cheap sampling previews: latent -> RGB by one fixed linear map per model (the "latent2rgb" idea: each
 * pixel's colour is approximately an affine function of its latent cell's C values).
 *
 * The map is not a table of magic numbers: `fitLatentRgbMap` computes it for any model by least squares
 * against the model's own VAE decoder. It decodes a few latents, averages each decoded image over the
 * f x f pixel block of every latent cell, and solves the normal equations for [z_0 .. z_{C-1}, 1] -> RGB.
 * The latents are those of synthetic images (seeded rectangles of common colours on flat backgrounds, encoded by the
 * model's VAE encoder) when the model has an encoder, else draws from the latent prior N(0, 1). It costs 16
 * encodes and decodes of 64x64 images once per model (previewMapFor caches the map with the model).
 *
 * How good a linear map can be depends on the VAE. SD's latents are close to linear in colour (which is why
 * ComfyUI's latent2rgb previews work); tiny-sd's small VAE much less: on held-out images its fitted map is
 * closer to the decoded image than the images' mean colour, but not by much (mean abs error 0.15 vs 0.22): a
 * colour layout without detail. For such a model `decodePreview` (one real VAE decode, a few ms for tiny-sd)
 * is the better preview.
 */
import { createNoiseGenerator } from './noise.ts';
import type { RawImage } from './png.ts';
import type { Tensor } from './tensor.ts';
import { decodeLatents, encodeImage, type VaeModel } from './vae.ts';
import { imageToRgb8 } from './png.ts';
import { splitBatch } from './tensor.ts';

/** rgb[k] = bias[k] + sum_c weights[c][k] * z_c, in 0..1 units, for a scaled latent z (what the sampler holds). */
export interface LatentRgbMap {
  weights: number[][];
  bias: [number, number, number];
}

/** Renders item `index` of a latent [B, C, h, w] to an 8-bit RGB image at latent resolution (h x w). */
export function latentPreviewRgb(latent: Tensor, map: LatentRgbMap, index = 0): RawImage {
  const [batch, C, h, w] = latent.shape;
  if (latent.shape.length !== 4 || !batch || !C || !h || !w) throw new RangeError(`latentPreviewRgb: expected [B, C, h, w]; got [${latent.shape.join(', ')}]`);
  if (map.weights.length !== C) throw new RangeError(`latentPreviewRgb: the map is for ${map.weights.length} latent channels; the latent has ${C}`);
  if (!(index >= 0 && index < batch)) throw new RangeError(`latentPreviewRgb: batch index ${index} is outside 0..${batch - 1}`);
  const plane = h * w;
  const src = latent.data.subarray(index * C * plane, (index + 1) * C * plane);
  const data = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < 3; k++) {
      let v: number = map.bias[k]!;
      for (let c = 0; c < C; c++) v += map.weights[c]![k]! * src[c * plane + p]!;
      const b = Math.round(v * 255);
      data[p * 3 + k] = b < 0 ? 0 : b > 255 ? 255 : b;
    }
  }
  return { width: w, height: h, channels: 3, data };
}

/** Solves A x = b (n x n, row-major, in place) by Gaussian elimination with partial pivoting. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(A[r * n + col]!) > Math.abs(A[piv * n + col]!)) piv = r;
    if (Math.abs(A[piv * n + col]!) < 1e-12) throw new Error('fitLatentRgbMap: the latents are degenerate (singular normal equations)');
    if (piv !== col) {
      for (let k = 0; k < n; k++) [A[col * n + k], A[piv * n + k]] = [A[piv * n + k]!, A[col * n + k]!];
      [b[col], b[piv]] = [b[piv]!, b[col]!];
    }
    for (let r = col + 1; r < n; r++) {
      const f = A[r * n + col]! / A[col * n + col]!;
      for (let k = col; k < n; k++) A[r * n + k] = A[r * n + k]! - f * A[col * n + k]!;
      b[r] = b[r]! - f * b[col]!;
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let k = r + 1; k < n; k++) s -= A[r * n + k]! * x[k]!;
    x[r] = s / A[r * n + r]!;
  }
  return x;
}

/** Least-squares fit of the map from latents [B, C, h, w] and their decoded images [B, h*f, w*f, 3]. */
export function fitLatentRgbMapFrom(latents: Tensor, images: Tensor, scaleFactor: number): LatentRgbMap {
  const [B, C, h, w] = latents.shape as [number, number, number, number];
  const f = scaleFactor;
  const W = w * f;
  const n = C + 1;
  const ata = new Float64Array(n * n);
  const atb = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const feat = new Float64Array(n);
  const plane = h * w;
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = y * w + x;
        for (let c = 0; c < C; c++) feat[c] = latents.data[(b * C + c) * plane + p]!;
        feat[C] = 1;
        const rgb = [0, 0, 0];
        for (let dy = 0; dy < f; dy++) {
          for (let dx = 0; dx < f; dx++) {
            const o = ((b * h * f + y * f + dy) * W + x * f + dx) * 3;
            for (let k = 0; k < 3; k++) rgb[k]! += images.data[o + k]!;
          }
        }
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) ata[i * n + j] = ata[i * n + j]! + feat[i]! * feat[j]!;
          for (let k = 0; k < 3; k++) atb[k]![i] = atb[k]![i]! + feat[i]! * (rgb[k]! / (f * f));
        }
      }
    }
  }
  const sol = atb.map((rhs) => solve(ata.slice(), rhs.slice(), n));
  return {
    weights: Array.from({ length: C }, (_, c) => [sol[0]![c]!, sol[1]![c]!, sol[2]![c]!]),
    bias: [sol[0]![C]!, sol[1]![C]!, sol[2]![C]!],
  };
}

/**
 * Saturated and neutral colours of everyday pictures: the fit images are drawn from these rather than from
 * arbitrary RGB values, so that their latents stay in the range a VAE was trained on (a VAE trained on flat
 * shapes, like tiny-sd's, encodes off-palette colours poorly).
 */
const FIT_BACKGROUNDS: readonly (readonly number[])[] = [[255, 255, 255], [0, 0, 0], [128, 128, 128], [120, 75, 45]];
const FIT_COLOURS: readonly (readonly number[])[] = [
  [230, 30, 30], [255, 140, 0], [250, 230, 20], [30, 170, 50], [30, 70, 230], [150, 40, 200], [40, 200, 220], [240, 120, 180],
];

/** Seeded synthetic images: neutral flat backgrounds with three coloured rectangles, IMAGE [count, H, W, 3] in 0..1. */
export function syntheticFitImages(count: number, height: number, width: number, seed = 1): Tensor {
  const rng = createNoiseGenerator(seed, 'philox');
  const u = (): number => 0.5 * (1 + Math.tanh(rng.randn([1]).data[0]!)); // squashed normal in (0, 1)
  const pick = (list: readonly (readonly number[])[]): number[] => list[Math.min(list.length - 1, Math.floor(u() * list.length))]!.map((v) => v / 255);
  const data = new Float32Array(count * height * width * 3);
  for (let b = 0; b < count; b++) {
    const base = b * height * width * 3;
    const bg = pick(FIT_BACKGROUNDS);
    for (let p = 0; p < height * width; p++) for (let k = 0; k < 3; k++) data[base + p * 3 + k] = bg[k]!;
    for (let r = 0; r < 3; r++) {
      const col = pick(FIT_COLOURS);
      const x0 = Math.floor(u() * width * 0.7), y0 = Math.floor(u() * height * 0.7);
      const x1 = Math.min(width, x0 + Math.ceil(width / 8) + Math.floor(u() * width * 0.15));
      const y1 = Math.min(height, y0 + Math.ceil(height / 8) + Math.floor(u() * height * 0.15));
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) for (let k = 0; k < 3; k++) data[base + (y * width + x) * 3 + k] = col[k]!;
    }
  }
  return { data, shape: [count, height, width, 3] };
}

/** Fits the preview map of a model against its own VAE (see the module comment). */
export async function fitLatentRgbMap(model: VaeModel, options: { count?: number; seed?: number } = {}): Promise<LatentRgbMap> {
  const io = model.io.vae;
  const count = options.count ?? 16;
  const [H, W] = io.fixedImageSize ?? [64, 64];
  let latents: Tensor;
  if (model.vaeEncoder) {
    latents = await encodeImage(model, syntheticFitImages(count, H, W, options.seed ?? 1));
  } else {
    latents = createNoiseGenerator(options.seed ?? 1, 'philox').randn([count, io.latentChannels, H / io.scaleFactor, W / io.scaleFactor]);
  }
  const images = await decodeLatents(model, latents);
  return fitLatentRgbMapFrom(latents, images, io.scaleFactor);
}

const maps = new WeakMap<object, Promise<LatentRgbMap>>();

/** The model's preview map, fitted on first use and cached for the model object's lifetime. */
export function previewMapFor(model: VaeModel): Promise<LatentRgbMap> {
  let m = maps.get(model);
  if (!m) {
    m = fitLatentRgbMap(model);
    maps.set(model, m);
    m.catch(() => maps.delete(model));
  }
  return m;
}

/** The exact preview: item `index` of a latent decoded by the model's VAE, as 8-bit RGB at full size. */
export async function decodePreview(model: VaeModel, latent: Tensor, index = 0): Promise<RawImage> {
  const batch = latent.shape[0] ?? 0;
  if (!(index >= 0 && index < batch)) throw new RangeError(`decodePreview: batch index ${index} is outside 0..${batch - 1}`);
  const one = splitBatch(latent, batch)[index]!;
  return imageToRgb8(await decodeLatents(model, one))[0]!;
}
