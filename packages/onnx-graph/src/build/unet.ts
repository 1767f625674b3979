// The SD-1.x / SD-2.x / SDXL UNet (LDM's and SGM's openaimodel.UNetModel = diffusers' UNet2DConditionModel) built
// from a single-file checkpoint's `model.diffusion_model.*` tensors, with the tensor and node names of a
// diffusers/optimum ONNX export (`sample`, `timestep`, `encoder_hidden_states`, and SDXL's `text_embeds`,
// `time_ids` -> `out_sample`; nodes named by
// diffusers module scope, `/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul`), so module
// discovery, TGATE/DeepCache derivations, If-gating, MAC counts and attention fusion work on it unchanged.
//
// The architecture is read from the tensors' shapes (ComfyUI's model detection does the same): input/output
// channels, model channels and per-level widths, res blocks per level, which levels have transformers and how
// deep, the context width, linear vs 1x1-conv projections. What shapes cannot tell comes from the family, as
// ComfyUI's supported_models do: 8 heads for SD-1.x (context 768), 64 channels per head otherwise (SD-2.x),
// GroupNorm with 32 groups; each can be overridden (test checkpoints at reduced width need that).
//
// LDM -> diffusers, level i of n, L res blocks per level (diffusers' convert_ldm_unet_checkpoint, read backwards):
//   input_blocks.0.0                    conv_in
//   input_blocks.{1+i(L+1)+j}.0 / .1    down_blocks.i.resnets.j / attentions.j
//   input_blocks.{(i+1)(L+1)}.0.op      down_blocks.i.downsamplers.0.conv           (i < n-1)
//   middle_block.0 / .1 / .2            mid_block.resnets.0 / attentions.0 / resnets.1
//   output_blocks.{i(L+1)+j}.0 / .1     up_blocks.i.resnets.j / attentions.j        (up block i = level n-1-i)
//   output_blocks.{i(L+1)+L}.{1|2}.conv up_blocks.i.upsamplers.0.conv               (.2 after an attention)
//   time_embed.0 / .2, out.0 / .2       time_embedding.linear_1 / linear_2, conv_norm_out / conv_out
//   label_emb.0.0 / .0.2 (SDXL)         add_embedding.linear_1 / linear_2
//   ResBlock in_layers.0/.2, emb_layers.1, out_layers.0/.3, skip_connection = norm1, conv1, time_emb_proj, norm2,
//   conv2, conv_shortcut; SpatialTransformer's own names are diffusers' Transformer2DModel's.
import { CheckpointError } from './checkpoint.ts';
import { DT, GraphBuilder, type BuiltGraph } from './builder.ts';
import { classifyKeys, type KeyReport } from './ldm-keys.ts';
import { attention, conv2d, gelu, groupNorm, layerNorm, linear, linearGemm, silu, sliceLast, type Ctx } from './layers.ts';
import { WeightView, type WeightSource } from './weights.ts';

export const LDM_UNET_PREFIX = 'model.diffusion_model.';

/** What the shapes do not say, for checkpoints that are not SD-1.x/2.x at full width. */
export interface UnetOverrides {
  /** Key prefix of the UNet's tensors (default: 'model.diffusion_model.' if present, else '' for a bare UNet file). */
  prefix?: string;
  /** Attention heads per level (or one for all). Default: SD-1.x (context 768) 8, otherwise width / headDim. */
  heads?: number | number[];
  /** Channels per head when heads are not given (default 64 for SD-2.x-like checkpoints). */
  headDim?: number;
  /** GroupNorm groups (default 32). */
  groups?: number;
  /** config.json's sample_size (latent cells): default 64 for SD-1.x, 96 for SD-2.x (768-v), 128 for SDXL. */
  sampleSize?: number;
  /**
   * How an SDXL-type UNet's label_emb input splits into the pooled text and the size ids (see AddedConditioning).
   * Default: SDXL's (label_emb takes 2816 = 1280 + 6 x 256) or the refiner's (2560 = 1280 + 5 x 256); a checkpoint
   * of other widths passes its second text encoder's projection width.
   */
  added?: { textEmbedsDim: number };
}

