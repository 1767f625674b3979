/**
 * VAE decode (LATENT -> IMAGE) and encode (IMAGE -> LATENT).
 *
 * LATENT: float [B, C, h, w] in the UNet's units (already multiplied by scaling_factor).
 * IMAGE:  float [B, H, W, 3] in 0..1, channels last, like ComfyUI's IMAGE. H = h * scaleFactor.
 * The ONNX VAE works on unscaled latents and on NCHW pixels in [-1, 1]; the conversions live here.
 */
import { fromOrtTensor } from './sessions.ts';
import type { Tensor } from './tensor.ts';
import type { DiffusionModel } from './model-folder.ts';

export interface VaeOptions {
  /** Images per ONNX run (default 1: the VAE's activations are the largest tensors of the pipeline). */
  batchSize?: number;
  /** Called after each chunk, for progress on large batches. */
  onProgress?: (done: number, total: number) => void;
}

export type VaeModel = Pick<DiffusionModel, 'dir' | 'vaeDecoder' | 'vaeEncoder'> & { io: Pick<DiffusionModel['io'], 'vae'> };

function chunkSize(options: VaeOptions, fixedBatch: number | undefined): number {
  const n = fixedBatch ?? options.batchSize ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`VAE batchSize must be a whole number >= 1 (got ${n})`);
  return n;
}

/** Decodes latents [B, C, h, w] to an IMAGE [B, h*f, w*f, 3] in 0..1. */
export async function decodeLatents(model: VaeModel, latent: Tensor, options: VaeOptions = {}): Promise<Tensor> {
  const io = model.io.vae;
  const [batch, channels, h, w] = latent.shape;
  if (latent.shape.length !== 4 || !batch || !channels || !h || !w) {
    throw new RangeError(`VAE decode: a LATENT is [batch, channels, height, width]; got [${latent.shape.join(', ')}]`);
  }
  if (channels !== io.latentChannels) {
    throw new RangeError(`VAE decode: the latent has ${channels} channels but this VAE (${model.dir}) decodes ${io.latentChannels}; was it made by another model?`);
  }
  if (io.fixedImageSize) {
    const [fh, fw] = io.fixedImageSize;
    if (h * io.scaleFactor !== fh || w * io.scaleFactor !== fw) {
      throw new RangeError(`VAE decode: this VAE decoder was exported for ${fw}x${fh} images (latents ${fw / io.scaleFactor}x${fh / io.scaleFactor}); got a ${w}x${h} latent (${w * io.scaleFactor}x${h * io.scaleFactor} px)`);
    }
  }
  const fixedBatch = model.vaeDecoder.input(io.decoderInput)?.shape[0];
  const per = typeof fixedBatch === 'number' ? chunkSize(options, fixedBatch) : chunkSize(options, undefined);
  const H = h * io.scaleFactor;
  const W = w * io.scaleFactor;
  const out = new Float32Array(batch * H * W * 3);
  const latentPer = channels * h * w;
  const inv = 1 / io.scalingFactor;
  for (let b0 = 0; b0 < batch; b0 += per) {
    const n = Math.min(per, batch - b0);
    const z = new Float32Array(n * latentPer);
    const src = latent.data.subarray(b0 * latentPer, (b0 + n) * latentPer);
    for (let i = 0; i < z.length; i++) z[i] = src[i]! * inv;
    const res = await model.vaeDecoder.run({ [io.decoderInput]: { data: z, shape: [n, channels, h, w] } }, [io.decoderOutput]);
    const img = fromOrtTensor(io.decoderOutput, res[io.decoderOutput]!);
    const [, c, ih, iw] = img.shape;
    if (c !== 3 || ih !== H || iw !== W) {
      throw new RangeError(`VAE decode: the decoder returned [${img.shape.join(', ')}], expected [${n}, 3, ${H}, ${W}] (is the VAE scale factor ${io.scaleFactor} right? see vae_decoder/config.json block_out_channels)`);
    }
    nchwToImage(img.data, n, H, W, out.subarray(b0 * H * W * 3));
    options.onProgress?.(b0 + n, batch);
  }
  return { data: out, shape: [batch, H, W, 3] };
}

