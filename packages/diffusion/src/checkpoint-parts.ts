/**
 * The parts of a single-file checkpoint told from its safetensors header (names, dtypes, shapes): text encoders,
 * VAE, and the files that are not checkpoints (LoRAs, textual-inversion embeddings). checkpoint-family.ts puts
 * them together; the facts come from ComfyUI (comfy/supported_models.py's process_clip_state_dict prefixes,
 * comfy/sd.py's VAE class, comfy/lora.py and comfy/weight_adapter/*) and the layouts of the files themselves.
 */

/** One tensor of a header: what detection reads. */
export interface TensorHeaderEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** Reads small tensors as float32, for the few decisions that need values. */
export type Float32Reader = (names: readonly string[]) => Float32Array[];

/** A header's names, sorted for prefix queries. */
export class Header {
  readonly sorted: string[];
  readonly #map: Map<string, TensorHeaderEntry>;

  constructor(entries: readonly TensorHeaderEntry[]) {
    this.#map = new Map(entries.map((e) => [e.name, e]));
    this.sorted = [...this.#map.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.sorted.length;
  }

  has(name: string): boolean {
    return this.#map.has(name);
  }

  entry(name: string): TensorHeaderEntry | undefined {
    return this.#map.get(name);
  }

  shape(name: string): readonly number[] | undefined {
    return this.#map.get(name)?.shape;
  }

  /** Dimension `i` of tensor `name` (negative counts from the end), undefined when absent. */
  dim(name: string, i: number): number | undefined {
    const s = this.#map.get(name)?.shape;
    if (!s) return undefined;
    return s[i < 0 ? s.length + i : i];
  }

  #lowerBound(prefix: string): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  hasPrefix(prefix: string): boolean {
    return this.sorted[this.#lowerBound(prefix)]?.startsWith(prefix) ?? false;
  }

  withPrefix(prefix: string): string[] {
    const out: string[] = [];
    for (let i = this.#lowerBound(prefix); i < this.sorted.length && this.sorted[i]!.startsWith(prefix); i++) out.push(this.sorted[i]!);
    return out;
  }

  /** ComfyUI's count_blocks: how many of prefix(0), prefix(1), ... start some key, stopping at the first absent. */
  countBlocks(prefix: (n: number) => string): number {
    let n = 0;
    while (this.hasPrefix(prefix(n))) n++;
    return n;
  }

  /** Elements of every tensor under `prefix`. */
  parameters(prefix: string): number {
    let n = 0;
    for (const k of this.withPrefix(prefix)) n += this.#map.get(k)!.shape.reduce((a, d) => a * d, 1);
    return n;
  }

  /** The dtype holding the most elements under `prefix` (ComfyUI's weight_dtype counts the same way). */
  dominantDtype(prefix: string): string | undefined {
    const by = new Map<string, number>();
    for (const k of this.withPrefix(prefix)) {
      const e = this.#map.get(k)!;
      by.set(e.dtype, (by.get(e.dtype) ?? 0) + e.shape.reduce((a, d) => a * d, 1));
    }
    let best: string | undefined;
    for (const [d, n] of by) if (best === undefined || n > by.get(best)!) best = d;
    return best;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Text encoders

export interface TextEncoderInfo {
  /**
   * 'clip-hf': transformers' CLIPTextModel names (`text_model.encoder.layers.N.self_attn.q_proj`), as SD-1.x
   * checkpoints keep CLIP ViT-L/14 under `cond_stage_model.transformer.`; 'openclip': open_clip's names
   * (`transformer.resblocks.N.attn.in_proj_weight`, q,k,v in one [3W, W] tensor), as SD-2.x keeps OpenCLIP ViT-H/14
   * under `cond_stage_model.model.` and SDXL ViT-bigG/14 under `conditioner.embedders.1.model.`; 't5': a T5 encoder.
   */
  readonly layout: 'clip-hf' | 'openclip' | 't5';
  /** Prefix of the encoder's tensors, e.g. 'cond_stage_model.transformer.text_model.'. */
  readonly prefix: string;
  /** 'CLIP ViT-L/14', 'OpenCLIP ViT-H/14', 'OpenCLIP ViT-bigG/14', 'T5-XXL', or a generic name with the width. */
  readonly name: string;
  readonly layers: number;
  /** Hidden width (the context dim a UNet's cross-attention takes). */
  readonly width: number;
  /** width / 64: CLIP and OpenCLIP text towers use 64-dim heads (the file does not record heads). */
  readonly heads: number | null;
  /** Width of the MLP's hidden layer. */
  readonly mlpWidth: number | null;
  readonly vocabSize: number | null;
  /** Learned positions (77 for CLIP); null for T5 (relative positions). */
  readonly positions: number | null;
  /** Output width of the text projection when the file has one, else null. */
  readonly projection: number | null;
  /** Elements of the encoder's tensors. */
  readonly parameters: number;
  readonly dtype: string | undefined;
}

/** Every text encoder in the header, found by its layout wherever it sits (vision towers excluded). */
export function findTextEncoders(h: Header): TextEncoderInfo[] {
  const out: TextEncoderInfo[] = [];
  const seen = new Set<string>();
  for (const key of h.sorted) {
    let m = /^(.*?)encoder\.layers\.0\.self_attn\.q_proj\.weight$/.exec(key);
    if (m) {
      const root = m[1]!; // '...text_model.' or the old transformers layout without it
      if (seen.has(root) || /vision_model\.$|visual\.$/.test(root) || !h.has(`${root}embeddings.token_embedding.weight`)) continue;
      seen.add(root);
      const width = h.dim(`${root}embeddings.token_embedding.weight`, 1)!;
      const layers = h.countBlocks((n) => `${root}encoder.layers.${n}.`);
      const owner = root.endsWith('text_model.') ? root.slice(0, -'text_model.'.length) : root;
      const projection = h.dim(`${owner}text_projection.weight`, 0) ?? null;
      out.push({
        layout: 'clip-hf',
        prefix: root,
        name: clipName(width, layers, 'clip-hf'),
        layers,
        width,
        heads: width % 64 === 0 ? width / 64 : null,
        mlpWidth: h.dim(`${root}encoder.layers.0.mlp.fc1.weight`, 0) ?? null,
        vocabSize: h.dim(`${root}embeddings.token_embedding.weight`, 0) ?? null,
        positions: h.dim(`${root}embeddings.position_embedding.weight`, 0) ?? null,
        projection,
        parameters: h.parameters(owner),
        dtype: h.dominantDtype(root),
      });
      continue;
    }
    m = /^(.*?)transformer\.resblocks\.0\.attn\.in_proj_weight$/.exec(key);
    if (m) {
      const root = m[1]!;
      if (seen.has(root) || /visual\.$/.test(root) || !h.has(`${root}token_embedding.weight`)) continue;
      seen.add(root);
      const width = h.dim(`${root}token_embedding.weight`, 1)!;
      const layers = h.countBlocks((n) => `${root}transformer.resblocks.${n}.`);
      out.push({
        layout: 'openclip',
        prefix: root,
        name: clipName(width, layers, 'openclip'),
        layers,
        width,
        heads: width % 64 === 0 ? width / 64 : null,
        mlpWidth: h.dim(`${root}transformer.resblocks.0.mlp.c_fc.weight`, 0) ?? null,
        vocabSize: h.dim(`${root}token_embedding.weight`, 0) ?? null,
        positions: h.dim(`${root}positional_embedding`, 0) ?? null,
        projection: h.dim(`${root}text_projection`, 1) ?? null,
        parameters: h.parameters(root),
        dtype: h.dominantDtype(root),
      });
      continue;
    }
    m = /^(.*?)encoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight$/.exec(key);
    if (m) {
      const root = m[1]!;
      if (seen.has(root)) continue;
      seen.add(root);
      const width = h.dim(key, 1)!;
      const inner = h.dim(key, 0)!;
      out.push({
        layout: 't5',
        prefix: root,
        name: width === 4096 ? 'T5-XXL' : `T5 encoder (width ${width})`,
        layers: h.countBlocks((n) => `${root}encoder.block.${n}.`),
        width,
        heads: inner % 64 === 0 ? inner / 64 : null,
        mlpWidth: h.dim(`${root}encoder.block.0.layer.1.DenseReluDense.wi_0.weight`, 0) ?? h.dim(`${root}encoder.block.0.layer.1.DenseReluDense.wi.weight`, 0) ?? null,
        vocabSize: h.dim(`${root}shared.weight`, 0) ?? null,
        positions: null,
        projection: null,
        parameters: h.parameters(root),
        dtype: h.dominantDtype(root),
      });
    }
  }
  return out;
}

function clipName(width: number, layers: number, layout: 'clip-hf' | 'openclip'): string {
  if (width === 768 && layers === 12) return 'CLIP ViT-L/14';
  if (width === 1024 && layers === 24) return 'OpenCLIP ViT-H/14';
  if (width === 1280 && layers === 32) return 'OpenCLIP ViT-bigG/14';
  return `${layout === 'openclip' ? 'OpenCLIP' : 'CLIP'} text encoder (width ${width}, ${layers} layers)`;
}

// ---------------------------------------------------------------------------------------------------------------
// VAE

export interface VaeInfo {
  /** 'first_stage_model.' in LDM checkpoints, 'vae.' in SD3/Flux-style ones, '' in a VAE file. */
  readonly prefix: string;
  /** 'ldm': `decoder.up.N.block.M`; 'diffusers': `decoder.up_blocks.N.resnets.M` (ComfyUI converts it). */
  readonly layout: 'ldm' | 'diffusers';
  /** decoder.conv_in's input channels, as ComfyUI's VAE class reads them: 4 for SD-1.x/2.x/SDXL, 16 for SD3/Flux. */
  readonly latentChannels: number;
  readonly hasEncoder: boolean;
  readonly hasDecoder: boolean;
  /** Channels of the first level (128 for SD's VAE). */
  readonly baseChannels: number | null;
  /** Channel multipliers per level ([1, 2, 4, 4] for SD's VAE). */
  readonly channelMult: number[];
  /** 2^(levels - 1): 8 for SD's VAE. */
  readonly downscale: number | null;
  readonly parameters: number;
  readonly dtype: string | undefined;
}

/** Every AutoencoderKL in the header (keys `<prefix>decoder.conv_in.weight`). */
export function findVaes(h: Header): VaeInfo[] {
  const out: VaeInfo[] = [];
  for (const key of h.sorted) {
    if (!key.endsWith('decoder.conv_in.weight')) continue;
    const p = key.slice(0, -'decoder.conv_in.weight'.length);
    if (p !== '' && !p.endsWith('.')) continue;
    const diffusers = h.has(`${p}decoder.up_blocks.0.resnets.0.norm1.weight`);
    if (!diffusers && !h.hasPrefix(`${p}decoder.up.`)) continue;
    const hasEncoder = h.has(`${p}encoder.conv_in.weight`);
    const base = h.dim(`${p}encoder.conv_in.weight`, 0) ?? h.dim(`${p}decoder.conv_out.weight`, 1) ?? null;
    const levels = diffusers ? h.countBlocks((n) => `${p}decoder.up_blocks.${n}.`) : h.countBlocks((n) => `${p}decoder.up.${n}.`);
    const channelMult: number[] = [];
    if (base) {
      for (let i = 0; i < levels; i++) {
        // The decoder's level i (LDM: up.i is level i; diffusers: up_blocks are in reverse) ends with its width.
        const c = diffusers
          ? h.dim(`${p}decoder.up_blocks.${levels - 1 - i}.resnets.0.conv2.weight`, 0)
          : h.dim(`${p}decoder.up.${i}.block.0.conv2.weight`, 0);
        if (c !== undefined) channelMult.push(c / base);
      }
    }
    out.push({
      prefix: p,
      layout: diffusers ? 'diffusers' : 'ldm',
      latentChannels: h.dim(key, 1)!,
      hasEncoder,
      hasDecoder: true,
      baseChannels: base,
      channelMult,
      downscale: levels ? 2 ** (levels - 1) : null,
      parameters: h.parameters(`${p}encoder.`) + h.parameters(`${p}decoder.`) + h.parameters(`${p}quant_conv.`) + h.parameters(`${p}post_quant_conv.`),
      dtype: h.dominantDtype(`${p}decoder.`),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// LoRA

/**
 * What a LoRA's tensors are, named as ComfyUI's weight adapters (comfy/weight_adapter) and lora.py name them:
 * 'lora' (up/down or A/B, LoCon included: LyCORIS' LoRA on 3x3 convolutions), 'lora-tucker' (a `lora_mid`: LoCon's
 * CP decomposition), 'loha', 'lokr', 'glora', 'oft' (3-D oft_blocks, or LyCORIS' older oft_diag), 'boft' (4-D
 * oft_blocks), 'dora' (`dora_scale`), 'diff' (full weight differences: .diff, .diff_b, .set_weight, .w_norm).
 */
export type LoraAdapterKind = 'lora' | 'lora-tucker' | 'loha' | 'lokr' | 'glora' | 'oft' | 'boft' | 'dora' | 'diff';

export interface LoraInfo {
  /** Key naming: kohya (`lora_unet_...`, `lora_te_`/`lora_te1_`/`lora_te2_`), peft (`.lora_A/.lora_B`), diffusers' older attention-processor names, LDM module names, or other. */
  readonly naming: 'kohya' | 'peft' | 'diffusers' | 'ldm' | 'other';
  readonly adapters: LoraAdapterKind[];
  /** Modules patched in the denoiser and in the text encoder(s). */
  readonly unetModules: number;
  readonly textEncoderModules: number;
  /** SDXL's second text encoder patched (lora_te2_ / text_encoder_2.). */
  readonly secondTextEncoder: boolean;
  /** Distinct ranks (rows of the down / A matrices). */
  readonly ranks: number[];
  /** Distinct alpha values of up to 64 alpha tensors (empty when none are stored or values were not read). */
  readonly alphas: number[];
  /** A down matrix of a 3x3 convolution is present (LyCORIS LoCon). */
  readonly convolutions: boolean;
  /** Width of the text the cross-attention keys take, from an attn2 to_k down matrix: 768 SD-1.x, 1024 SD-2.x, 2048 SDXL. */
  readonly contextDim: number | null;
  /** Width of the text encoder patched, from a q_proj down matrix. */
  readonly textEncoderWidth: number | null;
  /** Textual-inversion embeddings bundled in the LoRA (`bundle_emb.*`). */
  readonly bundledEmbeddings: number;
  /** The transformer families' block names were seen: 'flux' (double/single blocks), 'sd3' (joint blocks). */
  readonly transformerHint: 'flux' | 'sd3' | null;
}

const ADAPTER_KEYS: Array<[RegExp, LoraAdapterKind | 'aux', 'down' | 'up' | null]> = [
  [/\.lora_down\.weight$/, 'lora', 'down'],
  [/\.lora_up\.weight$/, 'lora', 'up'],
  [/\.lora_mid\.weight$/, 'lora-tucker', null],
  [/\.lora_A(\.default)?(\.weight)?$/, 'lora', 'down'],
  [/\.lora_B(\.default)?(\.weight)?$/, 'lora', 'up'],
  [/(_lora|\.lora|\.lora_linear_layer)\.down\.weight$/, 'lora', 'down'],
  [/(_lora|\.lora|\.lora_linear_layer)\.up\.weight$/, 'lora', 'up'],
  [/\.hada_w[12]_a$/, 'loha', null],
  [/\.hada_w[12]_b$/, 'loha', 'down'],
  [/\.hada_t[12]$/, 'loha', null],
  [/\.lokr_(w[12](_[ab])?|t2)$/, 'lokr', null],
  [/\.(a1|a2|b1|b2)\.weight$/, 'glora', null],
  [/\.oft_blocks$/, 'oft', null],
  [/\.oft_diag$/, 'oft', null],
  [/\.(diff|diff_b|set_weight|w_norm|b_norm)$/, 'diff', null],
  [/\.dora_scale$/, 'dora', null],
  [/\.(alpha|rescale|reshape_weight)$/, 'aux', null],
  [/^bundle_emb\./, 'aux', null],
];

/** The header's LoRA description when at least half of its tensors are adapter tensors, else undefined. */
export function describeLora(h: Header, read: Float32Reader | undefined): LoraInfo | undefined {
  const adapters = new Set<LoraAdapterKind>();
  const ranks = new Set<number>();
  const modules = new Set<string>();
  let matched = 0;
  let real = 0;
  let convolutions = false;
  let contextDim: number | null = null;
  let textEncoderWidth: number | null = null;
  const alphaNames: string[] = [];
  for (const key of h.sorted) {
    const hit = ADAPTER_KEYS.find(([re]) => re.test(key));
    if (!hit) continue;
    matched++;
    const [re, kind, role] = hit;
    if (kind === 'aux') {
      if (key.endsWith('.alpha') && alphaNames.length < 64) alphaNames.push(key);
      continue;
    }
    if (kind === 'glora' && !(h.has(key.replace(/\.(a1|a2|b1|b2)\.weight$/, '.a1.weight')) && h.has(key.replace(/\.(a1|a2|b1|b2)\.weight$/, '.b1.weight')))) continue;
    real++;
    const shape = h.shape(key)!;
    adapters.add(kind === 'oft' && key.endsWith('.oft_blocks') && shape.length === 4 ? 'boft' : kind);
    modules.add(key.replace(re, ''));
    if (role === 'down') {
      if (shape[0] !== undefined) ranks.add(shape[0]);
      if (shape.length === 4 && (shape[2]! > 1 || shape[3]! > 1)) convolutions = true;
      if (contextDim === null && /attn2[._]to_k/.test(key) && shape.length === 2) contextDim = shape[1]!;
      if (textEncoderWidth === null && /(lora_te1?_|text_encoder\.|te1?\.).*(self_attn[._]q_proj|attn[._]q_proj)/.test(key) && shape.length === 2) textEncoderWidth = shape[1]!;
    }
  }
  if (real === 0 || matched * 2 < h.size) return undefined;
  const keys = h.sorted;
  const naming: LoraInfo['naming'] = keys.some((k) => /^lora_(unet|te\d?|prior_unet|transformer)_/.test(k))
    ? 'kohya'
    : keys.some((k) => /\.lora_[AB](\.default)?(\.weight)?$/.test(k))
      ? 'peft'
      : keys.some((k) => /(_lora|\.lora|\.lora_linear_layer)\.(up|down)\.weight$/.test(k))
        ? 'diffusers'
        : keys.some((k) => k.startsWith('diffusion_model.') || k.startsWith('model.diffusion_model.'))
          ? 'ldm'
          : 'other';
  let unetModules = 0;
  let textEncoderModules = 0;
  let secondTextEncoder = false;
  for (const m of modules) {
    if (/^(lora_te\d?_|text_encoder(_2)?\.|te\d?\.|text_encoders\.|lora_prior_te_)/.test(m)) {
      textEncoderModules++;
      if (/^(lora_te2_|text_encoder_2\.|te2\.)/.test(m)) secondTextEncoder = true;
    } else if (!m.startsWith('bundle_emb.')) unetModules++;
  }
  let alphas: number[] = [];
  if (read && alphaNames.length) {
    try {
      const values = read(alphaNames);
      alphas = [...new Set(values.filter((v) => v.length === 1).map((v) => v[0]!))].sort((a, b) => a - b);
    } catch {
      alphas = []; // an alpha in a dtype not read as float: the ranks still say what matters here
    }
  }
  const transformerHint = keys.some((k) => /double_blocks|single_blocks|single_transformer_blocks/.test(k))
    ? 'flux'
    : keys.some((k) => /joint_blocks|\.attn\.add_q_proj/.test(k))
      ? 'sd3'
      : null;
  return {
    naming,
    adapters: [...adapters].sort(),
    unetModules,
    textEncoderModules,
    secondTextEncoder,
    ranks: [...ranks].sort((a, b) => a - b),
    alphas,
    convolutions,
    contextDim,
    textEncoderWidth,
    bundledEmbeddings: new Set(keys.filter((k) => k.startsWith('bundle_emb.')).map((k) => k.split('.')[1])).size,
    transformerHint,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Textual-inversion embeddings

export interface EmbeddingInfo {
  /** Its tensors: A1111's `emb_params`, SDXL-style `clip_l` / `clip_g`, SD-2-style `clip_h`, `string_to_param.*`. */
  readonly tensors: Array<{ name: string; vectors: number; width: number }>;
}

const EMBEDDING_NAME = /^(emb_params|clip_l|clip_g|clip_h|string_to_param\..+)$/;

/** The header's embedding description when every tensor is an embedding tensor (at most 4, float, 1-D or 2-D). */
export function describeEmbedding(h: Header): EmbeddingInfo | undefined {
  if (h.size === 0 || h.size > 4) return undefined;
  const tensors: EmbeddingInfo['tensors'] = [];
  for (const name of h.sorted) {
    const e = h.entry(name)!;
    if (!EMBEDDING_NAME.test(name) || !['F32', 'F16', 'BF16'].includes(e.dtype) || e.shape.length < 1 || e.shape.length > 2) return undefined;
    tensors.push({ name, vectors: e.shape.length === 2 ? e.shape[0]! : 1, width: e.shape[e.shape.length - 1]! });
  }
  return { tensors };
}