/**
 * SDXL's added conditioning (diffusers' addition_embed_type "text_time", SGM's label_emb): the second text
 * encoder's projected pooled output (`text_embeds`) and `time_ids` (original size, crop, target size; the
 * refiner's aesthetic score instead of the target size), each id embedded by a sinusoid of `timeEmbedDim`.
 */
export interface AddedConditioning {
  textEmbedsDim: number;
  timeIdsCount: number;
  /** Width of each id's sinusoid (256 in every SDXL-type model). */
  timeEmbedDim: number;
  /** label_emb's input width: textEmbedsDim + timeIdsCount x timeEmbedDim. */
  inputDim: number;
}

/** The architecture read from a checkpoint. Level i runs at 1/2^i of the latent size. */
export interface LdmUnetConfig {
  inChannels: number;
  outChannels: number;
  modelChannels: number;
  /** Output width of each level (model channels x channel_mult). */
  levelChannels: number[];
  numResBlocks: number;
  /** Transformer depth of each level's attentions (0: no attention at that level). */
  transformerDepth: number[];
  midTransformerDepth: number;
  contextDim: number;
  useLinearProjection: boolean;
  /** Attention heads per level (the mid block uses the last level's). */
  heads: number[];
  groups: number;
  timeEmbedDim: number;
  /** 'sd1' for context 768 with conv projections, 'sd2' for 1024 with linear ones, 'sdxl' with a label_emb, else 'custom'. */
  family: 'sd1' | 'sd2' | 'sdxl' | 'custom';
  sampleSize: number;
  /** SDXL-type UNets' pooled-text and size conditioning; absent for SD-1.x/2.x. */
  added?: AddedConditioning;
}

export interface BuiltUnet {
  built: BuiltGraph;
  config: LdmUnetConfig;
  /** A diffusers UNet2DConditionModel config.json for the graph (what the engine reads beside model.onnx). */
  diffusersConfig: Record<string, unknown>;
  keys: KeyReport;
}

const RESNET_EPS = 1e-5;
const TRANSFORMER_GN_EPS = 1e-6;
const LAYER_NORM_EPS = 1e-5;

function detectPrefix(source: WeightSource, given?: string): string {
  if (given !== undefined) return given;
  if (source.has(`${LDM_UNET_PREFIX}input_blocks.0.0.weight`)) return LDM_UNET_PREFIX;
  if (source.has('input_blocks.0.0.weight')) return '';
  const diffusers = source.keys().some((k) => k.startsWith('conv_in.') || k.includes('.down_blocks.0.'));
  throw new CheckpointError(
    `${source.path} has no LDM UNet (no "${LDM_UNET_PREFIX}input_blocks.0.0.weight")${diffusers ? ': its keys look like a diffusers state dict, not a single-file LDM checkpoint' : ''}`,
    'missing_key',
    `${LDM_UNET_PREFIX}input_blocks.0.0.weight`,
  );
}

/** Indices N of `<group>.N.` keys, sorted. */
function indices(w: WeightView, group: string): number[] {
  const set = new Set<number>();
  const re = new RegExp(`^${group}\\.(\\d+)\\.`);
  for (const k of w.keys()) {
    const m = re.exec(k);
    if (m) set.add(Number(m[1]));
  }
  return [...set].sort((a, b) => a - b);
}

function transformerDepthAt(w: WeightView, block: string): number {
  let depth = 0;
  while (w.has(`${block}.transformer_blocks.${depth}.attn1.to_q.weight`)) depth++;
  return depth;
}

