/**
 * SDXL's conditioning, as ComfyUI makes it (comfy/sdxl_clip.py, SDXL.encode_adm in comfy/model_base.py) and as
 * diffusers' StableDiffusionXLPipeline does:
 *
 * - the prompt goes through both text encoders (CLIP-L and OpenCLIP bigG), each returning the raw output of its
 *   penultimate layer (no final layer norm); the two are concatenated per token (768 + 1280 = 2048 wide);
 * - the second encoder's projected pooled output (`text_embeds` of the first 77-token chunk) is the UNet's
 *   `text_embeds`;
 * - `time_ids` are six numbers: the original size (height, width), the crop's top-left (top, left) and the
 *   target size (height, width); the UNet embeds each with a 256-wide sinusoid.
 *
 * Long prompts, weights, clip skip and textual-inversion embeddings (a file's `clip_l` and `clip_g` tensors)
 * work per encoder as for SD-1.x (text-encoder.ts).
 */
import type { DiffusionModel, TextEncoderIo, UnetIo } from './model-folder.ts';
import type { Tensor } from './tensor.ts';
import { encodePrompt, type EncodedPrompt, type EncodeOptions, type TextEncoderModel } from './text-encoder.ts';

/** The size conditioning of one prompt (ComfyUI's CLIPTextEncodeSDXL widgets). */
export interface SdxlSizes {
  width: number;
  height: number;
  cropW: number;
  cropH: number;
  targetWidth: number;
  targetHeight: number;
}

/** One prompt's SDXL conditioning: the tokens' context and the UNet's added inputs. */
export interface SdxlEncodedPrompt extends EncodedPrompt {
  /** [1, P]: the second encoder's projected pooled output (the UNet's text_embeds). */
  pooled: Tensor;
}

export type SdxlTextModel = Pick<DiffusionModel, 'tokenizer' | 'textEncoder' | 'tokenizer2' | 'textEncoder2'> & {
  readonly io: { readonly text: TextEncoderIo; readonly text2?: TextEncoderIo; readonly unet?: Pick<UnetIo, 'sequenceLength'> };
};

/** True for a model with SDXL's two text encoders. */
export function isSdxlTextModel(model: Partial<SdxlTextModel>): model is SdxlTextModel {
  return model.textEncoder2 !== undefined && model.tokenizer2 !== undefined && model.io?.text2 !== undefined;
}

/**
 * Encodes `text` with both encoders (`textG` for the second one, ComfyUI's CLIPTextEncodeSDXL `text_g`; default
 * the same text) and joins them. The encoders must agree on the number of 77-token chunks; when the two texts
 * differ in length the shorter is padded with empty chunks, as ComfyUI pads its token lists.
 */
export async function encodeSdxlPrompt(model: SdxlTextModel, text: string, options: EncodeOptions & { textG?: string } = {}): Promise<SdxlEncodedPrompt> {
  const raw = { ...options, rawHiddenStates: true };
  const first: TextEncoderModel = { tokenizer: model.tokenizer, textEncoder: model.textEncoder, io: { text: model.io.text, ...(model.io.unet ? { unet: model.io.unet } : {}) } };
  const second: TextEncoderModel = { tokenizer: model.tokenizer2!, textEncoder: model.textEncoder2!, io: { text: model.io.text2!, ...(model.io.unet ? { unet: model.io.unet } : {}) } };
  // An embedding file made for SDXL holds a tensor per encoder: clip_l for the first, clip_g for the second.
  const l = await encodePrompt(first, text, { ...raw, embeddingKey: 'clip_l' });
  const g = await encodePrompt(second, options.textG ?? text, { ...raw, embeddingKey: 'clip_g' });
  if (!g.pooled) throw new Error('text_encoder_2 returned no pooled output (text_embeds): it is not SDXL\'s second text encoder');
  const chunks = Math.max(l.chunks, g.chunks);
  const L = model.io.text.sequenceLength;
  const dl = model.io.text.hiddenSize;
  const dg = model.io.text2!.hiddenSize;
  const [hl, hg] = await Promise.all([padChunks(first, l, chunks, raw), padChunks(second, g, chunks, raw)]);
  const width = dl + dg;
  const data = new Float32Array(chunks * L * width);
  for (let t = 0; t < chunks * L; t++) {
    data.set(hl.subarray(t * dl, (t + 1) * dl), t * width);
    data.set(hg.subarray(t * dg, (t + 1) * dg), t * width + dl);
  }
  const result: SdxlEncodedPrompt = {
    hiddenStates: { data, shape: [1, chunks * L, width] },
    pooled: g.pooled,
    ids: l.ids,
    chunks,
    warnings: [...new Set([...l.warnings, ...g.warnings])],
  };
  const truncated = l.truncated ?? g.truncated;
  if (truncated !== undefined) result.truncated = truncated;
  return result;
}

/** The hidden states of `encoded` grown to `chunks` chunks with the empty prompt's (ComfyUI's padding). */
async function padChunks(model: TextEncoderModel, encoded: EncodedPrompt, chunks: number, options: EncodeOptions): Promise<Float32Array> {
  if (encoded.chunks === chunks) return encoded.hiddenStates.data;
  const empty = await encodePrompt(model, '', options);
  const per = empty.hiddenStates.data.length;
  const data = new Float32Array(chunks * per);
  data.set(encoded.hiddenStates.data);
  for (let k = encoded.chunks; k < chunks; k++) data.set(empty.hiddenStates.data, k * per);
  return data;
}

/** `time_ids` [1, 6]: original height, width, crop top, left, target height, width (ComfyUI's and diffusers' order). */
export function sdxlTimeIds(sizes: SdxlSizes): Tensor {
  const { height, width, cropH, cropW, targetHeight, targetWidth } = sizes;
  return { data: Float32Array.from([height, width, cropH, cropW, targetHeight, targetWidth]), shape: [1, 6] };
}

/**
 * The refiner's `time_ids` [1, 5]: original height, width, crop top, left, and the aesthetic score (ComfyUI's
 * SDXLRefiner.encode_adm, diffusers' refiner pipeline).
 */
export function sdxlRefinerTimeIds(sizes: Pick<SdxlSizes, 'width' | 'height' | 'cropW' | 'cropH'>, aestheticScore: number): Tensor {
  return { data: Float32Array.from([sizes.height, sizes.width, sizes.cropH, sizes.cropW, aestheticScore]), shape: [1, 5] };
}

/** ComfyUI's default aesthetic scores of a refiner prompt without one: 6 for the positive, 2.5 for the negative. */
export const DEFAULT_AESTHETIC_SCORE = { positive: 6, negative: 2.5 } as const;

/** ComfyUI's defaults for a prompt encoded without sizes (CLIPTextEncode): the latent's size in pixels, no crop. */
export function defaultSdxlSizes(width: number, height: number): SdxlSizes {
  return { width, height, cropW: 0, cropH: 0, targetWidth: width, targetHeight: height };
}
