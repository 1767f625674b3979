/**
 * What a single .safetensors file is, told from its header (tensor names, dtypes and shapes) as ComfyUI tells it
 * (comfy/model_detection.py, comfy/supported_models.py, comfy/sd.py's VAE): a Stable Diffusion 1.x / 2.x
 * checkpoint (epsilon or v-prediction, inpainting, which of UNet / VAE / text encoder it holds), a bare UNet, a
 * standalone VAE, a LoRA, a textual-inversion embedding, or a standalone text encoder. Every other architecture
 * ComfyUI tells apart by a few keys (SDXL and its refiner, SD3, Flux, Stable Cascade, SVD, PixArt, Hunyuan,
 * AuraFlow, ...) is refused with an UnsupportedCheckpointError naming it; pickles (.ckpt, .pt, .pth, .bin) are
 * refused by pickle-files.ts before anything is read.
 *
 * Only one tensor's values are ever read, where ComfyUI reads one: SD-2.x's v-prediction rule, the spread
 * (population standard deviation) of `output_blocks.11.1.transformer_blocks.0.norm1.bias` above 0.09 (only for
 * 4-channel UNets: SD-2 inpainting models are epsilon). A LoRA's alpha values are read for its description.
 *
 * SD-1.x and SD-2.x are told apart by structure, not width, so the narrow CI checkpoints are detected like the
 * published ones: SD-1.x has convolution proj_in / proj_out in its transformers and CLIP ViT-L/14 in transformers'
 * naming (`cond_stage_model.transformer.`); SD-2.x has linear ones (use_linear_in_transformer) and OpenCLIP
 * (`cond_stage_model.model.`). The published widths (768 / 1024) name the family of LoRAs, embeddings and text
 * encoders, which carry no UNet.
 */
import {
  Header,
  describeEmbedding,
  describeLora,
  findTextEncoders,
  findVaes,
  type EmbeddingInfo,
  type Float32Reader,
  type LoraInfo,
  type TensorHeaderEntry,
  type TextEncoderInfo,
  type VaeInfo,
} from './checkpoint-parts.ts';
import { statSync } from 'node:fs';
import { UnsupportedModelError, type UnsupportedKind } from './unsupported-model.ts';
import { PickleFileError, assertNotPickle } from './pickle-files.ts';
import { SafetensorsError, SafetensorsFile } from './safetensors.ts';

/** SD-1.x, SD-2.x, SDXL (base and its distillations), SDXL's refiner. */
export type SdFamily = 'sd1' | 'sd2' | 'sdxl' | 'sdxl-refiner';
/** As diffusers' schedulers name it (`prediction_type`). */
export type SdPrediction = 'epsilon' | 'v_prediction';

/** ComfyUI's SD-2 v-prediction threshold on the spread of output_blocks.11.1.transformer_blocks.0.norm1.bias. */
export const V_PREDICTION_STD_THRESHOLD = 0.09;
/** The tensor (under the UNet's prefix) whose spread tells SD-2 v-prediction from epsilon. */
export const V_PREDICTION_KEY = 'output_blocks.11.1.transformer_blocks.0.norm1.bias';

/** An SD-1.x / 2.x UNet in the LDM layout (`input_blocks.N`, `middle_block`, `output_blocks.N`, `out`). */
export interface SdUnetInfo {
  /** 'model.diffusion_model.' in a checkpoint, '' in a bare UNet file. */
  readonly prefix: string;
  readonly family: SdFamily;
  readonly prediction: SdPrediction;
  /** The spread of V_PREDICTION_KEY when it was read (SD-2, 4 input channels), else null. */
  readonly vStatistic: number | null;
  /** 9 input channels (latent, mask, masked-image latent). */
  readonly inpainting: boolean;
  readonly inChannels: number;
  readonly outChannels: number;
  /** Width of the first level (320 in the published models). */
  readonly modelChannels: number;
  /** Width of the text the cross-attention takes (768 SD-1.x, 1024 SD-2.x): attn2.to_k's input dimension. */
  readonly contextDim: number | null;
  /** Linear proj_in / proj_out in the transformers (SD-2.x) rather than 1x1 convolutions (SD-1.x). */
  readonly linearProjections: boolean;
  readonly parameters: number;
  /** The dtype holding most of the UNet's elements ('F32', 'F16', 'BF16'). */
  readonly dtype: string | undefined;
  /** SDXL-type UNets: what it is ('an SDXL model', 'an SDXL refiner', 'SSD-1B (a distilled SDXL)', ...). */
  readonly variant?: string;
}

interface FileBase {
  readonly path: string;
  /** The header's `__metadata__`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Number of tensors. */
  readonly tensors: number;
}

/**
 * A file with an SD-1.x / 2.x UNet: 'checkpoint' (the UNet under `model.diffusion_model.`, usually with its VAE
 * and text encoder: ComfyUI's models/checkpoints) or 'unet' (the UNet's keys alone: models/unet).
 */
export interface SdModelFileInfo extends FileBase {
  readonly kind: 'checkpoint' | 'unet';
  readonly family: SdFamily;
  readonly prediction: SdPrediction;
  readonly inpainting: boolean;
  readonly components: { readonly unet: true; readonly vae: boolean; readonly textEncoder: boolean };
  readonly unet: SdUnetInfo;
  /** `cond_stage_model.*` (or SGM's `conditioner.embedders.0.*`: SDXL's CLIP ViT-L/14, the refiner's bigG), null when absent. */
  readonly textEncoder: TextEncoderInfo | null;
  /** SDXL's OpenCLIP ViT-bigG/14 at `conditioner.embedders.1.model.`; null for other families. */
  readonly textEncoder2: TextEncoderInfo | null;
  /** `first_stage_model.*`, null when absent. */
  readonly vae: VaeInfo | null;
}

/** A standalone VAE (ComfyUI's models/vae): SD's AutoencoderKL, 4 latent channels, 8x downscale. */
export interface VaeFileInfo extends FileBase {
  readonly kind: 'vae';
  readonly vae: VaeInfo;
}

export interface LoraFileInfo extends FileBase {
  readonly kind: 'lora';
  readonly lora: LoraInfo;
  /** The family it was trained for, from kohya's metadata or the published widths; null when neither says. */
  readonly family: SdFamily | null;
}