/** Reads the UNet's architecture from tensor shapes (see the file comment). */
export function detectUnetConfig(source: WeightSource, overrides: UnetOverrides = {}): { config: LdmUnetConfig; prefix: string } {
  const prefix = detectPrefix(source, overrides.prefix);
  const w = new WeightView(source, prefix);
  const added = w.has('label_emb.0.0.weight') ? addedConditioning(source, w, overrides) : undefined;
  const convIn = w.shape('input_blocks.0.0.weight');
  const [modelChannels, inChannels] = convIn as [number, number];
  const outChannels = w.shape('out.2.weight')[0]!;
  const timeEmbedDim = w.shape('time_embed.0.weight')[0]!;

  // Walk the input blocks: res blocks (with an optional transformer) per level, a downsampler between levels.
  const levelChannels: number[] = [];
  const transformerDepth: number[] = [];
  const resPerLevel: number[] = [];
  let res = 0;
  let depth = -1;
  let width = modelChannels;
  for (const k of indices(w, 'input_blocks').filter((k) => k > 0)) {
    if (w.has(`input_blocks.${k}.0.op.weight`)) {
      levelChannels.push(width);
      transformerDepth.push(Math.max(depth, 0));
      resPerLevel.push(res);
      res = 0;
      depth = -1;
      continue;
    }
    if (!w.has(`input_blocks.${k}.0.in_layers.2.weight`)) {
      throw new CheckpointError(`input_blocks.${k} of ${source.path} is neither a ResBlock nor a downsampler`, 'unsupported', w.key(`input_blocks.${k}.0.in_layers.2.weight`));
    }
    width = w.shape(`input_blocks.${k}.0.out_layers.3.weight`)[0]!;
    res++;
    const d = w.has(`input_blocks.${k}.1.proj_in.weight`) ? transformerDepthAt(w, `input_blocks.${k}.1`) : 0;
    if (depth >= 0 && d !== depth) throw new CheckpointError(`the res blocks of one level of ${source.path} differ in transformer depth (input_blocks.${k})`, 'unsupported');
    depth = d;
  }
  levelChannels.push(width);
  transformerDepth.push(Math.max(depth, 0));
  resPerLevel.push(res);
  const numResBlocks = resPerLevel[0]!;
  if (resPerLevel.some((r) => r !== numResBlocks) || numResBlocks === 0) {
    throw new CheckpointError(`the levels of ${source.path}'s UNet have ${resPerLevel.join(', ')} res blocks: only equal counts are built`, 'unsupported');
  }
  const levels = levelChannels.length;
  const outputBlocks = indices(w, 'output_blocks');
  if (outputBlocks.length !== levels * (numResBlocks + 1)) {
    throw new CheckpointError(`${source.path} has ${outputBlocks.length} output blocks; ${levels} levels of ${numResBlocks} res blocks need ${levels * (numResBlocks + 1)}`, 'unsupported');
  }
  if (!w.has('middle_block.1.proj_in.weight')) {
    throw new CheckpointError(`${source.path}'s middle block has no transformer (middle_block.1.proj_in): not an SD-1.x/2.x UNet`, 'unsupported', w.key('middle_block.1.proj_in.weight'));
  }
  const midTransformerDepth = transformerDepthAt(w, 'middle_block.1');
  const attnBlock = indices(w, 'input_blocks').find((k) => w.has(`input_blocks.${k}.1.proj_in.weight`));
  const sample = attnBlock !== undefined ? `input_blocks.${attnBlock}.1` : 'middle_block.1';
  const contextDim = w.shape(`${sample}.transformer_blocks.0.attn2.to_k.weight`)[1]!;
  const useLinearProjection = w.shape(`${sample}.proj_in.weight`).length === 2;
  const family: LdmUnetConfig['family'] = added ? 'sdxl' : contextDim === 768 && !useLinearProjection ? 'sd1' : contextDim === 1024 && useLinearProjection ? 'sd2' : 'custom';

  let heads: number[];
  if (overrides.heads !== undefined) {
    heads = Array.isArray(overrides.heads) ? [...overrides.heads] : levelChannels.map(() => overrides.heads as number);
    if (heads.length !== levels) throw new CheckpointError(`heads override has ${heads.length} entries for ${levels} levels`, 'unsupported');
  } else if (contextDim === 768 && overrides.headDim === undefined) {
    heads = levelChannels.map(() => 8);
  } else {
    const dim = overrides.headDim ?? 64;
    heads = levelChannels.map((c) => Math.max(1, Math.floor(c / dim)));
  }
  const groups = overrides.groups ?? 32;
  for (const c of [modelChannels, ...levelChannels]) {
    if (c % groups !== 0) throw new CheckpointError(`${c} channels do not split into ${groups} GroupNorm groups: pass the groups this checkpoint was trained with (overrides.groups)`, 'unsupported');
  }
  return {
    prefix,
    config: {
      inChannels,
      outChannels,
      modelChannels,
      levelChannels,
      numResBlocks,
      transformerDepth,
      midTransformerDepth,
      contextDim,
      useLinearProjection,
      heads,
      groups,
      timeEmbedDim,
      family,
      sampleSize: overrides.sampleSize ?? (family === 'sd2' ? 96 : family === 'sdxl' ? 128 : 64),
      ...(added ? { added } : {}),
    },
  };
}