/** [-1, 1] NCHW (3 channels) -> 0..1 NHWC, clamped. */
function nchwToImage(src: Float32Array, n: number, H: number, W: number, dst: Float32Array): void {
  const plane = H * W;
  for (let b = 0; b < n; b++) {
    const s = b * 3 * plane;
    const d = b * 3 * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const v = (src[s + c * plane + p]! + 1) * 0.5;
        dst[d + p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
}

/** Encodes an IMAGE [B, H, W, C>=3] (0..1) to latents [B, C_lat, H/f, W/f], multiplied by scaling_factor. */
export async function encodeImage(model: VaeModel, image: Tensor, options: VaeOptions = {}): Promise<Tensor> {
  const io = model.io.vae;
  const enc = model.vaeEncoder;
  if (!enc || !io.encoderInput || !io.encoderOutput) {
    throw new Error(`VAE encode: the model ${model.dir} has no vae_encoder/model.onnx, so it cannot encode images (img2img); add the encoder to the folder or use another model`);
  }
  const [batch, H, W, C] = image.shape;
  if (image.shape.length !== 4 || !batch || !H || !W || !C || C < 3) {
    throw new RangeError(`VAE encode: an IMAGE is [batch, height, width, 3 or 4 channels]; got [${image.shape.join(', ')}]`);
  }
  const f = io.scaleFactor;
  if (H % f !== 0 || W % f !== 0) {
    const fix = (v: number): number => Math.max(f, Math.floor(v / f) * f);
    throw new RangeError(`VAE encode: the image is ${W}x${H} but this VAE needs width and height divisible by ${f}; crop or resize it to ${fix(W)}x${fix(H)}`);
  }
  const fixed = enc.input(io.encoderInput)?.shape;
  if (fixed && typeof fixed[2] === 'number' && typeof fixed[3] === 'number' && (fixed[2] !== H || fixed[3] !== W)) {
    throw new RangeError(`VAE encode: this VAE encoder was exported for ${fixed[3]}x${fixed[2]} images; got ${W}x${H}`);
  }
  const per = chunkSize(options, typeof fixed?.[0] === 'number' ? fixed[0] : undefined);
  const h = H / f;
  const w = W / f;
  const lc = io.latentChannels;
  const out = new Float32Array(batch * lc * h * w);
  const plane = H * W;
  for (let b0 = 0; b0 < batch; b0 += per) {
    const n = Math.min(per, batch - b0);
    const x = new Float32Array(n * 3 * plane);
    for (let b = 0; b < n; b++) {
      const src = image.data.subarray((b0 + b) * plane * C, (b0 + b + 1) * plane * C);
      const base = b * 3 * plane;
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) x[base + c * plane + p] = src[p * C + c]! * 2 - 1;
    }
    const res = await enc.run({ [io.encoderInput]: { data: x, shape: [n, 3, H, W] } }, [io.encoderOutput]);
    const z = fromOrtTensor(io.encoderOutput, res[io.encoderOutput]!);
    // latent_parameters = concat(mean, logvar) on channels: the mean is the first half (what we keep)
    const zc = z.shape[1]!;
    const expected = io.encoderOutputKind === 'parameters' ? 2 * lc : lc;
    if (zc !== expected || z.shape[2] !== h || z.shape[3] !== w) {
      throw new RangeError(`VAE encode: the encoder returned ${io.encoderOutput} [${z.shape.join(', ')}], expected [${n}, ${expected}, ${h}, ${w}]`);
    }
    const latentPer = lc * h * w;
    for (let b = 0; b < n; b++) {
      const src = z.data.subarray(b * zc * h * w, b * zc * h * w + latentPer);
      const dst = out.subarray((b0 + b) * latentPer, (b0 + b + 1) * latentPer);
      for (let i = 0; i < latentPer; i++) dst[i] = src[i]! * io.scalingFactor;
    }
    options.onProgress?.(b0 + n, batch);
  }
  return { data: out, shape: [batch, lc, h, w] };
}