export interface EmbeddingFileInfo extends FileBase {
  readonly kind: 'embedding';
  readonly embedding: EmbeddingInfo;
  /** 768-wide vectors are SD-1.x's, 1024-wide SD-2.x's, clip_g / clip_l pairs SDXL's; null for other widths. */
  readonly family: SdFamily | null;
}

export interface TextEncoderFileInfo extends FileBase {
  readonly kind: 'text-encoder';
  readonly textEncoders: TextEncoderInfo[];
  /** CLIP ViT-L/14 is SD-1.x's (and SDXL's first), OpenCLIP ViT-H/14 SD-2.x's, OpenCLIP ViT-bigG/14 SDXL's second ('sdxl'). */
  readonly family: SdFamily | null;
}

export type SingleFileInfo = SdModelFileInfo | VaeFileInfo | LoraFileInfo | EmbeddingFileInfo | TextEncoderFileInfo;
export type SingleFileKind = SingleFileInfo['kind'];

/**
 * Why a file is refused. Architectures: 'sdxl' (SDXL and its distillations, Playground v2.5, inpainting /
 * InstructPix2Pix variants), 'sdxl-refiner', 'sd3', 'flux' (Flux.1, Flux 2, Chroma), 'stable-cascade', 'svd'
 * (Stable Video Diffusion, SV3D), 'sd2-unclip', 'sd-x4-upscaler', 'zero123', 'instruct-pix2pix', 'lotus',
 * 'pixart', 'hunyuan-dit', 'hunyuan-video', 'hunyuan3d', 'auraflow', 'stable-audio', 'mochi', 'ltxv', 'ace-step',
 * 'cosmos', 'lumina2', 'wan', 'hidream', 'omnigen2', 'qwen-image', 'kandinsky5', 'controlnet'. Files:
 * 'diffusers-layout' (a UNet or transformer in diffusers' names), 'other-vae' (a VAE that is not SD's),
 * 'other-text-encoder', 'unknown-unet' (an LDM UNet of no known variant), 'inconsistent' (parts of different
 * families), 'unknown' (nothing recognised), 'empty', 'damaged' (not a readable safetensors file). For the
 * loaders: 'wrong-kind' (a LoRA where a checkpoint belongs, ...), 'incomplete' (a checkpoint without its text
 * encoder or VAE). PickleFileError's code is 'pickle'.
 */
export type CheckpointRefusalCode =
  | 'sdxl' | 'sdxl-refiner' | 'sd3' | 'flux' | 'stable-cascade' | 'svd' | 'sd2-unclip' | 'sd-x4-upscaler' | 'zero123'
  | 'instruct-pix2pix' | 'lotus' | 'pixart' | 'hunyuan-dit' | 'hunyuan-video' | 'hunyuan3d' | 'auraflow'
  | 'stable-audio' | 'mochi' | 'ltxv' | 'ace-step' | 'cosmos' | 'lumina2' | 'wan' | 'hidream' | 'omnigen2'
  | 'qwen-image' | 'kandinsky5' | 'controlnet'
  | 'diffusers-layout' | 'other-vae' | 'other-text-encoder' | 'unknown-unet' | 'inconsistent' | 'unknown' | 'empty'
  | 'damaged' | 'wrong-kind' | 'incomplete';

/** A single file gategraph does not run; `code` says why, the message names the file and what it is. */
export class UnsupportedCheckpointError extends UnsupportedModelError {
  override name = 'UnsupportedCheckpointError';
  constructor(
    path: string,
    readonly code: CheckpointRefusalCode,
    reason: string,
  ) {
    super(path, kindOf(code), reason);
  }
}

/** Every refusal of a single file carries a code: UnsupportedCheckpointError's, or 'pickle'. */
export type SingleFileRefusal = UnsupportedCheckpointError | PickleFileError;

function kindOf(code: CheckpointRefusalCode): UnsupportedKind {
  switch (code) {
    case 'sdxl':
    case 'sdxl-refiner':
      return 'sdxl';
    case 'sd3':
    case 'flux':
    case 'pixart':
      return code;
    case 'auraflow':
    case 'hunyuan-dit':
    case 'hunyuan-video':
    case 'hunyuan3d':
    case 'stable-audio':
    case 'mochi':
    case 'ltxv':
    case 'ace-step':
    case 'cosmos':
    case 'lumina2':
    case 'wan':
    case 'hidream':
    case 'omnigen2':
    case 'qwen-image':
    case 'kandinsky5':
      return 'transformer';
    default:
      return 'single-file';
  }
}

/** The end of every architecture refusal. */
const RUNS = 'gategraph runs Stable Diffusion 1.x, 2.x and SDXL single-file checkpoints';
/** The end of every LoRA refusal. */
const LORAS = 'gategraph applies LoRAs to Stable Diffusion 1.x and 2.x single-file checkpoints';

const FAMILY_NAMES: Record<SdFamily, string> = { sd1: 'SD-1.x', sd2: 'SD-2.x', sdxl: 'SDXL', 'sdxl-refiner': 'SDXL refiner' };

/** Where each family keeps its text encoders in a single file (for messages). */
const TEXT_ENCODER_PLACES: Record<SdFamily, string> = {
  sd1: 'cond_stage_model.*',
  sd2: 'cond_stage_model.*',
  sdxl: 'conditioner.embedders.0/1.*',
  'sdxl-refiner': 'conditioner.embedders.0.*',
};

// ---------------------------------------------------------------------------------------------------------------
// Entry points

/**
 * What the file at `path` is. Pickles are refused unopened (PickleFileError); the header is read and checked
 * (a damaged file is UnsupportedCheckpointError 'damaged' with the reader's reason); at most one UNet bias and a
 * LoRA's alphas are read. Throws UnsupportedCheckpointError for files gategraph does not run.
 */