/** The width of each size id's sinusoid in SDXL-type UNets (diffusers' addition_time_embed_dim). */
const SDXL_TIME_ID_EMBED_DIM = 256;

/**
 * Splits label_emb's input into text_embeds and time_ids. The split is not in the shapes: SDXL base (2816) and
 * the refiner (2560) are known, as ComfyUI knows them by adm_in_channels; other widths need the pooled text's
 * width (the second text encoder's projection), which the single-file loader reads from the checkpoint.
 */
function addedConditioning(source: WeightSource, w: WeightView, overrides: UnetOverrides): AddedConditioning {
  const [, inputDim] = w.shape('label_emb.0.0.weight') as [number, number];
  if (!w.has('label_emb.0.2.weight')) {
    throw new CheckpointError(`${source.path}'s label_emb has no second layer (label_emb.0.2): it is not SDXL's pooled-text and size embedding`, 'unsupported', w.key('label_emb.0.2.weight'));
  }
  const known: Record<number, number> = { 2816: 1280, 2560: 1280 };
  const textEmbedsDim = overrides.added?.textEmbedsDim ?? known[inputDim];
  const timeIdsCount = textEmbedsDim === undefined ? NaN : (inputDim - textEmbedsDim) / SDXL_TIME_ID_EMBED_DIM;
  if (textEmbedsDim === undefined || !Number.isInteger(timeIdsCount) || timeIdsCount < 1) {
    throw new CheckpointError(
      `${source.path}'s label_emb takes ${inputDim} inputs, which is neither SDXL's 2816 (1280 pooled text + 6 size ids x 256) nor the refiner's 2560 (1280 + 5 x 256)` +
        (textEmbedsDim === undefined ? ': pass the pooled text width (overrides.added.textEmbedsDim)' : `, and ${textEmbedsDim} pooled-text channels leave ${inputDim - textEmbedsDim}, not a whole number of ${SDXL_TIME_ID_EMBED_DIM}-wide size ids`),
      'unsupported',
      w.key('label_emb.0.0.weight'),
    );
  }
  return { textEmbedsDim, timeIdsCount, timeEmbedDim: SDXL_TIME_ID_EMBED_DIM, inputDim };
}

/**
 * Builds the UNet graph of an LDM checkpoint (weights declared, read when written: writeBuiltModel). Throws a
 * CheckpointError naming the first missing tensor; tensors it does not use are in `keys`.
 */
