/**
 * The original LDM inference configs (`v1-inference.yaml`, `v2-inference-v.yaml`, `v1-inpainting-inference.yaml`
 * ... as ComfyUI keeps them in models/configs for its CheckpointLoader): what they say that a checkpoint's tensors
 * do not (the prediction type, the attention heads, the latent scale) and what they say it must be (the text
 * encoder, the cross-attention width, the input channels), checked against the checkpoint's own structure.
 *
 * ComfyUI's comfy/sd.py load_checkpoint reads the same keys: model.params.parameterization, scale_factor,
 * cond_stage_config.target, unet_config.params.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parse } from 'yaml';
import type { SdModelFileInfo, SingleFileFamily, SingleFileOverrides } from '@gategraph/diffusion';

export class LdmConfigError extends Error {
  override name = 'LdmConfigError';
}

/** What a config makes of a checkpoint: its family (prediction included) and the builders' overrides. */
export interface LdmConfig {
  family: SingleFileFamily;
  overrides: SingleFileOverrides;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses `path` and checks it against the checkpoint's detected structure; throws LdmConfigError saying why not. */
export function readLdmConfig(path: string, checkpoint: SdModelFileInfo): LdmConfig {
  const name = basename(path);
  const fail = (why: string) => new LdmConfigError(`${name}: ${why}`);
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw fail(`not a readable YAML file (${(error as Error).message.split('\n')[0]})`);
  }
  const model = isObj(doc) && isObj(doc.model) ? doc.model : undefined;
  const params = model && isObj(model.params) ? model.params : undefined;
  if (!model || !params) throw fail('not an LDM model config (no model.params); ComfyUI\'s models/configs files such as v1-inference.yaml are');
  const target = String(model.target ?? '');
  // SGM configs (SDXL, SVD) and others name another model class.
  if (!/^ldm\.models\.diffusion\.ddpm\.(LatentDiffusion|LatentInpaintDiffusion)$/.test(target)) {
    throw fail(`its model is ${target || 'not named'}; gategraph runs the SD-1.x / 2.x configs (ldm.models.diffusion.ddpm.LatentDiffusion)`);
  }

  const parameterization = params.parameterization ?? 'eps';
  if (parameterization !== 'eps' && parameterization !== 'v') throw fail(`parameterization "${String(parameterization)}" is not one SD-1.x / 2.x use (eps or v)`);

  const cond = isObj(params.cond_stage_config) ? String(params.cond_stage_config.target ?? '') : '';
  const text = /FrozenOpenCLIPEmbedder/.test(cond) ? 'sd2' : /FrozenCLIPEmbedder/.test(cond) ? 'sd1' : undefined;
  if (!text) throw fail(`its text encoder is ${cond || 'not named'}; SD-1.x uses FrozenCLIPEmbedder, SD-2.x FrozenOpenCLIPEmbedder`);
  if (text !== checkpoint.family) {
    throw fail(`it is a config for ${text === 'sd2' ? 'SD-2.x (OpenCLIP ViT-H/14)' : 'SD-1.x (CLIP ViT-L/14)'} but ${basename(checkpoint.path)} is an ${checkpoint.family === 'sd2' ? 'SD-2.x' : 'SD-1.x'} checkpoint`);
  }

  const unet = isObj(params.unet_config) && isObj(params.unet_config.params) ? params.unet_config.params : {};
  const number = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const contextDim = number(unet.context_dim);
  if (contextDim !== undefined && checkpoint.unet.contextDim !== null && contextDim !== checkpoint.unet.contextDim) {
    throw fail(`its UNet takes text ${contextDim} wide but the checkpoint's takes ${checkpoint.unet.contextDim}: a config for another model`);
  }
  const inChannels = number(unet.in_channels);
  if (inChannels !== undefined && inChannels !== checkpoint.unet.inChannels) {
    throw fail(`its UNet takes ${inChannels} input channels but the checkpoint's takes ${checkpoint.unet.inChannels}${checkpoint.inpainting ? ' (an inpainting model: use an inpainting config)' : ''}`);
  }

  // -1 means "not set" in the LDM configs (one of num_heads / num_head_channels is).
  const heads = number(unet.num_heads);
  const headDim = number(unet.num_head_channels);
  const scale = number(params.scale_factor);
  return {
    family: { text, prediction: parameterization === 'v' ? 'v_prediction' : 'epsilon' },
    overrides: {
      unet: heads !== undefined && heads > 0 ? { heads } : headDim !== undefined && headDim > 0 ? { headDim } : {},
      ...(scale !== undefined ? { vae: { scalingFactor: scale } } : {}),
    },
  };
}
