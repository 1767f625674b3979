// The CLIP text encoders of SD-1.x / SD-2.x single-file checkpoints, built as transformers' CLIPTextModel exported
// by optimum (`input_ids` int64 [batch_size, sequence_length] -> `last_hidden_state`, `pooler_output`; nodes in
// transformers' module scopes, `/text_model/encoder/layers.3/self_attn/q_proj/MatMul`), so discoverClipText and
// deriveClipText (clip skip, textual inversion) work on a built graph as on an exported one.
//
// Two key layouts, both mapped onto transformers' module names:
// - transformers' own names (SD-1.x: CLIP ViT-L/14 under `cond_stage_model.transformer.text_model.`; older files
//   without `text_model.`; standalone text-encoder files with `text_model.` at the root or no prefix at all);
// - OpenCLIP (SD-2.x: ViT-H/14 under `cond_stage_model.model.`):
//     token_embedding.weight, positional_embedding   embeddings.token_embedding.weight, .position_embedding.weight
//     transformer.resblocks.N.ln_1 / ln_2            encoder.layers.N.layer_norm1 / layer_norm2
//     transformer.resblocks.N.attn.in_proj_*         self_attn.{q,k,v}_proj (rows q, k, v of the fused tensor)
//     transformer.resblocks.N.attn.out_proj          self_attn.out_proj
//     transformer.resblocks.N.mlp.c_fc / c_proj      mlp.fc1 / mlp.fc2
//     ln_final                                       final_layer_norm
//   Built as diffusers' converted SD-2 text encoder: all resblocks but the last (23 of 24), since SD-2 conditions on
//   the penultimate layer through the final norm (LDM's FrozenOpenCLIPEmbedder layer="penultimate", ComfyUI's
//   default for SD-2); the last resblock, text_projection and logit_scale are reported as ignored, with why.
// The activation is quick GELU for OpenAI's CLIP and exact GELU for OpenCLIP's towers (OPEN_CLIP_MIN_LAYERS). Heads default
// to width / 64 (both published models); narrower test checkpoints pass `heads`.
//
// SDXL's encoders (`conditioner.embedders.0.transformer.` CLIP ViT-L/14, `conditioner.embedders.1.model.` OpenCLIP
// ViT-bigG/14; the refiner's bigG at `conditioner.embedders.0.model.`) are built as optimum exports them for SDXL:
// `hiddenStates` adds every layer's raw output (`hidden_states.0..L`, SDXL conditions on the penultimate one, before
// the final norm), and `withProjection` builds all layers and makes the graph transformers'
// CLIPTextModelWithProjection: `text_embeds` (the pooled output through text_projection, SDXL's pooled
// conditioning) first, then `last_hidden_state`.
import { CheckpointError } from './checkpoint.ts';
import { DT, GraphBuilder, type BuiltGraph } from './builder.ts';
import { classifyKeys, type KeyReport } from './ldm-keys.ts';
import { attention, gelu, layerNorm, linear, quickGelu, type AttentionOptions, type Ctx } from './layers.ts';
import { WeightView, type WeightSource } from './weights.ts';

export interface ClipTextOverrides {
  /**
   * Key prefix of the text encoder's tensors: where `text_model.` (or transformers' `embeddings.`, or OpenCLIP's
   * `token_embedding.`) starts. Default: detected (`cond_stage_model.transformer.`, `cond_stage_model.model.`, '').
   */
  prefix?: string;
  /** Attention heads (default width / 64: 12 for ViT-L/14, 16 for ViT-H/14). */
  heads?: number;
  /** Encoder layers to build (default: all for the transformers layout, all but the last for OpenCLIP without projection). */
  layers?: number;
  /** Also output every layer's raw hidden state, `hidden_states.0..L` (optimum's SDXL text encoder exports). */
  hiddenStates?: boolean;
  /** Output `text_embeds` (the pooled output through text_projection) instead of `pooler_output`: SDXL's second encoder. */
  withProjection?: boolean;
  /** The MLP's activation (default: told from the layout and depth, see OPEN_CLIP_MIN_LAYERS). */
  hiddenAct?: 'quick_gelu' | 'gelu';
}

/**
 * OpenAI's CLIP ViT-L/14 has 12 layers and quick GELU; the OpenCLIP towers (ViT-H/14: 24, ViT-bigG/14: 32) exact
 * GELU. In transformers' names (ComfyUI's clip_g.safetensors, converted SD-2 encoders) only the depth tells them
 * apart, as ComfyUI's detect_te_model tells them (a 23rd layer: ViT-H; a 31st: ViT-bigG).
 */
