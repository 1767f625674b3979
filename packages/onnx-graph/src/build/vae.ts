// The VAE of SD-1.x / SD-2.x single-file checkpoints (LDM's AutoencoderKL = diffusers' AutoencoderKL) built from
// `first_stage_model.*` tensors, or from a standalone VAE file (ComfyUI's models/vae, e.g. ft-MSE: the same keys
// without the prefix), as the two graphs a diffusers/optimum export holds and packages/diffusion opens unchanged:
//   vae_decoder: latent_sample [batch_size, 4, height_latent, width_latent] -> post_quant_conv -> decoder -> sample
//   vae_encoder: sample [batch_size, 3, height, width] -> encoder -> quant_conv -> latent_parameters
// `latent_parameters` is optimum >= 1.23's output: mean and logvar on channels, deterministic (the engine keeps the
// mean); older exports drew `latent_sample` inside the graph with RandomNormalLike, which is never wanted here.
// Node names are the export's (`/decoder/mid_block/attentions.0/to_q/MatMul`), so fuseAttention fuses the mid-block
// attention (the engine fuses the decoder's) and scope-based tools see diffusers modules.
//
// The architecture comes from shapes (levels, channels per level, res blocks per level, latent channels, whether
// the mid block has attention); GroupNorm groups (32 in SD), config.json's scaling_factor (SD-1/2: 0.18215) and
// sample_size cannot be read from a VAE and are overridable.
//
// LDM -> diffusers (n levels, L res blocks per level; diffusers' convert_ldm_vae_checkpoint, read backwards):
//   encoder.down.i.block.j / .downsample.conv        encoder.down_blocks.i.resnets.j / .downsamplers.0.conv
//   decoder.up.(n-1-i).block.j / .upsample.conv      decoder.up_blocks.i.resnets.j / .upsamplers.0.conv
//     (LDM inserts decoder levels at the front: up.n-1 runs first; j = 0..L, one more than the encoder)
//   {encoder,decoder}.mid.block_1 / attn_1 / block_2  mid_block.resnets.0 / attentions.0 / resnets.1
//   mid.attn_1.norm / q / k / v / proj_out          group_norm / to_q / to_k / to_v / to_out.0 (1x1 convs there)
//   norm_out, nin_shortcut                          conv_norm_out, conv_shortcut
//   quant_conv, post_quant_conv, conv_in, conv_out   unchanged
import { CheckpointError } from './checkpoint.ts';
import { DT, GraphBuilder, type BuiltGraph } from './builder.ts';
import { classifyKeys, type KeyReport } from './ldm-keys.ts';
import { conv2d, groupNorm, silu, type Ctx } from './layers.ts';
import { WeightView, type WeightSource } from './weights.ts';

export const LDM_VAE_PREFIX = 'first_stage_model.';

/** What a VAE's shapes do not say. */
export interface VaeOverrides {
  /** Key prefix of the VAE's tensors (default: 'first_stage_model.' if present, else '' for a standalone VAE file). */
  prefix?: string;
  /** GroupNorm groups (default 32; the CI test checkpoints use 4). */
  groups?: number;
  /** config.json's scaling_factor (default 0.18215, SD-1.x/2.x's; SDXL's VAE uses 0.13025). */
  scalingFactor?: number;
  /** config.json's sample_size in pixels (default 512). */
  sampleSize?: number;
}

/** The architecture read from a VAE's tensors. Level i of the encoder (and up block n-1-i) has blockOutChannels[i]. */
export interface LdmVaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  /** Res blocks per encoder level (decoder levels have one more). */
  layersPerBlock: number;
  midAttention: boolean;
  groups: number;
  scalingFactor: number;
  sampleSize: number;
}

export type VaePart = 'encoder' | 'decoder';

export interface BuiltVae {
  built: BuiltGraph;
  config: LdmVaeConfig;
  /** diffusers' AutoencoderKL config.json (the same beside vae_encoder and vae_decoder). */
  diffusersConfig: Record<string, unknown>;
  keys: KeyReport;
}

