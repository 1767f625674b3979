// DeepCache's shallow branch as a graph cut.
//
// diffusers' UNet keeps a stack of skip tensors: conv_in's output, then for every down block the output of each
// (resnet, attention) layer and of its downsampler. Every up-block layer pops one skip and runs
//   h = resnet(cat([h, skip], dim=1), temb); h = attention(h, text)
// so the up layers, taken from the LAST one backwards, consume skip 0 (conv_in), 1 (down_blocks.0 layer 0),
// 2 (down_blocks.0 layer 1), 3 (down_blocks.0's downsampler), 4 (down_blocks.1 layer 0) ...
//
// DeepCache (horseee/DeepCache, DeepCache/sd/unet_2d_condition.py, the paper's pipeline) with
// cache_branch_id = k, cache_block_id = k // 3, cache_layer_id = k % 3 recomputes, on a cached step, conv_in and
// the down path up to and including layer `cache_layer_id` of down block `cache_block_id` (k + 2 skips with 2
// layers per block), skips the rest of the down path and the mid block, and runs the up layers that consume
// exactly those skips (skip 0 .. k+1). The hidden state fed to the first of them comes from the cache: it is
// the tensor entering up layer U(k+1) (the layer consuming skip k+1) BEFORE the torch.cat with its skip, i.e.
// input 0 of that layer's Concat. The skip itself (input 1) is recomputed fresh, as in DeepCache. For k = 0:
// conv_in, down_blocks.0 resnets.0 + attentions.0, and the last up block's last two layers (resnets.1/attentions.1
// fed the cache and skip 1, then resnets.2/attentions.2 with conv_in's output), conv_norm_out, conv_out.
//
// The later DeepCacheSDHelper ("pip install DeepCache", DeepCache/extension/deepcache.py) counts one layer
// less: on a cached step it skips every down layer >= cache_layer_id of block cache_block_id, so branch k
// recomputes skips 0..k and caches the tensor entering U(k) (for k = 0: conv_in and the very last up layer).
// `convention: 'helper'` selects that.
//
// Everything else (time embedding, the recomputed down layers) stays because the kept up layers need it; the
// graph pruning finds that, no list is kept here.
import { OnnxGraphError } from './errors.ts';
import type { UNetStructure } from './modules.ts';

export type DeepCacheConvention = 'pipeline' | 'helper';

export interface UpLayer {
  /** Position in the up path, 0 = the first layer after the mid block. */
  order: number;
  resnet: string;
  attention?: string;
  /** The Concat output the resnet reads. */
  concat: string;
  /** Concat input 0: the hidden state coming up the UNet (what DeepCache caches). */
  hidden: string;
  /** Concat input 1: the skip tensor from the down path. */
  skip: string;
}

/** Every up-path layer in execution order, with the tensors around its skip concatenation. */
export function upLayers(unet: UNetStructure): UpLayer[] {
  const layers: UpLayer[] = [];
  for (const block of unet.upBlocks) {
    block.resnets.forEach((resnet, j) => {
      const b = unet.boundary(resnet);
      const concatNode = b.inputs
        .map((t) => unet.index.producer.get(t))
        .find((n) => n?.opType === 'Concat' && n.input.length === 2 && unet.pathOf(n) === block.path);
      if (!concatNode) {
        throw new OnnxGraphError(`up layer ${resnet} does not read a Concat of (hidden, skip) in ${block.path}; this does not look like a diffusers up block`, 'unknown_module');
      }
      layers.push({
        order: layers.length,
        resnet,
        ...(block.attentions[j] ? { attention: block.attentions[j] } : {}),
        concat: concatNode.output[0]!,
        hidden: concatNode.input[0]!,
        skip: concatNode.input[1]!,
      });
    });
  }
  return layers;
}

export interface DeepFeature {
  branch: number;
  cacheBlockId: number;
  cacheLayerId: number;
  convention: DeepCacheConvention;
  /** The tensor to capture on full steps and feed on shallow steps. */
  tensor: string;
  /** The first up layer that runs on a shallow step. */
  enters: UpLayer;
  /** Up layers that run on a shallow step, in execution order. */
  shallowLayers: UpLayer[];
}

export function deepFeature(unet: UNetStructure, branch: number, convention: DeepCacheConvention = 'pipeline'): DeepFeature {
  const layers = upLayers(unet);
  const maxBranch = convention === 'pipeline' ? layers.length - 2 : layers.length - 1;
  if (!Number.isInteger(branch) || branch < 0 || branch > maxBranch) {
    throw new OnnxGraphError(`DeepCache cache_branch_id ${branch} is out of range: this UNet has ${layers.length} up layers, so 0..${maxBranch} (${convention} convention)`, 'bad_spec');
  }
  // U(j) = the up layer consuming skip j = layers counted from the last one.
  const skipIndex = convention === 'pipeline' ? branch + 1 : branch;
  const enters = layers[layers.length - 1 - skipIndex]!;
  return {
    branch,
    cacheBlockId: Math.floor(branch / 3),
    cacheLayerId: branch % 3,
    convention,
    tensor: enters.hidden,
    enters,
    shallowLayers: layers.slice(enters.order),
  };
}