const OPEN_CLIP_MIN_LAYERS = 23;

export interface ClipTextConfig {
  layout: 'transformers' | 'open_clip';
  /** 'sd1' for ViT-L/14 (768 wide, transformers layout), 'sd2' for ViT-H/14 (1024, OpenCLIP), else 'custom'. */
  family: 'sd1' | 'sd2' | 'custom';
  /** The key prefix the layout's names follow (e.g. 'cond_stage_model.transformer.text_model.'). */
  prefix: string;
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  /** Encoder layers built. */
  layers: number;
  /** Encoder layers the checkpoint holds. */
  storedLayers: number;
  vocabSize: number;
  maxPositions: number;
  hiddenAct: 'quick_gelu' | 'gelu';
  /** Width of the text_projection when present (built only withProjection), else the hidden size. */
  projectionDim: number;
  /** The checkpoint key of text_projection, when the graph applies it (OpenCLIP [D, P], transformers' Linear [P, D]). */
  projectionKey?: string;
  /** The graph outputs every layer's hidden state (`hidden_states.0..layers`). */
  hiddenStates: boolean;
}

export interface BuiltClipText {
  built: BuiltGraph;
  config: ClipTextConfig;
  /** transformers' CLIPTextConfig config.json for the graph (what the engine reads beside model.onnx). */
  diffusersConfig: Record<string, unknown>;
  keys: KeyReport;
}

const LAYER_NORM_EPS = 1e-5;

/** Where each part of the encoder lies in a layout (short keys, under the prefix). */
interface LayoutNames {
  token: string;
  position: string;
  layers: string;
  ln1: string;
  ln2: string;
  fc1: string;
  fc2: string;
  attn: string;
  final: string;
}

const NAMES: Readonly<Record<ClipTextConfig['layout'], LayoutNames>> = {
  transformers: {
    token: 'embeddings.token_embedding.weight',
    position: 'embeddings.position_embedding.weight',
    layers: 'encoder.layers',
    ln1: 'layer_norm1',
    ln2: 'layer_norm2',
    fc1: 'mlp.fc1',
    fc2: 'mlp.fc2',
    attn: 'self_attn',
    final: 'final_layer_norm',
  },
  open_clip: {
    token: 'token_embedding.weight',
    position: 'positional_embedding',
    layers: 'transformer.resblocks',
    ln1: 'ln_1',
    ln2: 'ln_2',
    fc1: 'mlp.c_fc',
    fc2: 'mlp.c_proj',
    attn: 'attn',
    final: 'ln_final',
  },
};

/** Prefixes tried in order when none is given: LDM SD-1 (current and pre-`text_model.` transformers), SD-2, standalone. */
const SEARCH: ReadonlyArray<readonly [string, ClipTextConfig['layout']]> = [
  ['cond_stage_model.transformer.text_model.', 'transformers'],
  ['cond_stage_model.transformer.', 'transformers'],
  ['cond_stage_model.model.', 'open_clip'],
  ['text_model.', 'transformers'],
  ['', 'transformers'],
  ['', 'open_clip'],
];

function detectLayout(source: WeightSource, given?: string): { prefix: string; layout: ClipTextConfig['layout'] } {
  const candidates: ReadonlyArray<readonly [string, ClipTextConfig['layout']]> =
    given === undefined ? SEARCH : [[`${given}text_model.`, 'transformers'], [given, 'transformers'], [given, 'open_clip']];
  for (const [prefix, layout] of candidates) {
    if (source.has(prefix + NAMES[layout].token)) return { prefix, layout };
  }
  const expected = `${given ?? 'cond_stage_model.transformer.'}text_model.${NAMES.transformers.token}`;
  const sdxl = given === undefined && source.keys().some((k) => k.startsWith('conditioner.'));
  throw new CheckpointError(
    `${source.path} has no CLIP text encoder: no "${expected}" (SD-1.x, transformers names) nor "${given ?? 'cond_stage_model.model.'}${NAMES.open_clip.token}" (SD-2.x, OpenCLIP names)` +
      (sdxl ? ': its `conditioner.` keys are SDXL\'s text encoders, built one at a time with their prefix (conditioner.embedders.0.transformer., conditioner.embedders.1.model.)' : ''),
    sdxl ? 'unsupported' : 'missing_key',
    expected,
  );
}

