/**
 * Checks that need two nodes' settings, made when a prompt is queued rather than when it runs: the samplers'
 * `validate` hooks follow their links upstream (core's ValidateContext) to the EmptyLatentImage that sets the
 * size and the CheckpointLoaderSimple that names the model, and refuse a size the model cannot take with the
 * same message the sampler would give at run time. A ComfyUI default workflow at 512x512 on the embedded model
 * is then a 400 with `node_errors` on the sampler instead of a failure after the loader and encoders ran.
 *
 * Only what the prompt states is checked: a size or model computed by another node (a VAEEncode of a loaded
 * image, a model merged by some pack's node) is left to the run-time checks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeInputError, type UpstreamNode, type ValidateContext } from '@gategraph/core';
import { chooseClipLayer, ClipLayerError, clipLayerCount } from '@gategraph/diffusion';
import { resolveModelFolder } from './folders.ts';
import { samplingSizeProblem } from './latent.ts';
import { sizingOfFolder } from './sizing.ts';

/** Nodes whose MODEL output is their `model` input with patches added: the UNet, and so its sizes, stay the same. */
const MODEL_PATCH_NODES: ReadonlySet<string> = new Set(['CacheCrossAttn', 'CacheSelfAttn', 'DeepCache', 'TGatePreset']);
/** Nodes whose LATENT output has the size of their `latent_image` input. */
const SAME_SIZE_LATENT_NODES: ReadonlySet<string> = new Set(['KSampler', 'KSamplerAdvanced']);
/** Far more hops than any real graph has; a guard, since hooks of other packs may build odd graphs. */
const MAX_HOPS = 256;

/** The checkpoint name a MODEL comes from, when the prompt says it without running anything. */
export function checkpointFeeding(node: UpstreamNode | undefined): string | undefined {
  for (let hops = 0; node && hops < MAX_HOPS; hops++) {
    if (node.classType === 'CheckpointLoaderSimple') {
      return node.output === 0 && typeof node.constants.ckpt_name === 'string' ? node.constants.ckpt_name : undefined;
    }
    if (!MODEL_PATCH_NODES.has(node.classType)) return undefined;
    node = node.linked('model');
  }
  return undefined;
}

/** The image size an empty latent stands for, when the prompt says it (through samplers, which keep it). */
export function emptyLatentFeeding(node: UpstreamNode | undefined): { width: number; height: number; batch: number } | undefined {
  for (let hops = 0; node && hops < MAX_HOPS; hops++) {
    if (node.classType === 'EmptyLatentImage') {
      const { width, height, batch_size } = node.constants;
      return typeof width === 'number' && typeof height === 'number' && typeof batch_size === 'number'
        ? { width, height, batch: batch_size }
        : undefined;
    }
    if (!SAME_SIZE_LATENT_NODES.has(node.classType)) return undefined;
    node = node.linked('latent_image');
  }
  return undefined;
}

/**
 * A sampler's queue-time size check: true, or a NodeInputError on `latent_image` with the message it would
 * fail with at run time. `cfg` is the sampler's constant (undefined when linked: guided sampling, two rows per
 * image, is assumed).
 */
export function checkSamplerInputs(cfg: number | undefined, context: ValidateContext): true {
  const image = emptyLatentFeeding(context.linked('latent_image'));
  const ckpt = checkpointFeeding(context.linked('model'));
  if (!image || ckpt === undefined) return true;
  const { dir } = resolveModelFolder(ckpt, context.paths?.models);
  const sizing = dir ? sizingOfFolder(ckpt, dir) : undefined;
  if (!sizing) return true; // the loader reports a missing or unreadable folder, when it runs
  const problem = samplingSizeProblem(sizing, image, cfg === 1 ? 1 : 2, 'latent_image');
  if (problem) throw new NodeInputError(problem, 'latent_image');
  return true;
}

/** The checkpoint name a CLIP comes from (through clip-skip nodes, which keep the encoder), when the prompt says it. */
export function clipCheckpointFeeding(node: UpstreamNode | undefined): string | undefined {
  for (let hops = 0; node && hops < MAX_HOPS; hops++) {
    if (node.classType === 'CheckpointLoaderSimple') {
      return node.output === 1 && typeof node.constants.ckpt_name === 'string' ? node.constants.ckpt_name : undefined;
    }
    if (node.classType !== 'CLIPSetLastLayer') return undefined;
    node = node.linked('clip');
  }
  return undefined;
}

/**
 * CLIPSetLastLayer's queue-time check: a layer the exported text encoder does not have (-1 on an SD-2.x export,
 * which ends at the penultimate layer) is refused with the run-time message. Read from text_encoder/config.json
 * (hidden_size, num_hidden_layers); without one, the check is left to the run.
 */
export function checkClipLayer(stop: number | undefined, context: ValidateContext): true {
  const ckpt = clipCheckpointFeeding(context.linked('clip'));
  if (stop === undefined || ckpt === undefined) return true;
  const { dir } = resolveModelFolder(ckpt, context.paths?.models);
  if (!dir) return true;
  let config: { hidden_size?: unknown; num_hidden_layers?: unknown };
  try {
    config = JSON.parse(readFileSync(join(dir, 'text_encoder', 'config.json'), 'utf8')) as typeof config;
  } catch {
    return true;
  }
  if (typeof config.hidden_size !== 'number' || typeof config.num_hidden_layers !== 'number') return true;
  try {
    chooseClipLayer(stop, clipLayerCount(config.hidden_size, config.num_hidden_layers));
  } catch (error) {
    if (error instanceof ClipLayerError) throw new NodeInputError(error.message, 'stop_at_clip_layer');
    throw error;
  }
  return true;
}