export function describeSingleFile(path: string): SingleFileInfo {
  // Validation asks for every prompt and the loader again when it runs: a file read once is answered from memory
  // (its answer or its refusal) until it changes, as readDeclaredIo answers for ONNX files.
  let identity: string | undefined;
  try {
    const st = statSync(path);
    identity = `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    // not readable: reading it says so
  }
  const known = identity !== undefined ? described.get(path) : undefined;
  if (known && known.identity === identity) {
    if ('error' in known) throw known.error;
    return structuredClone(known.info);
  }
  let result: { info: SingleFileInfo } | { error: unknown };
  try {
    result = { info: readSingleFile(path) };
  } catch (error) {
    if (!(error instanceof UnsupportedModelError)) throw error; // I/O errors are not remembered
    result = { error };
  }
  if (identity !== undefined) {
    described.delete(path);
    described.set(path, { identity, ...result });
    if (described.size > DESCRIBED_ENTRIES) described.delete(described.keys().next().value as string);
  }
  if ('error' in result) throw result.error;
  return structuredClone(result.info);
}

/** Files recently described, by path, with their size/mtime/inode when read. */
const described = new Map<string, { identity: string } & ({ info: SingleFileInfo } | { error: unknown })>();
const DESCRIBED_ENTRIES = 64;

function readSingleFile(path: string): SingleFileInfo {
  assertNotPickle(path);
  try {
    const file = SafetensorsFile.open(path);
    return describeHeader(file.tensors(), {
      path,
      metadata: file.metadata,
      read: (names) => file.readFloat32Many(names).map((t) => t.data),
    });
  } catch (err) {
    // The header's checks, or a tensor read cut short (the file changed since it was opened).
    if (err instanceof SafetensorsError) throw new UnsupportedCheckpointError(path, 'damaged', `this is not a readable safetensors file: ${err.problem}`);
    throw err;
  }
}

export interface DescribeOptions {
  /** The file's path, for messages and the result. */
  path: string;
  metadata?: Readonly<Record<string, string>>;
  /** Reads tensors as float32 (the v-prediction bias, LoRA alphas); without it, SD-2 is taken as epsilon. */
  read?: Float32Reader;
}

/** describeSingleFile on a header already read (names, dtypes, shapes): the same answers and refusals. */
export function describeHeader(entries: readonly TensorHeaderEntry[], options: DescribeOptions): SingleFileInfo {
  const { path } = options;
  const base: FileBase = { path, metadata: options.metadata ?? {}, tensors: entries.length };
  const h = new Header(entries);
  const refuse = (code: CheckpointRefusalCode, reason: string) => new UnsupportedCheckpointError(path, code, reason);
  if (h.size === 0) throw refuse('empty', 'this safetensors file holds no tensors');

  const embedding = describeEmbedding(h);
  if (embedding) return embeddingFile(base, embedding, refuse);

  const lora = describeLora(h, options.read);
  if (lora) return loraFile(base, lora, refuse);

  const architecture = findArchitecture(h);
  if (architecture) throw refuse(architecture.code, `this is ${architecture.what}: ${RUNS}; ${architecture.short} is not supported`);

  const unetPrefix = h.has('model.diffusion_model.input_blocks.0.0.weight') ? 'model.diffusion_model.' : h.has('input_blocks.0.0.weight') ? '' : undefined;
  if (unetPrefix !== undefined) return sdModelFile(base, h, unetPrefix, options.read, refuse);

  const vaes = findVaes(h).filter((v) => v.prefix === '' || v.prefix === 'first_stage_model.');
  const otherVae = otherVaeKind(h);
  if (otherVae) throw refuse('other-vae', `this is ${otherVae}: ${RUNS} and their VAE (AutoencoderKL with 4 latent channels)`);
  if (vaes.length) return vaeFile(base, h, vaes[0]!, refuse);

  const encoders = findTextEncoders(h);
  if (encoders.length) return textEncoderFile(base, encoders, refuse);

  const sample = h.sorted.slice(0, 3).map((k) => `"${k}"`).join(', ');
  throw refuse(
    'unknown',
    `none of its ${h.size} tensors (${sample}${h.size > 3 ? ', ...' : ''}) is a Stable Diffusion UNet, VAE, text encoder, LoRA or embedding, nor a model family ComfyUI detects: ${RUNS}`,
  );
}

/** A checkpoint's family for CheckpointLoaderSimple, or the one-sentence refusal (never throws for the file's content). */
export type DetectedCheckpoint =
  | { readonly family: { readonly text: SdFamily; readonly prediction: SdPrediction }; readonly info: SdModelFileInfo }
  | { readonly refusal: string; readonly error: SingleFileRefusal };

/**
 * For models/checkpoints: an SD-1.x / 2.x checkpoint with its UNet, text encoder and VAE, or a refusal saying what
 * the file is instead (a LoRA, a VAE, another family, a pickle, a damaged file, ...). A file that cannot be opened
 * at all (missing, no permission) throws Node's error.
 */
export function detectCheckpoint(path: string): DetectedCheckpoint {
  return detect(path, (info) => {
    if (info.kind !== 'checkpoint' && info.kind !== 'unet') throw wrongKind(info, 'a checkpoint', 'models/checkpoints');
    const missing = [info.components.textEncoder ? '' : 'text encoder', info.components.vae ? '' : 'VAE'].filter(Boolean);
    if (info.kind === 'unet' || missing.length) {
      throw new UnsupportedCheckpointError(
        path,
        'incomplete',
        `this ${FAMILY_NAMES[info.family]} file holds a UNet without ${info.kind === 'unet' ? 'a text encoder or a VAE' : `its ${missing.join(' or its ')}`}: ` +
          `CheckpointLoaderSimple takes single-file checkpoints holding all three (model.diffusion_model.*, ${TEXT_ENCODER_PLACES[info.family]}, first_stage_model.*)`,
      );
    }
    return { family: { text: info.family, prediction: info.prediction }, info };
  });
}

/** For models/vae: SD's VAE (LDM keys, with or without `first_stage_model.`), or a refusal saying what the file is. */
export function detectVaeFile(path: string): { readonly vae: VaeFileInfo } | { readonly refusal: string; readonly error: SingleFileRefusal } {
  return detect(path, (info) => {
    if (info.kind !== 'vae') throw wrongKind(info, 'a VAE', 'models/vae');
    return { vae: info };
  });
}

/**
 * For models/text_encoders (ComfyUI's CLIPLoader, type stable_diffusion): one CLIP text encoder and the family it
 * serves: CLIP ViT-L/14 (SD-1.x) or OpenCLIP ViT-H/14 (SD-2.x), told by width, or for other widths by layout and
 * depth as ComfyUI tells them (an HF-layout encoder with a 23rd layer is SD-2.x's); else a refusal.
 */
export function detectTextEncoderFile(path: string): { readonly family: 'sd1' | 'sd2'; readonly info: TextEncoderFileInfo } | { readonly refusal: string; readonly error: SingleFileRefusal } {
  return detect(path, (info) => {
    if (info.kind !== 'text-encoder') throw wrongKind(info, 'a text encoder', 'models/text_encoders');
    const e = info.textEncoders[0]!;
    if (info.family === 'sdxl' || info.family === 'sdxl-refiner') {
      throw new UnsupportedCheckpointError(path, 'other-text-encoder', `this is ${e.name} (${e.layers} layers), SDXL's second text encoder: load it with DualCLIPLoader (type sdxl) beside a CLIP ViT-L/14 file`);
    }
    return { family: info.family ?? 'sd1', info };
  });
}