/** Numbers N of `<group>.N.` keys, checked to run 0..n-1. */
function layerCount(w: WeightView, group: string, probe: string): number {
  const found = new Set<number>();
  const re = new RegExp(`^${group.replace(/\./g, '\\.')}\\.(\\d+)\\.`);
  for (const k of w.keys()) {
    const m = re.exec(k);
    if (m) found.add(Number(m[1]));
  }
  const n = found.size ? Math.max(...found) + 1 : 0;
  for (let i = 0; i < n; i++) {
    if (!found.has(i)) throw new CheckpointError(`the text encoder of ${w.source.path} has ${group}.${n - 1} but no ${group}.${i}`, 'missing_key', w.key(`${group}.${i}.${probe}`));
  }
  if (n === 0) throw new CheckpointError(`the text encoder of ${w.source.path} has no ${w.key(group)}.0`, 'missing_key', w.key(`${group}.0.${probe}`));
  return n;
}

/** Reads the encoder's architecture from the tensors' shapes. */
export function detectClipTextConfig(source: WeightSource, overrides: ClipTextOverrides = {}): ClipTextConfig {
  const { prefix, layout } = detectLayout(source, overrides.prefix);
  const w = new WeightView(source, prefix);
  const n = NAMES[layout];
  const [vocabSize, hiddenSize] = w.shape(n.token) as [number, number];
  const maxPositions = w.shape(n.position)[0]!;
  const storedLayers = layerCount(w, n.layers, `${n.ln1}.weight`);
  const intermediateSize = w.shape(`${n.layers}.0.${n.fc1}.weight`)[0]!;
  // OpenCLIP keeps text_projection beside its names; transformers' CLIPTextModelWithProjection beside text_model.
  const projectionKey = layout === 'open_clip' ? `${prefix}text_projection` : `${prefix.replace(/text_model\.$/, '')}text_projection.weight`;
  const projection = source.has(projectionKey) ? source.shape(projectionKey) : undefined;
  if (overrides.withProjection && projection?.length !== 2) {
    throw new CheckpointError(`the text encoder at ${prefix} of ${source.path} has no text_projection (${projectionKey}), which SDXL's pooled conditioning needs`, 'missing_key', projectionKey);
  }
  const layers = overrides.layers ?? (layout === 'open_clip' && !overrides.withProjection ? storedLayers - 1 : storedLayers);
  if (!(Number.isInteger(layers) && layers >= 1 && layers <= storedLayers)) {
    throw new CheckpointError(`the text encoder of ${source.path} has ${storedLayers} layers; ${layers} cannot be built`, 'unsupported');
  }
  const heads = overrides.heads ?? hiddenSize / 64;
  if (!(Number.isInteger(heads) && heads >= 1 && hiddenSize % heads === 0)) {
    throw new CheckpointError(`the text encoder is ${hiddenSize} wide, which ${overrides.heads ? `${heads} heads do not split` : 'is not a multiple of 64 channels per head'}: pass the heads it was trained with (overrides.heads)`, 'unsupported');
  }
  const family = layout === 'transformers' && hiddenSize === 768 ? 'sd1' : layout === 'open_clip' && hiddenSize === 1024 ? 'sd2' : 'custom';
  return {
    layout,
    family,
    prefix,
    hiddenSize,
    intermediateSize,
    heads,
    layers,
    storedLayers,
    vocabSize,
    maxPositions,
    hiddenAct: overrides.hiddenAct ?? (layout === 'open_clip' || storedLayers >= OPEN_CLIP_MIN_LAYERS ? 'gelu' : 'quick_gelu'),
    projectionDim: projection?.length === 2 ? (layout === 'open_clip' ? projection[1]! : projection[0]!) : hiddenSize,
    ...(overrides.withProjection ? { projectionKey } : {}),
    hiddenStates: overrides.hiddenStates === true,
  };
}

/**
 * Builds the text encoder graph of a checkpoint (weights declared, read when written: writeBuiltModel). Throws a
 * CheckpointError naming the first missing tensor; tensors it does not use are in `keys`.
 */