// diffusers' Encoder/Decoder: every GroupNorm (resnets, mid attention, norm_out) with eps 1e-6.
const EPS = 1e-6;

function detectPrefix(source: WeightSource, given?: string): string {
  if (given !== undefined) return given;
  for (const prefix of [LDM_VAE_PREFIX, '']) {
    if (source.has(`${prefix}decoder.conv_in.weight`) || source.has(`${prefix}encoder.conv_in.weight`)) return prefix;
  }
  const diffusers = source.keys().some((k) => /(^|\.)(encoder|decoder)\.(down|up)_blocks\./.test(k));
  throw new CheckpointError(
    `${source.path} has no LDM VAE (no "${LDM_VAE_PREFIX}decoder.conv_in.weight", nor "decoder.conv_in.weight" for a standalone VAE file)${diffusers ? ': its keys look like a diffusers state dict, not the LDM layout' : ''}`,
    'missing_key',
    `${LDM_VAE_PREFIX}decoder.conv_in.weight`,
  );
}

/** Indices N of `<group>.N.` keys, sorted. */
function indices(w: WeightView, group: string): number[] {
  const set = new Set<number>();
  const re = new RegExp(`^${group.replaceAll('.', '\\.')}\\.(\\d+)\\.`);
  for (const k of w.keys()) {
    const m = re.exec(k);
    if (m) set.add(Number(m[1]));
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * Reads the VAE's architecture from the shapes of `part`'s tensors (the other half may be absent; a complete file
 * gives the same answer from either), its key prefix too.
 */
export function detectVaeConfig(source: WeightSource, overrides: VaeOverrides = {}, part: VaePart = 'decoder'): { config: LdmVaeConfig; prefix: string } {
  const prefix = detectPrefix(source, overrides.prefix);
  const w = new WeightView(source, prefix);
  let blockOutChannels: number[];
  let layersPerBlock: number;
  let latentChannels: number;
  if (part === 'decoder') {
    // up.k holds level k; its first res block's conv2 gives the level's width.
    const levels = indices(w, 'decoder.up');
    blockOutChannels = levels.map((k) => w.shape(`decoder.up.${k}.block.0.conv2.weight`)[0]!);
    layersPerBlock = indices(w, 'decoder.up.0.block').length - 1;
    latentChannels = w.shape('decoder.conv_in.weight')[1]!;
  } else {
    const levels = indices(w, 'encoder.down');
    blockOutChannels = levels.map((i) => w.shape(`encoder.down.${i}.block.0.conv2.weight`)[0]!);
    layersPerBlock = indices(w, 'encoder.down.0.block').length;
    latentChannels = w.shape('encoder.conv_out.weight')[0]! / 2;
  }
  if (blockOutChannels.length === 0 || layersPerBlock < 1) {
    const missing = part === 'decoder' ? 'decoder.up.0.block.0.conv2.weight' : 'encoder.down.0.block.0.conv2.weight';
    throw new CheckpointError(`${source.path} has no VAE ${part} levels (no "${w.key(missing)}")`, 'missing_key', w.key(missing));
  }
  const groups = overrides.groups ?? 32;
  for (const c of blockOutChannels) {
    if (c % groups !== 0) throw new CheckpointError(`${c} channels do not split into ${groups} GroupNorm groups: pass the groups this VAE was trained with (overrides.groups)`, 'unsupported');
  }
  return {
    prefix,
    config: {
      // The other half's end convolutions, when present; SD's 3-channel images otherwise.
      inChannels: w.has('encoder.conv_in.weight') ? w.shape('encoder.conv_in.weight')[1]! : 3,
      outChannels: w.has('decoder.conv_out.weight') ? w.shape('decoder.conv_out.weight')[0]! : 3,
      latentChannels,
      blockOutChannels,
      layersPerBlock,
      midAttention: w.has(`${part}.mid.attn_1.q.weight`),
      groups,
      scalingFactor: overrides.scalingFactor ?? 0.18215,
      sampleSize: overrides.sampleSize ?? 512,
    },
  };
}

/** diffusers' AutoencoderKL config.json of a detected architecture. */
export function vaeDiffusersConfig(cfg: LdmVaeConfig): Record<string, unknown> {
  const n = cfg.blockOutChannels.length;
  return {
    _class_name: 'AutoencoderKL',
    _diffusers_version: '0.32.2',
    act_fn: 'silu',
    block_out_channels: cfg.blockOutChannels,
    down_block_types: new Array(n).fill('DownEncoderBlock2D'),
    force_upcast: true,
    in_channels: cfg.inChannels,
    latent_channels: cfg.latentChannels,
    latents_mean: null,
    latents_std: null,
    layers_per_block: cfg.layersPerBlock,
    mid_block_add_attention: cfg.midAttention,
    norm_num_groups: cfg.groups,
    out_channels: cfg.outChannels,
    sample_size: cfg.sampleSize,
    scaling_factor: cfg.scalingFactor,
    shift_factor: null,
    up_block_types: new Array(n).fill('UpDecoderBlock2D'),
    use_post_quant_conv: true,
    use_quant_conv: true,
  };
}

/** A ResnetBlock2D without time embedding (LDM's ResnetBlock with temb_channels 0); returns its output and width. */
function resnet(ctx: Ctx, x: string, inCh: number, key: string, groups: number): { y: string; channels: number } {
  const { b, w } = ctx;
  const outCh = w.shape(`${key}.conv1.weight`)[0]!;
  let h = groupNorm(ctx, x, 'norm1', `${key}.norm1`, { groups, eps: EPS, channels: inCh });
  h = conv2d(ctx, silu(b, h, 'nonlinearity'), 'conv1', `${key}.conv1`, { inChannels: inCh });
  h = groupNorm(ctx, h, 'norm2', `${key}.norm2`, { groups, eps: EPS, channels: outCh });
  h = conv2d(ctx, silu(b, h, 'nonlinearity'), 'conv2', `${key}.conv2`, { inChannels: outCh });
  const hasShortcut = w.has(`${key}.nin_shortcut.weight`);
  if (!hasShortcut && inCh !== outCh) throw new CheckpointError(`${w.key(key)} changes width ${inCh} -> ${outCh} but has no nin_shortcut`, 'missing_key', w.key(`${key}.nin_shortcut.weight`));
  const skip = hasShortcut ? conv2d(ctx, x, 'conv_shortcut', `${key}.nin_shortcut`, { inChannels: inCh }) : x;
  return { y: b.op('Add', [skip, h]), channels: outCh };
}

/** A 1x1 convolution weight [out, in, 1, 1] used as nn.Linear on [B, tokens, in]: MatMul by its transpose + bias. */
function convAsLinear(ctx: Ctx, x: string, module: string, key: string, channels: number): string {
  const { b, w } = ctx;
  return b.scope(module, () => {
    const weight = w.take(`${key}.weight`, { transpose: true }, [channels, channels, 1, 1]);
    const y = b.op('MatMul', [x, b.weight(`${b.paramName('weight')}.T`, weight)]);
    return b.op('Add', [b.weight(b.paramName('bias'), w.take(`${key}.bias`, {}, [channels])), y]);
  });
}

/**
 * The mid block's single-head self-attention over all H*W positions (diffusers' Attention with residual): as the
 * export writes it, [B, C, H*W] -> [B, H*W, C], q/k/v projections, q scaled by 1/sqrt(C), softmax(q kᵀ) v, to_out,
 * back to [B, C, H, W], + input. One head needs no head split, so fuseAttention sees [B, tokens, C] roots directly.
 * The GroupNorm runs on [B, C, H, W] before the flattening (the export norms [B, C, H*W]: the same statistics).
 */
function midAttention(ctx: Ctx, x: string, channels: number, key: string, groups: number): string {
  const { b } = ctx;
  const normed = groupNorm(ctx, x, 'group_norm', `${key}.norm`, { groups, eps: EPS, channels });
  const tokens = b.op('Transpose', [b.op('Reshape', [normed, b.ints([0, channels, -1])])], { perm: [0, 2, 1] });
  const q = convAsLinear(ctx, tokens, 'to_q', `${key}.q`, channels);
  const k = convAsLinear(ctx, tokens, 'to_k', `${key}.k`, channels);
  const v = convAsLinear(ctx, tokens, 'to_v', `${key}.v`, channels);
  const scores = b.op('MatMul', [b.op('Mul', [q, b.scalar(1 / Math.sqrt(channels))]), b.op('Transpose', [k], { perm: [0, 2, 1] })]);
  const out = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), v]);
  const projected = convAsLinear(ctx, out, 'to_out.0', `${key}.proj_out`, channels);
  const grid = b.op('Reshape', [b.op('Transpose', [projected], { perm: [0, 2, 1] }), b.op('Shape', [x])]);
  return b.op('Add', [grid, x]);
}