/**
 * For DualCLIPLoader (type sdxl): which of SDXL's encoders a text encoder file is, 'l' (CLIP ViT-L/14) or 'g'
 * (OpenCLIP ViT-bigG/14, with the text_projection SDXL's pooled conditioning needs), or a refusal.
 */
export function detectSdxlTextEncoderFile(path: string): { readonly role: 'l' | 'g'; readonly info: TextEncoderFileInfo } | { readonly refusal: string; readonly error: SingleFileRefusal } {
  return detect(path, (info) => {
    if (info.kind !== 'text-encoder') throw wrongKind(info, 'a text encoder', 'models/text_encoders');
    const e = info.textEncoders[0]!;
    if (info.family === 'sdxl') {
      if (e.projection === null) throw new UnsupportedCheckpointError(path, 'other-text-encoder', `this is ${e.name} without its text_projection, which SDXL's pooled conditioning needs`);
      return { role: 'g', info };
    }
    if (info.family === 'sd2') throw new UnsupportedCheckpointError(path, 'other-text-encoder', `this is ${e.name} (${e.layers} layers), SD-2.x's text encoder, not one of SDXL's (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14)`);
    return { role: 'l', info };
  });
}

/** For models/loras: a LoRA for SD-1.x / 2.x (or of unknown family), or a refusal saying what the file is. */
export function detectLora(path: string): { readonly lora: LoraFileInfo } | { readonly refusal: string; readonly error: SingleFileRefusal } {
  return detect(path, (info) => {
    if (info.kind !== 'lora') throw wrongKind(info, 'a LoRA', 'models/loras');
    return { lora: info };
  });
}

function detect<T>(path: string, accept: (info: SingleFileInfo) => T): T | { readonly refusal: string; readonly error: SingleFileRefusal } {
  try {
    return accept(describeSingleFile(path));
  } catch (err) {
    if (err instanceof UnsupportedCheckpointError || err instanceof PickleFileError) return { refusal: err.message, error: err };
    throw err;
  }
}

const KIND_NAMES: Record<SingleFileKind, [what: string, where: string]> = {
  checkpoint: ['a checkpoint', 'it belongs in models/checkpoints (CheckpointLoaderSimple)'],
  unet: ['a bare UNet (no text encoder, no VAE)', 'ComfyUI keeps these in models/unet'],
  vae: ['a standalone VAE', 'it belongs in models/vae (VAELoader)'],
  lora: ['a LoRA', 'it belongs in models/loras (LoraLoader)'],
  embedding: ['a textual-inversion embedding', 'it belongs in models/embeddings (write embedding:NAME in a prompt)'],
  'text-encoder': ['a standalone text encoder', 'it belongs in models/text_encoders (CLIPLoader)'],
};