export function buildClipText(source: WeightSource, overrides: ClipTextOverrides = {}): BuiltClipText {
  const cfg = detectClipTextConfig(source, overrides);
  const n = NAMES[cfg.layout];
  const D = cfg.hiddenSize;
  const b = new GraphBuilder({ opset: 17 });
  const ctx: Ctx = { b, w: new WeightView(source, cfg.prefix) };
  const ids = b.input('input_ids', DT.int64, ['batch_size', 'sequence_length']);

  const attentionOptions = (mask: string): AttentionOptions => ({
    heads: cfg.heads,
    queryDim: D,
    qkvBias: true,
    names: { q: 'q_proj', k: 'k_proj', v: 'v_proj', out: 'out_proj' },
    mask,
    ...(cfg.layout === 'open_clip' ? { fused: { weight: 'in_proj_weight', bias: 'in_proj_bias' } } : {}),
  });

  const layer = (x: string, key: string, mask: string): string => {
    const a = attention(ctx, layerNorm(ctx, x, 'layer_norm1', `${key}.${n.ln1}`, { eps: LAYER_NORM_EPS, channels: D }), undefined, 'self_attn', `${key}.${n.attn}`, attentionOptions(mask));
    const h = b.op('Add', [x, a]);
    const normed = layerNorm(ctx, h, 'layer_norm2', `${key}.${n.ln2}`, { eps: LAYER_NORM_EPS, channels: D });
    const mlp = b.scope('mlp', () => {
      const up = linear(ctx, normed, 'fc1', `${key}.${n.fc1}`, { shape: [cfg.intermediateSize, D] });
      const act = b.scope('activation_fn', () => (cfg.hiddenAct === 'gelu' ? gelu(b, up) : quickGelu(b, up)));
      return linear(ctx, act, 'fc2', `${key}.${n.fc2}`, { shape: [D, cfg.intermediateSize] });
    });
    return b.op('Add', [h, mlp]);
  };

  const states: string[] = [];
  const { last, pooled } = b.scope('text_model', () => {
    // The sequence length comes from input_ids (not from the embeddings), so a textual-inversion variant that feeds
    // the token embeddings (deriveClipText) keeps the mask and the pooled position.
    const length = b.op('Shape', [ids], { start: 1, end: 2 });
    let x = b.scope('embeddings', () => {
      const token = b.scope('token_embedding', () => b.op('Gather', [b.weight(b.paramName('weight'), ctx.w.take(n.token, {}, [cfg.vocabSize, D])), ids]));
      // Positions 0..S-1 are the first S rows: a Slice of the table does what Gather(position_ids) does.
      const position = b.scope('position_embedding', () =>
        b.op('Slice', [b.weight(b.paramName('weight'), ctx.w.take(n.position, {}, [cfg.maxPositions, D])), b.ints([0]), length, b.ints([0])]),
      );
      return b.op('Add', [token, position]);
    });
    // Causal mask, added to the scores: 0 on and below the diagonal, -1e9 above (any value that makes exp() 0 in
    // float32 gives the same result as transformers' finfo.min), cut to [S, S].
    const P = cfg.maxPositions;
    const maskValues = new Float32Array(P * P);
    for (let i = 0; i < P; i++) for (let j = i + 1; j < P; j++) maskValues[i * P + j] = -1e9;
    const fullMask = b.tensor(b.paramName('causal_mask'), maskValues, [P, P]);
    const mask = b.op('Slice', [fullMask, b.ints([0, 0]), b.op('Concat', [length, length], { axis: 0 }), b.ints([0, 1])]);
    states.push(x);
    b.scope('encoder', () => {
      for (let i = 0; i < cfg.layers; i++) {
        x = b.scope(`layers.${i}`, () => layer(x, `${n.layers}.${i}`, mask));
        states.push(x);
      }
    });
    const last = layerNorm(ctx, x, 'final_layer_norm', n.final, { eps: LAYER_NORM_EPS, channels: D });
    // pooler_output: the final state at the end-of-text token, found as the largest id (CLIP's EOS is the last id
    // of its vocabulary), as transformers does for these configs. ArgMax runs on int32, as the export casts.
    const eos = b.op('ArgMax', [b.op('Cast', [ids], { to: DT.int32 })], { axis: -1, keepdims: 1 });
    return { last, pooled: b.op('GatherND', [last, eos], { batch_dims: 1 }) };
  });
  if (cfg.projectionKey) {
    // OpenCLIP stores [D, P] (x @ projection), transformers a Linear weight [P, D]: both become x @ [D, P].
    const stored = source.shape(cfg.projectionKey);
    const projected = b.scope('text_projection', () =>
      cfg.layout === 'open_clip'
        ? b.op('MatMul', [pooled, b.weight(b.paramName('weight'), source.take(cfg.projectionKey!, {}, stored))])
        : b.op('MatMul', [pooled, b.weight(b.paramName('weight'), source.take(cfg.projectionKey!, { transpose: true }, stored))]),
    );
    b.output(projected, 'text_embeds', DT.float, ['batch_size', cfg.projectionDim]);
    b.output(last, 'last_hidden_state', DT.float, ['batch_size', 'sequence_length', D]);
  } else {
    b.output(last, 'last_hidden_state', DT.float, ['batch_size', 'sequence_length', D]);
    b.output(pooled, 'pooler_output', DT.float, ['batch_size', D]);
  }
  if (cfg.hiddenStates) states.forEach((t, i) => b.output(b.op('Identity', [t]), `hidden_states.${i}`, DT.float, ['batch_size', 'sequence_length', D]));

  const built = b.build({ docString: `CLIP text encoder built by @gategraph/onnx-graph from ${source.path}` });
  return { built, config: cfg, diffusersConfig: clipTextConfigJson(cfg), keys: keyReport(source, cfg) };
}