/** UNetMidBlock2D: resnet, (attention), resnet. */
function midBlock(ctx: Ctx, x: string, channels: number, key: string, cfg: LdmVaeConfig): string {
  const { b } = ctx;
  return b.scope('mid_block', () => {
    let h = b.scope('resnets.0', () => resnet(ctx, x, channels, `${key}.block_1`, cfg.groups)).y;
    if (cfg.midAttention) h = b.scope('attentions.0', () => midAttention(ctx, h, channels, `${key}.attn_1`, cfg.groups));
    return b.scope('resnets.1', () => resnet(ctx, h, channels, `${key}.block_2`, cfg.groups)).y;
  });
}

/** conv_norm_out, conv_act, conv_out. */
function outConv(ctx: Ctx, x: string, channels: number, key: string, groups: number): string {
  const h = groupNorm(ctx, x, 'conv_norm_out', `${key}.norm_out`, { groups, eps: EPS, channels });
  return conv2d(ctx, silu(ctx.b, h, 'conv_act'), 'conv_out', `${key}.conv_out`, { inChannels: channels });
}

function keyReport(source: WeightSource, prefix: string, part: VaePart): KeyReport {
  const keys = classifyKeys(source.keys(), source.taken(), 'vae', prefix === LDM_VAE_PREFIX ? undefined : prefix);
  // The other half of the VAE is built by its own builder into its own graph: counted, not unknown.
  const other = part === 'decoder' ? ['encoder.', 'quant_conv.'] : ['decoder.', 'post_quant_conv.'];
  const isOther = (k: string) => k.startsWith(prefix) && other.some((o) => k.startsWith(prefix + o));
  const otherCount = keys.unknown.filter(isOther).length;
  keys.unknown = keys.unknown.filter((k) => !isOther(k));
  if (otherCount) keys.otherComponents[part === 'decoder' ? 'vae_encoder' : 'vae_decoder'] = otherCount;
  return keys;
}