function wrongKind(info: SingleFileInfo, wanted: string, folder: string): UnsupportedCheckpointError {
  const [what, where] = KIND_NAMES[info.kind];
  const family = 'family' in info && info.family ? ` for ${FAMILY_NAMES[info.family]}` : '';
  return new UnsupportedCheckpointError(info.path, 'wrong-kind', `this is ${what}${family}, not ${wanted} for ${folder}: ${where}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Architectures told apart by a key (comfy/model_detection.py's detect_unet_config, in its order)

interface Architecture {
  readonly code: CheckpointRefusalCode;
  /** "a Flux.1 model (a rectified-flow transformer)": completes "this is ...". */
  readonly what: string;
  /** "Flux": completes "...; X is not supported". */
  readonly short: string;
}

type Probe = (has: (key: string) => boolean, h: Header, p: string) => Architecture | undefined;

const arch = (code: CheckpointRefusalCode, what: string, short: string): Architecture => ({ code, what, short });

/** Key probes relative to a UNet / transformer prefix, in ComfyUI's order. */
const PROBES: Probe[] = [
  (has) => (has('joint_blocks.0.context_block.attn.qkv.weight') ? arch('sd3', 'a Stable Diffusion 3 / 3.5 model (an MMDiT transformer with joint_blocks, three text encoders, a 16-channel VAE)', 'SD3') : undefined),
  (has) =>
    has('clf.1.weight')
      ? arch('stable-cascade', `a Stable Cascade stage ${has('clip_txt_mapper.weight') ? 'C' : 'B'} model (Würstchen's three-stage cascade)`, 'Stable Cascade')
      : undefined,
  (has) => (has('transformer.rotary_pos_emb.inv_freq') ? arch('stable-audio', 'a Stable Audio model (an audio diffusion transformer)', 'audio generation') : undefined),
  (has) => (has('double_layers.0.attn.w1q.weight') ? arch('auraflow', 'an AuraFlow model (a flow transformer with a T5-class text encoder)', 'AuraFlow') : undefined),
  (has) => (has('mlp_t5.0.weight') ? arch('hunyuan-dit', 'a Hunyuan-DiT model (a diffusion transformer with CLIP and mT5 text encoders)', 'Hunyuan-DiT') : undefined),
  (has) => (has('txt_in.individual_token_refiner.blocks.0.norm1.weight') ? arch('hunyuan-video', 'a HunyuanVideo model (a video diffusion transformer)', 'video generation') : undefined),
  (has) => {
    if (!has('double_blocks.0.img_attn.norm.key_norm.scale') || !(has('img_in.weight') || has('distilled_guidance_layer.norms.0.scale') || has('distilled_guidance_layer.0.norms.0.scale'))) return undefined;
    const variant = has('double_stream_modulation_img.lin.weight')
      ? 'a Flux 2 model'
      : has('distilled_guidance_layer.norms.0.scale') || has('distilled_guidance_layer.0.norms.0.scale')
        ? 'a Chroma model (Flux architecture)'
        : has('guidance_in.in_layer.weight')
          ? 'a Flux.1 model (guidance-distilled, as Flux.1-dev)'
          : 'a Flux.1 model (without guidance input, as Flux.1-schnell)';
    return arch('flux', `${variant} (a rectified-flow transformer with double_blocks and single_blocks, T5 and CLIP text encoders, a 16-channel VAE)`, 'Flux');
  },
  (has) => (has('t5_yproj.weight') ? arch('mochi', 'a Genmo Mochi model (a video diffusion transformer)', 'video generation') : undefined),
  (has) =>
    has('adaln_single.emb.timestep_embedder.linear_1.bias')
      ? has('pos_embed.proj.bias')
        ? arch('pixart', 'a PixArt model in diffusers\' layout (a diffusion transformer with a T5 text encoder)', 'PixArt')
        : arch('ltxv', 'an LTX-Video model (a video diffusion transformer)', 'video generation')
      : undefined,
  (has) => (has('genre_embedder.weight') ? arch('ace-step', 'an ACE-Step model (music generation)', 'audio generation') : undefined),
  (has) => (has('t_block.1.weight') ? arch('pixart', `a PixArt-${has('ar_embedder.mlp.0.weight') ? 'α' : 'Σ'} model (a diffusion transformer with a T5 text encoder)`, 'PixArt') : undefined),
  (has) => (has('blocks.block0.blocks.0.block.attn.to_q.0.weight') ? arch('cosmos', 'an NVIDIA Cosmos model (a video world model)', 'Cosmos') : undefined),
  (has, h, p) =>
    has('cap_embedder.1.weight')
      ? h.dim(`${p}cap_embedder.1.weight`, 0) === 3840
        ? arch('lumina2', 'a Z-Image model (a Lumina-2-style single-stream transformer)', 'Z-Image')
        : arch('lumina2', 'a Lumina Image 2 model (a diffusion transformer with a Gemma text encoder)', 'Lumina 2')
      : undefined,
  (has) => (has('head.modulation') ? arch('wan', 'a Wan 2.x model (a video diffusion transformer)', 'video generation') : undefined),
  (has) => (has('latent_in.weight') || has('t_embedder.mlp.2.weight') ? arch('hunyuan3d', 'a Hunyuan3D model (3D shape generation)', '3D generation') : undefined),
  (has) => (has('caption_projection.0.linear.weight') ? arch('hidream', 'a HiDream model (a sparse diffusion transformer)', 'HiDream') : undefined),
  (has) => (has('blocks.0.mlp.layer1.weight') ? arch('cosmos', 'an NVIDIA Cosmos Predict2 model', 'Cosmos') : undefined),
  (has) => (has('time_caption_embed.timestep_embedder.linear_1.bias') ? arch('omnigen2', 'an OmniGen2 model', 'OmniGen2') : undefined),
  (has) => (has('txt_norm.weight') && has('img_in.weight') ? arch('qwen-image', 'a Qwen-Image model (an MMDiT with a Qwen2.5-VL text encoder)', 'Qwen-Image') : undefined),
  (has) => (has('visual_transformer_blocks.0.cross_attention.key_norm.weight') ? arch('kandinsky5', 'a Kandinsky 5 model', 'Kandinsky 5') : undefined),
];

/** Where ComfyUI looks for a diffusion model's keys (unet_prefix_from_state_dict's candidates, then bare files). */
const MODEL_PREFIXES = ['model.diffusion_model.', 'model.model.', 'net.', 'model.', ''];

function findArchitecture(h: Header): Architecture | undefined {
  for (const p of MODEL_PREFIXES) {
    if (p && !h.hasPrefix(p)) continue;
    const has = (key: string) => h.has(p + key);
    for (const probe of PROBES) {
      const found = probe(has, h, p);
      if (found) return found;
    }
  }
  // ControlNets hold an LDM UNet's input half: told apart before the UNet is read as a model.
  if (h.has('control_model.input_hint_block.0.weight') || h.has('input_hint_block.0.weight') || h.has('controlnet_cond_embedding.conv_in.weight')) {
    return arch('controlnet', 'a ControlNet (a conditioning network, ComfyUI\'s models/controlnet)', 'ControlNet');
  }
  // diffusers' names (comfy/model_detection.py's convert_diffusers_mmdit and unet_config_from_diffusers_unet).
  if (h.has('joint_transformer_blocks.0.attn.add_k_proj.weight')) return arch('auraflow', 'an AuraFlow transformer in diffusers\' layout', 'AuraFlow');
  if (h.has('x_embedder.weight') && h.hasPrefix('single_transformer_blocks.')) return arch('flux', 'a Flux transformer in diffusers\' layout (a rectified-flow transformer)', 'Flux');
  if (h.has('transformer_blocks.0.attn.add_q_proj.weight') && h.has('pos_embed.proj.weight')) return arch('sd3', 'an SD3 transformer in diffusers\' layout (an MMDiT)', 'SD3');
  if (h.has('conv_in.weight') && h.has('time_embedding.linear_1.weight') && h.hasPrefix('down_blocks.')) {
    if (h.has('add_embedding.linear_1.weight')) return arch('sdxl', 'an SDXL UNet in diffusers\' layout (add_embedding for pooled text and sizes)', 'SDXL');
    return arch(
      'diffusers-layout',
      'a UNet in diffusers\' layout (down_blocks / up_blocks, as in a diffusers folder\'s unet/), not a single-file checkpoint in the original LDM layout (model.diffusion_model.input_blocks...)',
      'a diffusers PyTorch UNet',
    );
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// SD UNets (comfy/model_detection.py's LDM path and supported_models.py's SD15 / SD20 / variants)

function sdModelFile(base: FileBase, h: Header, p: string, read: Float32Reader | undefined, refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): SdModelFileInfo {
  const unet = sdUnet(h, p, read, refuse);
  const kind = p === '' ? 'unet' : 'checkpoint';
  let textEncoder: TextEncoderInfo | null = null;
  let textEncoder2: TextEncoderInfo | null = null;
  let vae: VaeInfo | null = null;
  if (kind === 'checkpoint') {
    const encoders = findTextEncoders(h).filter((e) => e.prefix.startsWith('cond_stage_model.') || e.prefix.startsWith('conditioner.'));
    if (unet.family === 'sdxl' || unet.family === 'sdxl-refiner') {
      [textEncoder, textEncoder2] = sdxlTextEncoders(unet, encoders, refuse);
    } else {
      if (encoders.some((e) => e.width === 1280 && e.layout === 'openclip') || encoders.length > 1) {
        throw refuse('inconsistent', `its UNet is ${FAMILY_NAMES[unet.family]}'s but it holds ${encoders.map((e) => `${e.name} at ${e.prefix}`).join(', ')}, as SDXL does: the parts are of different models`);
      }
      textEncoder = encoders[0] ?? null;
    }
    if (textEncoder && (unet.family === 'sd1' || unet.family === 'sd2')) {
      const expected = unet.family === 'sd1' ? 'clip-hf' : 'openclip';
      if (textEncoder.layout !== expected) {
        throw refuse(
          'inconsistent',
          `its UNet is ${FAMILY_NAMES[unet.family]}'s (${unet.linearProjections ? 'linear' : 'convolution'} transformer projections) but its text encoder is ${textEncoder.name} in ${textEncoder.layout} naming at ${textEncoder.prefix}, ` +
            `where ${FAMILY_NAMES[unet.family]} has ${unet.family === 'sd1' ? 'CLIP ViT-L/14 at cond_stage_model.transformer.' : 'OpenCLIP ViT-H/14 at cond_stage_model.model.'}: ${RUNS} as they were published`,
        );
      }
      if (unet.contextDim !== null && textEncoder.width !== unet.contextDim) {
        throw refuse('inconsistent', `its text encoder (${textEncoder.name}) is ${textEncoder.width} wide but its UNet's cross-attention takes ${unet.contextDim}-wide text: the parts are of different models`);
      }
    }
    vae = findVaes(h).find((v) => v.prefix === 'first_stage_model.') ?? null;
    if (vae && vae.latentChannels !== 4) {
      throw refuse('inconsistent', `its VAE has ${vae.latentChannels} latent channels where the UNet's latents have 4`);
    }
  }
  return {
    ...base,
    kind,
    family: unet.family,
    prediction: unet.prediction,
    inpainting: unet.inpainting,
    components: { unet: true, vae: vae !== null, textEncoder: textEncoder !== null && (unet.family !== 'sdxl' || textEncoder2 !== null) },
    unet,
    textEncoder,
    textEncoder2,
    vae,
  };
}

/**
 * SDXL's text encoders as Stability's files hold them: CLIP ViT-L/14 (transformers' names) at
 * `conditioner.embedders.0.transformer.` and OpenCLIP ViT-bigG/14 at `conditioner.embedders.1.model.`, whose widths
 * add up to the UNet's context (768 + 1280 = 2048); the refiner's bigG alone at `conditioner.embedders.0.model.`.
 * Returns [first, second] (the refiner's bigG first, as its folders put text_encoder_2 in text_encoder's place),
 * nulls where the file holds none (a UNet-only file is refused later as incomplete).
 */
function sdxlTextEncoders(
  unet: SdUnetInfo,
  encoders: TextEncoderInfo[],
  refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError,
): [TextEncoderInfo | null, TextEncoderInfo | null] {
  const at = (prefix: string) => encoders.find((e) => e.prefix.startsWith(prefix)) ?? null;
  const check = (e: TextEncoderInfo, layout: TextEncoderInfo['layout'], what: string) => {
    if (e.layout !== layout) throw refuse('inconsistent', `its text encoder at ${e.prefix} is ${e.name} in ${e.layout} naming where ${FAMILY_NAMES[unet.family]} has ${what}: the parts are of different models`);
    if (e.projection === null && what.includes('bigG')) throw refuse('inconsistent', `its text encoder at ${e.prefix} has no text_projection, which SDXL's pooled conditioning needs`);
  };
  if (unet.family === 'sdxl-refiner') {
    const g = at('conditioner.embedders.0.model.');
    if (g) {
      check(g, 'openclip', 'OpenCLIP ViT-bigG/14');
      if (unet.contextDim !== null && g.width !== unet.contextDim) throw refuse('inconsistent', `its text encoder (${g.name}) is ${g.width} wide but its UNet's cross-attention takes ${unet.contextDim}-wide text: the parts are of different models`);
    }
    return [g, null];
  }
  const l = at('conditioner.embedders.0.transformer.');
  const g = at('conditioner.embedders.1.model.');
  if (l) check(l, 'clip-hf', 'CLIP ViT-L/14 in transformers\' names');
  if (g) check(g, 'openclip', 'OpenCLIP ViT-bigG/14');
  if (l && g && unet.contextDim !== null && l.width + g.width !== unet.contextDim) {
    throw refuse('inconsistent', `its text encoders are ${l.width} + ${g.width} wide but its UNet's cross-attention takes ${unet.contextDim}-wide text: the parts are of different models`);
  }
  return [l, g];
}

function sdUnet(h: Header, p: string, read: Float32Reader | undefined, refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): SdUnetInfo {
  const k = (key: string) => p + key;
  const [modelChannels, inChannels] = h.shape(k('input_blocks.0.0.weight')) as [number, number];
  const outChannels = h.dim(k('out.2.weight'), 0) ?? 4;
  // The first transformer of the input blocks: context width and projection kind (calculate_transformer_depth).
  let contextDim: number | null = null;
  let linearProjections = false;
  const inputBlocks = h.countBlocks((n) => k(`input_blocks.${n}.`));
  for (let n = 0; n < inputBlocks; n++) {
    const toK = h.shape(k(`input_blocks.${n}.1.transformer_blocks.0.attn2.to_k.weight`));
    if (!toK) continue;
    contextDim = toK[1] ?? null;
    linearProjections = h.shape(k(`input_blocks.${n}.1.proj_in.weight`))?.length === 2;
    break;
  }
  const temporal = h.withPrefix(p).some((key) => key.includes('.time_stack.') || key.includes('.time_mixer.') || key.includes('.time_mix_blocks.'));
  const adm = h.dim(k('label_emb.0.0.weight'), 1);
  const described = (family: SdFamily, prediction: SdPrediction, vStatistic: number | null): SdUnetInfo => ({
    prefix: p,
    family,
    prediction,
    vStatistic,
    inpainting: inChannels === 9,
    inChannels,
    outChannels,
    modelChannels,
    contextDim,
    linearProjections,
    parameters: h.parameters(p),
    dtype: h.dominantDtype(p),
  });
  const sizes = `(${inChannels} input channels, ${modelChannels} wide${contextDim !== null ? `, ${contextDim}-wide text` : ''})`;

  if (temporal) {
    throw refuse('svd', `this is a Stable Video Diffusion model${adm === 256 || adm === 1280 ? ' (SV3D)' : ''} (an LDM UNet with temporal layers: time_stack / time_mixer) ${sizes}: ${RUNS}; video models are not supported`);
  }
  if (adm !== undefined) {
    if (adm === 1536 || adm === 2048) {
      throw refuse('sd2-unclip', `this is a Stable Diffusion 2.1 unCLIP model (its UNet's label_emb takes a ${adm === 1536 ? 'CLIP ViT-L' : 'OpenCLIP ViT-H'} image embedding noise-augmented to ${adm}): ${RUNS}; unCLIP is not supported`);
    }
    if (adm === 4) throw refuse('lotus', `this is a Lotus depth/normal model (an SD-2 UNet with a 4-input label_emb): ${RUNS}; Lotus is not supported`);
    // ComfyUI tells the refiner by adm_in_channels 2560; narrower files by their one text encoder, bigG at embedders.0.
    const refiner = adm === 2560 || (h.hasPrefix('conditioner.embedders.0.model.') && !h.hasPrefix('conditioner.embedders.1.'));
    if (refiner || adm === 2816 || h.hasPrefix('conditioner.embedders.1.model.')) {
      const what = refiner ? 'an SDXL refiner' : (distilledSdxl(h, p) ?? 'an SDXL model');
      if (h.has('edm_mean') && h.has('edm_std')) throw refuse('sdxl', `this is Playground v2.5 (SDXL architecture, trained with EDM's noise schedule and latent statistics): ${RUNS}; Playground's EDM sampling is not supported`);
      if (inChannels === 9) throw refuse('sdxl', `this is an SDXL inpainting model (9 input channels): ${RUNS} for text-to-image and image-to-image; SDXL inpainting is not supported yet`);
      if (inChannels === 8) throw refuse('instruct-pix2pix', `this is an SDXL InstructPix2Pix model (8 input channels: latent and the image to edit): ${RUNS}; InstructPix2Pix is not supported`);
      if (inChannels !== 4 || outChannels !== 4) throw refuse('unknown-unet', `this is ${what} with ${inChannels} input and ${outChannels} output channels, no variant ComfyUI names: ${RUNS}`);
      // supported_models.SDXL.model_type: a `v_pred` key marks v-prediction (NoobAI, other v-pred finetunes)
      return { ...described(refiner ? 'sdxl-refiner' : 'sdxl', h.has('v_pred') ? 'v_prediction' : 'epsilon', null), variant: what };
    }
    throw refuse('unknown-unet', `its UNet is class-conditioned (label_emb with ${adm} inputs, as SDXL-type models are) ${sizes}, a variant ComfyUI does not name either: ${RUNS}`);
  }
  if (h.has('cc_projection.weight')) throw refuse('zero123', `this is a Stable Zero123 model (novel views from one image; cc_projection) ${sizes}: ${RUNS}; Zero123 is not supported`);
  if (inChannels === 7 && modelChannels === 256) throw refuse('sd-x4-upscaler', `this is the Stable Diffusion x4 upscaler (7 input channels: latent and low-resolution image): ${RUNS}; the upscaler is not supported`);
  if (inChannels === 8) {
    throw refuse('instruct-pix2pix', `this is an InstructPix2Pix model (8 input channels: latent and the image to edit) ${sizes}: ${RUNS} for text-to-image, image-to-image and inpainting; InstructPix2Pix is not supported`);
  }
  if ((inChannels !== 4 && inChannels !== 9) || outChannels !== 4) {
    throw refuse('unknown-unet', `its UNet has ${inChannels} input and ${outChannels} output channels, no Stable Diffusion variant ComfyUI names (4 in / 4 out, 9 in for inpainting): ${RUNS}`);
  }
  if (contextDim === null || !h.has(k('middle_block.1.proj_in.weight'))) {
    throw refuse('unknown-unet', `its UNet has no cross-attention transformer${contextDim === null ? ' in its input blocks' : ' in its middle block'}, which every Stable Diffusion UNet has: ${RUNS}`);
  }

  const family: SdFamily = linearProjections ? 'sd2' : 'sd1';
  let prediction: SdPrediction = 'epsilon';
  let vStatistic: number | null = null;
  // supported_models.SD20.model_type: SD-2 inpainting models are epsilon, so only 4-channel UNets are looked at.
  if (family === 'sd2' && inChannels === 4 && read && h.has(k(V_PREDICTION_KEY))) {
    const [values] = read([k(V_PREDICTION_KEY)]);
    vStatistic = populationStd(values!);
    if (vStatistic > V_PREDICTION_STD_THRESHOLD) prediction = 'v_prediction';
  }
  return described(family, prediction, vStatistic);
}

/** SDXL's distillations differ from it in transformer depth per input block (supported_models.py's SSD1B, Vega, KOALA). */
function distilledSdxl(h: Header, p: string): string | undefined {
  const depths: number[] = [];
  for (let n = 1; n < h.countBlocks((i) => `${p}input_blocks.${i}.`); n++) {
    if (h.has(`${p}input_blocks.${n}.0.op.weight`)) continue;
    depths.push(h.countBlocks((i) => `${p}input_blocks.${n}.1.transformer_blocks.${i}.`));
  }
  const d = depths.join(',');
  if (d === '0,0,2,2,4,4') return 'SSD-1B (a distilled SDXL)';
  if (d === '0,0,1,1,2,2') return 'Segmind Vega (a distilled SDXL)';
  if (d === '0,2,5' || d === '0,2,6') return 'KOALA (a distilled SDXL)';
  return undefined;
}

function populationStd(values: Float32Array): number {
  if (!values.length) return 0;
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let sum = 0;
  for (const v of values) sum += (v - mean) ** 2;
  return Math.sqrt(sum / values.length);
}

// ---------------------------------------------------------------------------------------------------------------
// VAEs, text encoders, LoRAs, embeddings

/** VAEs that are not SD's AutoencoderKL, by the keys comfy/sd.py's VAE class tells them by. */
function otherVaeKind(h: Header): string | undefined {
  for (const p of ['', 'first_stage_model.', 'vae.']) {
    const has = (key: string) => h.has(p + key);
    if (has('decoder.mid.block_1.mix_factor')) return 'Stable Video Diffusion\'s temporal VAE decoder (mix_factor layers)';
    if (has('vquantizer.codebook.weight')) return 'Stable Cascade\'s stage A (a VQGAN)';
    if (has('backbone.1.0.block.0.1.num_batches_tracked') || has('encoder.backbone.1.0.block.0.1.num_batches_tracked') || has('blocks.11.num_batches_tracked')) {
      return 'a Stable Cascade latent encoder / previewer';
    }
    if (has('decoder.conv_in.conv.weight') || has('decoder.up_blocks.0.res_blocks.0.conv1.conv.weight') || has('decoder.middle.0.residual.0.gamma') || has('decoder.unpatcher3d.wavelets')) {
      return 'a video VAE (3-D convolutions: HunyuanVideo, LTX-Video, Wan, Mochi or Cosmos)';
    }
    if (has('taesd_decoder.1.weight')) return 'a TAESD tiny autoencoder (ComfyUI\'s models/vae_approx)';
  }
  for (const v of findVaes(h)) {
    if (v.prefix === 'vae.' || v.latentChannels === 16) return `a VAE with ${v.latentChannels} latent channels (SD3's or Flux's)`;
    if (v.latentChannels === 32 && h.has(`${v.prefix}bn.running_mean`)) return 'Flux 2\'s VAE (32 latent channels)';
    if (v.latentChannels !== 4) return `a VAE with ${v.latentChannels} latent channels`;
    if (v.downscale !== null && v.downscale !== 8) return `a VAE that scales images by ${v.downscale} (${v.downscale === 4 ? 'the SD x4 upscaler\'s' : 'not SD\'s 8'})`;
  }
  return undefined;
}

function vaeFile(base: FileBase, h: Header, vae: VaeInfo, refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): VaeFileInfo {
  if (!vae.hasEncoder && !h.hasPrefix(`${vae.prefix}decoder.`)) throw refuse('other-vae', 'its VAE has no decoder');
  return { ...base, kind: 'vae', vae };
}

function textEncoderFile(base: FileBase, encoders: TextEncoderInfo[], refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): TextEncoderFileInfo {
  const names = encoders.map((e) => e.name).join(' and ');
  const t5 = encoders.find((e) => e.layout === 't5');
  if (t5) throw refuse('other-text-encoder', `this is a ${t5.name} text encoder (as SD3, Flux, PixArt and other transformers use): ${RUNS} with their CLIP text encoders`);
  if (encoders.length > 1) {
    throw refuse('other-text-encoder', `this holds ${names} in one file: ${RUNS}, whose text encoders come one per file (clip_l.safetensors, clip_g.safetensors)`);
  }
  const e = encoders[0]!;
  return { ...base, kind: 'text-encoder', textEncoders: encoders, family: textEncoderFamily(e) };
}

/**
 * Which family a text encoder serves, as ComfyUI's detect_te_model tells them by depth (a 31st layer: OpenCLIP
 * ViT-bigG/14, SDXL's second encoder; a 23rd: OpenCLIP ViT-H/14, SD-2.x; else CLIP ViT-L/14, SD-1.x's and SDXL's
 * first) or by the published widths.
 */
function textEncoderFamily(e: TextEncoderInfo): SdFamily {
  if (e.width === 1280 || e.layers >= 31) return 'sdxl';
  if (e.width === 1024 || e.layout === 'openclip' || e.layers >= 23) return 'sd2';
  return 'sd1';
}

function loraFile(base: FileBase, lora: LoraInfo, refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): LoraFileInfo {
  const m = base.metadata;
  const version = (m.ss_base_model_version ?? '').toLowerCase();
  const what = `a LoRA (${lora.naming} naming, ${lora.unetModules} UNet and ${lora.textEncoderModules} text-encoder modules)`;
  if (lora.transformerHint === 'flux' || version.startsWith('flux')) throw refuse('flux', `this is ${what} for Flux (double_blocks / single_blocks): ${LORAS}`);
  if (lora.transformerHint === 'sd3' || version.startsWith('sd3')) throw refuse('sd3', `this is ${what} for SD3 (joint_blocks): ${LORAS}`);
  if (lora.secondTextEncoder || lora.contextDim === 2048 || lora.contextDim === 1280 || version.startsWith('sdxl')) {
    throw refuse('sdxl', `this is ${what} for SDXL (${lora.secondTextEncoder ? 'it patches a second text encoder' : lora.contextDim ? `its cross-attention takes ${lora.contextDim}-wide text` : `its metadata says ${m.ss_base_model_version}`}): ${LORAS}; SDXL LoRAs are not supported yet`);
  }
  const family: SdFamily | null =
    version.startsWith('sd_v1') || version.startsWith('sd_1') ? 'sd1'
    : version.startsWith('sd_v2') || version.startsWith('sd_2') || m.ss_v2 === 'True' ? 'sd2'
    : lora.contextDim === 768 || lora.textEncoderWidth === 768 ? 'sd1'
    : lora.contextDim === 1024 || lora.textEncoderWidth === 1024 ? 'sd2'
    : null;
  return { ...base, kind: 'lora', lora, family };
}

function embeddingFile(base: FileBase, embedding: EmbeddingInfo, refuse: (code: CheckpointRefusalCode, reason: string) => UnsupportedCheckpointError): EmbeddingFileInfo {
  // SDXL's embeddings hold a vector set per encoder (clip_l, clip_g): prompts use each with its encoder.
  if (embedding.tensors.some((t) => t.name === 'clip_g' || t.width === 1280)) return { ...base, kind: 'embedding', embedding, family: 'sdxl' };
  const widths = new Set(embedding.tensors.map((t) => t.width));
  const family: SdFamily | null = widths.size === 1 && widths.has(768) ? 'sd1' : widths.size === 1 && widths.has(1024) ? 'sd2' : null;
  return { ...base, kind: 'embedding', embedding, family };
}