/** classifyKeys, with the tensors left out on purpose moved from `unknown` to `ignored`. */
function keyReport(source: WeightSource, cfg: ClipTextConfig): KeyReport {
  const ownPrefix = cfg.prefix.startsWith('cond_stage_model.') ? undefined : cfg.prefix;
  const report = classifyKeys(source.keys(), source.taken(), 'text_encoder', ownPrefix);
  const n = NAMES[cfg.layout];
  const skipped = new RegExp(`^${(cfg.prefix + n.layers).replace(/\./g, '\\.')}\\.(\\d+)\\.`);
  const why = (key: string): string | undefined => {
    const m = skipped.exec(key);
    if (m && Number(m[1]) >= cfg.layers) {
      return cfg.layout === 'open_clip' && cfg.layers === cfg.storedLayers - 1
        ? `OpenCLIP's last layer (${cfg.storedLayers} stored): diffusers' SD-2 text encoder stops at layer ${cfg.layers} and ComfyUI's default 'penultimate' layer reads the same output, so SD-2's conditioning never uses it`
        : `encoder layer ${m[1]} is past the ${cfg.layers} layers built (overrides.layers)`;
    }
    if (cfg.layout !== 'open_clip') return undefined;
    if (key === `${cfg.prefix}text_projection`) return "OpenCLIP's projection of the pooled output into the image-text space: SD-2 conditions on the hidden states, and diffusers' CLIPTextModel has none";
    if (key === `${cfg.prefix}logit_scale`) return "CLIP's contrastive-training temperature: no part of text encoding";
    return undefined;
  };
  // SDXL: the other embedder's keys belong to the other text encoder, built on its own.
  const embedder = /^conditioner\.embedders\.(\d+)\./.exec(cfg.prefix);
  const unknown: string[] = [];
  for (const key of report.unknown) {
    const reason = why(key);
    const other = embedder && key.startsWith('conditioner.embedders.') && !key.startsWith(embedder[0]);
    if (reason) report.ignored.push({ key, reason });
    else if (other) {
      const owner = embedder[1] === '0' ? 'text_encoder_2' : 'text_encoder';
      report.otherComponents[owner] = (report.otherComponents[owner] ?? 0) + 1;
    } else unknown.push(key);
  }
  report.unknown = unknown;
  report.ignored.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return report;
}

/** transformers' CLIPTextConfig (config.json) of the built graph, as diffusers' SD-1.x / SD-2.x folders ship it. */
export function clipTextConfigJson(cfg: ClipTextConfig): Record<string, unknown> {
  return {
    architectures: [cfg.projectionKey ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    attention_dropout: 0,
    bos_token_id: 0,
    dropout: 0,
    // 2 (transformers' legacy default) selects the argmax-of-ids pooling the graph does
    eos_token_id: 2,
    hidden_act: cfg.hiddenAct,
    hidden_size: cfg.hiddenSize,
    initializer_factor: 1,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediateSize,
    layer_norm_eps: LAYER_NORM_EPS,
    max_position_embeddings: cfg.maxPositions,
    model_type: 'clip_text_model',
    num_attention_heads: cfg.heads,
    num_hidden_layers: cfg.layers,
    pad_token_id: 1,
    projection_dim: cfg.projectionDim,
    torch_dtype: 'float32',
    vocab_size: cfg.vocabSize,
  };
}