/**
 * Builds the vae_decoder graph (latent_sample -> sample) of an LDM checkpoint or standalone VAE file (weights
 * declared, read when written: writeBuiltModel). A missing tensor throws a CheckpointError naming it.
 */
export function buildVaeDecoder(source: WeightSource, overrides: VaeOverrides = {}): BuiltVae {
  const { config: cfg, prefix } = detectVaeConfig(source, overrides, 'decoder');
  const b = new GraphBuilder({ opset: 17 });
  const ctx: Ctx = { b, w: new WeightView(source, prefix) };
  const n = cfg.blockOutChannels.length;
  const latent = b.input('latent_sample', DT.float, ['batch_size', cfg.latentChannels, 'height_latent', 'width_latent']);
  const z = conv2d(ctx, latent, 'post_quant_conv', 'post_quant_conv', { inChannels: cfg.latentChannels });
  const image = b.scope('decoder', () => {
    let channels = cfg.blockOutChannels[n - 1]!;
    let x = conv2d(ctx, z, 'conv_in', 'decoder.conv_in', { inChannels: cfg.latentChannels });
    x = midBlock(ctx, x, channels, 'decoder.mid', cfg);
    for (let i = 0; i < n; i++) {
      const level = n - 1 - i;
      b.scope(`up_blocks.${i}`, () => {
        for (let j = 0; j <= cfg.layersPerBlock; j++) {
          const r = b.scope(`resnets.${j}`, () => resnet(ctx, x, channels, `decoder.up.${level}.block.${j}`, cfg.groups));
          x = r.y;
          channels = r.channels;
        }
        if (i < n - 1) {
          // Nearest 2x by constant scales, as the export's F.interpolate(scale_factor=2.0) writes it.
          x = b.scope('upsamplers.0', () => {
            const up = b.op('Resize', [x, '', b.constant([1, 1, 2, 2])], { coordinate_transformation_mode: 'asymmetric', mode: 'nearest', nearest_mode: 'floor' });
            return conv2d(ctx, up, 'conv', `decoder.up.${level}.upsample.conv`, { inChannels: channels });
          });
        }
      });
    }
    return outConv(ctx, x, channels, 'decoder', cfg.groups);
  });
  b.output(image, 'sample', DT.float, ['batch_size', cfg.outChannels, 'height', 'width']);
  const built = b.build({ docString: `VAE decoder built by @gategraph/onnx-graph from ${source.path}` });
  return { built, config: cfg, diffusersConfig: vaeDiffusersConfig(cfg), keys: keyReport(source, prefix, 'decoder') };
}