export function buildLdmUnet(source: WeightSource, overrides: UnetOverrides = {}): BuiltUnet {
  const { config: cfg, prefix } = detectUnetConfig(source, overrides);
  const b = new GraphBuilder({ opset: 17 });
  const ctx: Ctx = { b, w: new WeightView(source, prefix) };
  const levels = cfg.levelChannels.length;
  const L = cfg.numResBlocks;

  const sample = b.input('sample', DT.float, ['batch_size', cfg.inChannels, 'height', 'width']);
  const timestep = b.input('timestep', DT.float, ['batch_size']);
  const context = b.input('encoder_hidden_states', DT.float, ['batch_size', 'sequence_length', cfg.contextDim]);
  // optimum's SDXL UNet inputs, in its order after encoder_hidden_states
  const textEmbeds = cfg.added ? b.input('text_embeds', DT.float, ['batch_size', cfg.added.textEmbedsDim]) : undefined;
  const timeIds = cfg.added ? b.input('time_ids', DT.float, ['batch_size', cfg.added.timeIdsCount]) : undefined;

  // Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0) = LDM's timestep_embedding: [cos(t f), sin(t f)],
  // f_i = exp(-ln(10000) i / half), of a [N] input. The frequencies are computed in float32 steps, as torch does.
  const sinusoid = (scope: string, t: string, dim: number): string => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    const c = Math.fround(-Math.log(10000));
    for (let i = 0; i < half; i++) freqs[i] = Math.fround(Math.exp(Math.fround(Math.fround(c * i) / half)));
    return b.scope(scope, () => {
      const args = b.op('Mul', [b.op('Unsqueeze', [t, b.ints([1])]), b.tensor(`${scope}.frequencies`, freqs, [1, half])]);
      return b.op('Concat', [b.op('Cos', [args]), b.op('Sin', [args])], { axis: -1 });
    });
  };
  const tEmb = sinusoid('time_proj', timestep, cfg.modelChannels);
  let temb = b.scope('time_embedding', () => {
    const h = linearGemm(ctx, tEmb, 'linear_1', 'time_embed.0');
    return linearGemm(ctx, silu(b, h, 'act'), 'linear_2', 'time_embed.2');
  });
  if (cfg.added && textEmbeds && timeIds) {
    // diffusers' text_time embedding: each time id through its own sinusoid, the row [text_embeds, ids' sinusoids]
    // through add_embedding (SGM's label_emb), added to the timestep's embedding.
    const idsEmb = sinusoid('add_time_proj', b.op('Reshape', [timeIds, b.ints([-1])]), cfg.added.timeEmbedDim);
    const row = b.op('Concat', [textEmbeds, b.op('Reshape', [idsEmb, b.ints([-1, cfg.added.timeIdsCount * cfg.added.timeEmbedDim])])], { axis: -1 });
    const aug = b.scope('add_embedding', () => {
      const h = linearGemm(ctx, row, 'linear_1', 'label_emb.0.0');
      return linearGemm(ctx, silu(b, h, 'act'), 'linear_2', 'label_emb.0.2');
    });
    temb = b.op('Add', [temb, aug]);
  }
  let tembAct: string | undefined; // silu(temb): computed once, in the first resnet, as the exporter's CSE leaves it

  const resnet = (x: string, inCh: number, key: string): { y: string; channels: number } => {
    const outCh = ctx.w.shape(`${key}.out_layers.3.weight`)[0]!;
    let h = groupNorm(ctx, x, 'norm1', `${key}.in_layers.0`, { groups: cfg.groups, eps: RESNET_EPS, channels: inCh });
    h = conv2d(ctx, silu(b, h, 'nonlinearity'), 'conv1', `${key}.in_layers.2`, { inChannels: inCh });
    tembAct ??= silu(b, temb, 'nonlinearity');
    const t = linearGemm(ctx, tembAct, 'time_emb_proj', `${key}.emb_layers.1`);
    h = b.op('Add', [h, b.op('Unsqueeze', [t, b.ints([2, 3])])]);
    h = groupNorm(ctx, h, 'norm2', `${key}.out_layers.0`, { groups: cfg.groups, eps: RESNET_EPS, channels: outCh });
    h = conv2d(ctx, silu(b, h, 'nonlinearity'), 'conv2', `${key}.out_layers.3`, { inChannels: outCh });
    const skip = ctx.w.has(`${key}.skip_connection.weight`) ? conv2d(ctx, x, 'conv_shortcut', `${key}.skip_connection`, { inChannels: inCh }) : x;
    if (skip === x && inCh !== outCh) throw new CheckpointError(`${ctx.w.key(key)} changes width ${inCh} -> ${outCh} but has no skip_connection`, 'missing_key', ctx.w.key(`${key}.skip_connection.weight`));
    return { y: b.op('Add', [skip, h]), channels: outCh };
  };

  const transformerBlock = (x: string, key: string, dim: number, heads: number): string => {
    let h = x;
    const a1 = attention(ctx, layerNorm(ctx, h, 'norm1', `${key}.norm1`, { eps: LAYER_NORM_EPS, channels: dim }), undefined, 'attn1', `${key}.attn1`, { heads, queryDim: dim });
    h = b.op('Add', [a1, h]);
    const a2 = attention(ctx, layerNorm(ctx, h, 'norm2', `${key}.norm2`, { eps: LAYER_NORM_EPS, channels: dim }), context, 'attn2', `${key}.attn2`, { heads, queryDim: dim, contextDim: cfg.contextDim });
    h = b.op('Add', [a2, h]);
    const n3 = layerNorm(ctx, h, 'norm3', `${key}.norm3`, { eps: LAYER_NORM_EPS, channels: dim });
    const ff = b.scope('ff', () => {
      const geglu = b.scope('net.0', () => {
        const proj = linear(ctx, n3, 'proj', `${key}.ff.net.0.proj`);
        const inner = ctx.w.shape(`${key}.ff.net.0.proj.weight`)[0]! / 2;
        return b.op('Mul', [sliceLast(b, proj, 0, inner), gelu(b, sliceLast(b, proj, inner, 2 * inner))]);
      });
      return linear(ctx, geglu, 'net.2', `${key}.ff.net.2`);
    });
    return b.op('Add', [ff, h]);
  };

  const spatialTransformer = (x: string, channels: number, key: string, depth: number, heads: number): string => {
    const inner = ctx.w.shape(`${key}.proj_in.weight`)[0]!;
    let h = groupNorm(ctx, x, 'norm', `${key}.norm`, { groups: cfg.groups, eps: TRANSFORMER_GN_EPS, channels });
    const tokensOf = (t: string, width: number) => b.op('Reshape', [b.op('Transpose', [t], { perm: [0, 2, 3, 1] }), b.ints([0, -1, width])]);
    const gridOf = (t: string, width: number) =>
      b.op('Transpose', [b.op('Reshape', [t, b.op('Concat', [b.ints([0]), b.op('Shape', [x], { start: 2, end: 4 }), b.ints([width])], { axis: 0 })])], { perm: [0, 3, 1, 2] });
    if (cfg.useLinearProjection) h = linear(ctx, tokensOf(h, channels), 'proj_in', `${key}.proj_in`);
    else h = tokensOf(conv2d(ctx, h, 'proj_in', `${key}.proj_in`, { inChannels: channels }), inner);
    for (let t = 0; t < depth; t++) h = b.scope(`transformer_blocks.${t}`, () => transformerBlock(h, `${key}.transformer_blocks.${t}`, inner, heads));
    if (cfg.useLinearProjection) h = gridOf(linear(ctx, h, 'proj_out', `${key}.proj_out`), channels);
    else h = conv2d(ctx, gridOf(h, inner), 'proj_out', `${key}.proj_out`, { inChannels: inner });
    return b.op('Add', [h, x]);
  };

  // conv_in, then the down blocks, keeping every skip.
  let x = conv2d(ctx, sample, 'conv_in', 'input_blocks.0.0', { inChannels: cfg.inChannels });
  let channels = cfg.modelChannels;
  const skips: Array<{ t: string; channels: number }> = [{ t: x, channels }];
  for (let i = 0; i < levels; i++) {
    b.scope(`down_blocks.${i}`, () => {
      for (let j = 0; j < L; j++) {
        const k = 1 + i * (L + 1) + j;
        const r = b.scope(`resnets.${j}`, () => resnet(x, channels, `input_blocks.${k}.0`));
        x = r.y;
        channels = r.channels;
        if (cfg.transformerDepth[i]! > 0) x = b.scope(`attentions.${j}`, () => spatialTransformer(x, channels, `input_blocks.${k}.1`, cfg.transformerDepth[i]!, cfg.heads[i]!));
        skips.push({ t: x, channels });
      }
      if (i < levels - 1) {
        x = b.scope('downsamplers.0', () => conv2d(ctx, x, 'conv', `input_blocks.${(i + 1) * (L + 1)}.0.op`, { stride: 2, padding: 1, inChannels: channels }));
        skips.push({ t: x, channels });
      }
    });
  }
  b.scope('mid_block', () => {
    x = b.scope('resnets.0', () => resnet(x, channels, 'middle_block.0')).y;
    x = b.scope('attentions.0', () => spatialTransformer(x, channels, 'middle_block.1', cfg.midTransformerDepth, cfg.heads[levels - 1]!));
    x = b.scope('resnets.1', () => resnet(x, channels, 'middle_block.2')).y;
  });
  for (let i = 0; i < levels; i++) {
    const level = levels - 1 - i;
    b.scope(`up_blocks.${i}`, () => {
      for (let j = 0; j <= L; j++) {
        const k = i * (L + 1) + j;
        const skip = skips.pop()!;
        x = b.op('Concat', [x, skip.t], { axis: 1 });
        const r = b.scope(`resnets.${j}`, () => resnet(x, channels + skip.channels, `output_blocks.${k}.0`));
        x = r.y;
        channels = r.channels;
        const hasAttn = ctx.w.has(`output_blocks.${k}.1.proj_in.weight`);
        if (hasAttn !== cfg.transformerDepth[level]! > 0) {
          throw new CheckpointError(`output_blocks.${k} ${hasAttn ? 'has' : 'lacks'} a transformer that level ${level} of the input side ${hasAttn ? 'lacks' : 'has'}`, 'unsupported', ctx.w.key(`output_blocks.${k}.1.proj_in.weight`));
        }
        if (hasAttn) x = b.scope(`attentions.${j}`, () => spatialTransformer(x, channels, `output_blocks.${k}.1`, transformerDepthAt(ctx.w, `output_blocks.${k}.1`), cfg.heads[level]!));
      }
      if (i < levels - 1) {
        const key = `output_blocks.${i * (L + 1) + L}.${cfg.transformerDepth[level]! > 0 ? 2 : 1}.conv`;
        // Nearest 2x, to the size of the skip it meets next (diffusers' upsample_size, ComfyUI's output_shape):
        // the same as scale 2 for latents that divide by 2^(levels-1), and right for the others.
        const target = skips[skips.length - 1]!.t;
        x = b.scope('upsamplers.0', () => {
          const size = b.op('Concat', [b.op('Shape', [x], { start: 0, end: 2 }), b.op('Shape', [target], { start: 2, end: 4 })], { axis: 0 });
          const up = b.op('Resize', [x, '', '', size], { coordinate_transformation_mode: 'asymmetric', mode: 'nearest', nearest_mode: 'floor' });
          return conv2d(ctx, up, 'conv', key, { inChannels: channels });
        });
      }
    });
  }
  x = groupNorm(ctx, x, 'conv_norm_out', 'out.0', { groups: cfg.groups, eps: RESNET_EPS, channels });
  x = conv2d(ctx, silu(b, x, 'conv_act'), 'conv_out', 'out.2', { inChannels: channels });
  b.output(x, 'out_sample', DT.float, ['batch_size', cfg.outChannels, 'height', 'width']);

  const built = b.build({ docString: `UNet built by @gategraph/onnx-graph from ${source.path}` });
  return { built, config: cfg, diffusersConfig: diffusersConfigOf(cfg), keys: classifyKeys(source.keys(), source.taken(), 'unet', prefix === LDM_UNET_PREFIX ? undefined : prefix) };
}