/**
 * Builds the vae_encoder graph (sample -> latent_parameters: mean and logvar, no sampling) of an LDM checkpoint or
 * standalone VAE file. A missing tensor throws a CheckpointError naming it.
 */
export function buildVaeEncoder(source: WeightSource, overrides: VaeOverrides = {}): BuiltVae {
  const { config: cfg, prefix } = detectVaeConfig(source, overrides, 'encoder');
  const b = new GraphBuilder({ opset: 17 });
  const ctx: Ctx = { b, w: new WeightView(source, prefix) };
  const n = cfg.blockOutChannels.length;
  const sample = b.input('sample', DT.float, ['batch_size', cfg.inChannels, 'height', 'width']);
  const moments = b.scope('encoder', () => {
    let x = conv2d(ctx, sample, 'conv_in', 'encoder.conv_in', { inChannels: cfg.inChannels });
    let channels = cfg.blockOutChannels[0]!;
    for (let i = 0; i < n; i++) {
      b.scope(`down_blocks.${i}`, () => {
        for (let j = 0; j < cfg.layersPerBlock; j++) {
          const r = b.scope(`resnets.${j}`, () => resnet(ctx, x, channels, `encoder.down.${i}.block.${j}`, cfg.groups));
          x = r.y;
          channels = r.channels;
        }
        if (i < n - 1) {
          // SD's VAE pads right and bottom by one (LDM's Downsample: F.pad(x, (0, 1, 0, 1))), then a stride-2 conv
          // without padding (diffusers' downsample_padding=0).
          x = b.scope('downsamplers.0', () => {
            const padded = b.op('Pad', [x, b.ints([0, 0, 0, 0, 0, 0, 1, 1]), b.scalar(0)], { mode: 'constant' });
            return conv2d(ctx, padded, 'conv', `encoder.down.${i}.downsample.conv`, { stride: 2, padding: 0, inChannels: channels });
          });
        }
      });
    }
    x = midBlock(ctx, x, channels, 'encoder.mid', cfg);
    return outConv(ctx, x, channels, 'encoder', cfg.groups);
  });
  const parameters = conv2d(ctx, moments, 'quant_conv', 'quant_conv', { inChannels: 2 * cfg.latentChannels });
  b.output(parameters, 'latent_parameters', DT.float, ['batch_size', 2 * cfg.latentChannels, 'height_latent', 'width_latent']);
  const built = b.build({ docString: `VAE encoder built by @gategraph/onnx-graph from ${source.path}` });
  return { built, config: cfg, diffusersConfig: vaeDiffusersConfig(cfg), keys: keyReport(source, prefix, 'encoder') };
}