/** The diffusers UNet2DConditionModel config.json of a detected architecture. */
export function diffusersConfigOf(cfg: LdmUnetConfig): Record<string, unknown> {
  const attn = cfg.transformerDepth.map((d) => d > 0);
  const sameHeads = cfg.heads.every((h) => h === cfg.heads[0]);
  return {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: '0.32.2',
    act_fn: 'silu',
    // diffusers' attention_head_dim is the number of heads for these UNets (a historical misnomer)
    attention_head_dim: sameHeads && cfg.family !== 'sd2' ? cfg.heads[0] : cfg.heads,
    block_out_channels: cfg.levelChannels,
    center_input_sample: false,
    cross_attention_dim: cfg.contextDim,
    down_block_types: attn.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: cfg.inChannels,
    layers_per_block: cfg.numResBlocks,
    mid_block_scale_factor: 1,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: RESNET_EPS,
    norm_num_groups: cfg.groups,
    out_channels: cfg.outChannels,
    sample_size: cfg.sampleSize,
    transformer_layers_per_block: new Set(cfg.transformerDepth.filter((d) => d > 0)).size <= 1 ? Math.max(1, ...cfg.transformerDepth) : cfg.transformerDepth,
    up_block_types: [...attn].reverse().map((a) => (a ? 'CrossAttnUpBlock2D' : 'UpBlock2D')),
    upcast_attention: cfg.family === 'sd2',
    use_linear_projection: cfg.useLinearProjection,
    ...(cfg.added
      ? {
          addition_embed_type: 'text_time',
          addition_time_embed_dim: cfg.added.timeEmbedDim,
          projection_class_embeddings_input_dim: cfg.added.inputDim,
          // optimum writes these for SDXL exports (its ONNX config reads them); the refiner's 5th id is the aesthetic score
          requires_aesthetics_score: cfg.added.timeIdsCount === 5,
          text_encoder_projection_dim: cfg.added.textEmbedsDim,
        }
      : {}),
  };
}
