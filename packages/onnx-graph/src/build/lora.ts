// LoRAs (ComfyUI's LoraLoader / LoraLoaderModelOnly) patched into a single-file checkpoint's weights while a
// component is built: each LoRA module is mapped to the LDM checkpoint tensor it changes, and the change is added
// to that tensor's float32 values when the builder's writer reads them (WeightSource patches), one tensor at a
// time, so a patched build needs no more memory than a plain one:
//   W' = W + Σ strength · (alpha / rank) · (up.flatten(1) @ down.flatten(1)).reshape(W.shape)
// over the LoRAs in order (stacked loaders add up); alpha / rank is 1 for a module stored without `.alpha`; UNet
// modules take strengthModel, text encoder modules strengthClip (negative strengths subtract).
//
// Module names (ComfyUI comfy/lora.py model_lora_keys_unet / model_lora_keys_clip and comfy/utils.py
// unet_to_diffusers are the facts; the names are generated here from the checkpoint's own LDM keys):
//   lora_unet_<diffusers UNet module, "." -> "_">    kohya (lora_unet_down_blocks_0_attentions_0_proj_in)
//   lycoris_<the same>                               SimpleTuner's LyCORIS
//   lora_unet_<LDM UNet module, "." -> "_">          kohya on LDM names (lora_unet_input_blocks_1_1_proj_in)
//   diffusion_model.<LDM module>, model.diffusion_model.<LDM module>   generic (the key without `.weight`)
//   [unet.]<diffusers module>                        diffusers / PEFT (`.processor.` and `to_out` without `.0` too)
//   lora_te_text_model_encoder_layers_N_<c>, lora_te1_..., text_encoder.text_model.encoder.layers.N.<c.>
//     for c in self_attn q/k/v/out_proj, mlp fc1/fc2 (ComfyUI's LORA_CLIP_MAP): SD-1's CLIP-L tensors, and SD-2's
//     OpenCLIP ones (q/k/v = rows [0, D), [D, 2D), [2D, 3D) of the fused attn.in_proj_weight; out_proj, c_fc, c_proj)
// Tensor names per module (comfy/weight_adapter/lora.py): `.lora_up/.lora_down.weight` (+ `.lora_mid.weight`,
// LoCon's Tucker core), `_lora.up/down.weight`, `.lora_B/.lora_A[.weight]`, `.lora_B/A.default.weight`,
// `.lora.up/down.weight`, `.lora_linear_layer.up/down.weight`; `.alpha`; full differences `.diff` / `.w_norm`
// (weight) and `.diff_b` / `.b_norm` (bias), added at strength (no alpha). LoHa, LoKr, GLoRA, OFT/BOFT, DoRA,
// `set_weight` and `reshape_weight` are refused by name. A module matching no checkpoint tensor is listed in the
// report (ComfyUI logs "lora key not loaded"), never dropped silently; one matching a tensor of another shape (a
// LoRA for another base model) is an error.
import { basename } from 'node:path';
import { CheckpointError, FLOAT_DTYPES, openSafetensors, toFloat32, type CheckpointReader } from './checkpoint.ts';
import { WeightSource, type WeightPatch } from './weights.ts';

/** One LoRA file and its strengths (ComfyUI's LoraLoader inputs). */
export interface LoraSpec {
  path: string;
  /** Strength of the UNet modules (strength_model); 0 leaves the UNet as it is. */
  strengthModel: number;
  /** Strength of the text encoder modules (strength_clip); 0 leaves the text encoder as it is. */
  strengthClip: number;
}

export type LoraComponent = 'unet' | 'text';

/** The checkpoint tensor a LoRA module changes. */
export interface LoraTarget {
  /** The weight's checkpoint key. */
  key: string;
  /** The bias' key (for `.diff_b` / `.b_norm`). */
  bias: string;
  component: LoraComponent;
  /** Rows [start, end) of dim 0 of the key (a q/k/v part of OpenCLIP's fused in_proj); all when absent. */
  rows?: readonly [number, number];
}

export interface LoraFileReport {
  path: string;
  /** Modules in the file (tensor groups), matched or not. */
  modules: number;
  /** Modules matched to a UNet / text encoder tensor. */
  unet: number;
  text: number;
  /** Modules (or tensor names of no known kind) matching no checkpoint tensor. */
  unmatched: string[];
}

export interface LoraReport {
  files: LoraFileReport[];
  /** Patches made: matched modules at a non-zero strength, per file. */
  applied: number;
  /** `<file name>: <module>` for every module of every file that matched no checkpoint tensor. */
  unmatched: string[];
}

/** What resolveLoras needs of the checkpoint: its tensor names and shapes. */
export type LoraCheckpoint = WeightSource | CheckpointReader | Iterable<{ readonly name: string; readonly shape: readonly number[] }>;

export interface LoraOptions {
  /** How a LoRA file is read (default openSafetensors). */
  openReader?: (path: string) => CheckpointReader;
}

// ------------------------------------------------------------------------------------------ names

const UNET_TOP: Readonly<Record<string, string>> = {
  'input_blocks.0.0': 'conv_in',
  'time_embed.0': 'time_embedding.linear_1',
  'time_embed.2': 'time_embedding.linear_2',
  'out.0': 'conv_norm_out',
  'out.2': 'conv_out',
};

const RESNET: Readonly<Record<string, string>> = {
  'in_layers.0': 'norm1',
  'in_layers.2': 'conv1',
  'emb_layers.1': 'time_emb_proj',
  'out_layers.0': 'norm2',
  'out_layers.3': 'conv2',
  skip_connection: 'conv_shortcut',
};

/** ComfyUI's LORA_CLIP_MAP: the text encoder modules LoRAs name (transformers' names). */
const CLIP_MODULES = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2'] as const;

/** OpenCLIP's module for each transformers one (q/k/v: a third of in_proj). */
const OPEN_CLIP: Readonly<Record<(typeof CLIP_MODULES)[number], { weight: string; bias: string; part?: number }>> = {
  'self_attn.q_proj': { weight: 'attn.in_proj_weight', bias: 'attn.in_proj_bias', part: 0 },
  'self_attn.k_proj': { weight: 'attn.in_proj_weight', bias: 'attn.in_proj_bias', part: 1 },
  'self_attn.v_proj': { weight: 'attn.in_proj_weight', bias: 'attn.in_proj_bias', part: 2 },
  'self_attn.out_proj': { weight: 'attn.out_proj.weight', bias: 'attn.out_proj.bias' },
  'mlp.fc1': { weight: 'mlp.c_fc.weight', bias: 'mlp.c_fc.bias' },
  'mlp.fc2': { weight: 'mlp.c_proj.weight', bias: 'mlp.c_proj.bias' },
};

/**
 * The diffusers module of an LDM UNet module (`input_blocks.1.1.proj_in` -> `down_blocks.0.attentions.0.proj_in`),
 * with `per` = res blocks per level + 1 (comfy/utils.py unet_to_diffusers, read backwards).
 */
function ldmUnetToDiffusers(p: string, per: number): string | undefined {
  if (UNET_TOP[p]) return UNET_TOP[p];
  let m = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(p);
  if (m) {
    const [k, sub, rest] = [Number(m[1]), Number(m[2]), m[3]!];
    if (k === 0) return undefined;
    if (k % per === 0) return sub === 0 && rest === 'op' ? `down_blocks.${k / per - 1}.downsamplers.0.conv` : undefined;
    const [i, j] = [Math.floor((k - 1) / per), (k - 1) % per];
    if (sub === 0) return RESNET[rest] && `down_blocks.${i}.resnets.${j}.${RESNET[rest]}`;
    return sub === 1 ? `down_blocks.${i}.attentions.${j}.${rest}` : undefined;
  }
  m = /^middle_block\.(\d+)\.(.+)$/.exec(p);
  if (m) {
    const [k, rest] = [Number(m[1]), m[2]!];
    if (k === 1) return `mid_block.attentions.0.${rest}`;
    return (k === 0 || k === 2) && RESNET[rest] ? `mid_block.resnets.${k / 2}.${RESNET[rest]}` : undefined;
  }
  m = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(p);
  if (m) {
    const [k, sub, rest] = [Number(m[1]), Number(m[2]), m[3]!];
    const [i, j] = [Math.floor(k / per), k % per];
    if (sub === 0) return RESNET[rest] && `up_blocks.${i}.resnets.${j}.${RESNET[rest]}`;
    // An Upsample is the block's second module on a level without attention, its third after one.
    if (rest === 'conv') return `up_blocks.${i}.upsamplers.0.conv`;
    return sub === 1 ? `up_blocks.${i}.attentions.${j}.${rest}` : undefined;
  }
  return undefined;
}

const underscored = (s: string) => s.replace(/\./g, '_');

/** Canonical form of a dotted diffusers / PEFT module name (`unet.` prefix, no `.processor`, `to_out.0`). */
function canonicalDotted(name: string): string {
  let n = name.replace(/\.processor\./g, '.');
  if (n.endsWith('.to_out')) n += '.0';
  if (/^(down_blocks|mid_block|up_blocks|conv_in|conv_out|conv_norm_out|time_embedding)\./.test(n)) n = `unet.${n}`;
  return n;
}

/**
 * Every LoRA module name this checkpoint's tensors can be patched by, mapped to its target (see the file comment).
 * Dotted diffusers names are looked up in canonical form (canonicalDotted).
 */
export function loraKeyMap(checkpoint: LoraCheckpoint): Map<string, LoraTarget> {
  return keyMapOf(shapesOf(checkpoint));
}

function keyMapOf(shapes: ReadonlyMap<string, readonly number[]>): Map<string, LoraTarget> {
  const map = new Map<string, LoraTarget>();
  const add = (names: string[], target: LoraTarget) => {
    for (const n of names) if (!map.has(n)) map.set(n, target);
  };

  // UNet: model.diffusion_model.* (or a bare UNet file's keys).
  const prefix = shapes.has('model.diffusion_model.input_blocks.0.0.weight') ? 'model.diffusion_model.' : shapes.has('input_blocks.0.0.weight') ? '' : undefined;
  if (prefix !== undefined) {
    // Res blocks per level + 1: the index of the first Downsample (a one-level UNet has none).
    let per = 0;
    let maxInput = 0;
    for (const key of shapes.keys()) {
      if (!key.startsWith(prefix)) continue;
      const m = /^input_blocks\.(\d+)\.0\.op\.weight$/.exec(key.slice(prefix.length));
      if (m && (per === 0 || Number(m[1]) < per)) per = Number(m[1]);
      const n = /^input_blocks\.(\d+)\./.exec(key.slice(prefix.length));
      if (n) maxInput = Math.max(maxInput, Number(n[1]));
    }
    if (per === 0) per = maxInput + 1;
    for (const key of shapes.keys()) {
      if (!key.startsWith(prefix) || !key.endsWith('.weight')) continue;
      const ldm = key.slice(prefix.length, -'.weight'.length);
      const target: LoraTarget = { key, bias: `${key.slice(0, -'.weight'.length)}.bias`, component: 'unet' };
      const names = [`lora_unet_${underscored(ldm)}`, `diffusion_model.${ldm}`, `model.diffusion_model.${ldm}`];
      const diffusers = ldmUnetToDiffusers(ldm, per);
      if (diffusers) names.unshift(`lora_unet_${underscored(diffusers)}`, `lycoris_${underscored(diffusers)}`, `unet.${diffusers}`);
      add(names, target);
    }
  }

  // Text encoder: SD-1's CLIP-L in transformers' names, SD-2's OpenCLIP.
  const textNames = (n: number, c: string) => [
    `lora_te_text_model_encoder_layers_${n}_${underscored(c)}`,
    `lora_te1_text_model_encoder_layers_${n}_${underscored(c)}`,
    `text_encoder.text_model.encoder.layers.${n}.${c}`,
  ];
  for (const clip of ['cond_stage_model.transformer.text_model.', 'cond_stage_model.transformer.']) {
    for (const key of shapes.keys()) {
      const m = key.startsWith(clip) ? /^encoder\.layers\.(\d+)\.(.+)\.weight$/.exec(key.slice(clip.length)) : null;
      if (!m || !(CLIP_MODULES as readonly string[]).includes(m[2]!)) continue;
      add(textNames(Number(m[1]), m[2]!), { key, bias: `${key.slice(0, -'.weight'.length)}.bias`, component: 'text' });
    }
  }
  const open = 'cond_stage_model.model.transformer.resblocks.';
  for (const key of shapes.keys()) {
    const m = key.startsWith(open) ? /^(\d+)\.attn\.in_proj_weight$/.exec(key.slice(open.length)) : null;
    if (!m) continue;
    const n = Number(m[1]);
    const width = shapes.get(key)![0]! / 3;
    for (const c of CLIP_MODULES) {
      const o = OPEN_CLIP[c];
      const weight = `${open}${n}.${o.weight}`;
      if (!shapes.has(weight)) continue;
      const rows = o.part === undefined ? undefined : ([o.part * width, (o.part + 1) * width] as const);
      add(textNames(n, c), { key: weight, bias: `${open}${n}.${o.bias}`, component: 'text', ...(rows ? { rows } : {}) });
    }
  }
  return map;
}

function shapesOf(checkpoint: LoraCheckpoint): Map<string, readonly number[]> {
  if (checkpoint instanceof WeightSource) return new Map(checkpoint.keys().map((k) => [k, checkpoint.shape(k)]));
  const list = 'tensors' in checkpoint && typeof checkpoint.tensors === 'function' ? checkpoint.tensors() : (checkpoint as Iterable<{ name: string; shape: readonly number[] }>);
  return new Map([...list].map((t) => [t.name, t.shape]));
}

// ------------------------------------------------------------------------------------------ files

type Role = 'up' | 'down' | 'mid' | 'alpha' | 'diff' | 'diff_b';

/** Tensor name endings and what they hold; the first match wins (longer endings first where they overlap). */
const ROLES: ReadonlyArray<readonly [string, Role]> = [
  ['.lora_up.weight', 'up'], ['.lora_down.weight', 'down'], ['.lora_mid.weight', 'mid'],
  ['_lora.up.weight', 'up'], ['_lora.down.weight', 'down'],
  ['.lora_B.default.weight', 'up'], ['.lora_A.default.weight', 'down'],
  ['.lora_B.weight', 'up'], ['.lora_A.weight', 'down'],
  ['.lora.up.weight', 'up'], ['.lora.down.weight', 'down'],
  ['.lora_linear_layer.up.weight', 'up'], ['.lora_linear_layer.down.weight', 'down'],
  ['.lora_B', 'up'], ['.lora_A', 'down'],
  ['.alpha', 'alpha'],
  ['.diff_b', 'diff_b'], ['.b_norm', 'diff_b'], ['.diff', 'diff'], ['.w_norm', 'diff'],
];

/** Tensor name endings of adapters that are not applied, and the adapter's name. */
const UNSUPPORTED: ReadonlyArray<readonly [string, string]> = [
  ...['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'].map((s) => [`.${s}`, `LoHa (LyCORIS Hadamard product, ${s})`] as const),
  ...['lokr_w1', 'lokr_w2', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'].map((s) => [`.${s}`, `LoKr (LyCORIS Kronecker product, ${s})`] as const),
  ...['a1.weight', 'a2.weight', 'b1.weight', 'b2.weight'].map((s) => [`.${s}`, `GLoRA (${s})`] as const),
  ['.oft_blocks', 'OFT / BOFT (oft_blocks)'],
  ['.oft_diag', 'OFT (oft_diag)'],
  ['.rescale', 'OFT / BOFT (rescale)'],
  ['.dora_scale', 'DoRA (dora_scale: a weight-decomposed LoRA)'],
  ['.set_weight', 'a weight replacement (set_weight)'],
  ['.reshape_weight', 'a LoRA with reshape_weight'],
];

const prod = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);
const fmt = (d: readonly number[]) => `[${d.join(', ')}]`;

function readFloats(reader: CheckpointReader, file: string, name: string, dtype: string): Float32Array {
  if (!FLOAT_DTYPES.includes(dtype)) throw new CheckpointError(`LoRA ${file}: tensor "${name}" is ${dtype}; LoRA tensors must be float`, 'bad_tensor', name);
  return toFloat32(reader.readBytes(name), dtype, name);
}

/** One LoRA module's update of one tensor, read from its file when applied. */
class LoraPatch implements WeightPatch {
  readonly rows?: readonly [number, number];
  constructor(
    readonly file: string,
    readonly module: string,
    readonly target: string,
    readonly strength: number,
    /** alpha / rank (1 without alpha); 1 for full differences. */
    readonly scale: number,
    readonly read: (name: string) => Float32Array,
    readonly tensors: { up: { name: string; shape: readonly number[] }; down: { name: string; shape: readonly number[] }; mid?: { name: string; shape: readonly number[] } } | { diff: string },
    rows: readonly [number, number] | undefined,
  ) {
    if (rows) this.rows = rows;
  }

  apply(values: Float32Array, shape: readonly number[], key: string): void {
    if (key !== this.target) throw new Error(`LoRA patch for ${this.target} applied to ${key}`);
    const cols = prod(shape.slice(1));
    const base = (this.rows?.[0] ?? 0) * cols;
    const s = this.strength * this.scale;
    if ('diff' in this.tensors) {
      const diff = this.read(this.tensors.diff);
      for (let i = 0; i < diff.length; i++) values[base + i] = values[base + i]! + s * diff[i]!;
      return;
    }
    const { up: upInfo, down: downInfo, mid: midInfo } = this.tensors;
    const up = this.read(upInfo.name);
    let down = this.read(downInfo.name);
    const rank = downInfo.shape[0]!;
    const out = upInfo.shape[0]!;
    if (midInfo) down = tuckerDown(down, downInfo.shape, this.read(midInfo.name), midInfo.shape);
    const n = down.length / rank;
    // Row o of up @ down, accumulated in float64, then added to W's row at strength · alpha / rank. Four ranks per
    // pass over the row: ~2 GFLOP/s in V8 (a rank-128 LoRA on SD-1.5's 10240x1280 ff.net.0.proj: ~1.5 s).
    const row = new Float64Array(n);
    for (let o = 0; o < out; o++) {
      row.fill(0);
      const u = o * rank;
      let k = 0;
      for (; k + 4 <= rank; k += 4) {
        const a0 = up[u + k]!;
        const a1 = up[u + k + 1]!;
        const a2 = up[u + k + 2]!;
        const a3 = up[u + k + 3]!;
        const d0 = k * n;
        const d1 = d0 + n;
        const d2 = d1 + n;
        const d3 = d2 + n;
        for (let j = 0; j < n; j++) row[j] = row[j]! + a0 * down[d0 + j]! + a1 * down[d1 + j]! + a2 * down[d2 + j]! + a3 * down[d3 + j]!;
      }
      for (; k < rank; k++) {
        const a = up[u + k]!;
        const off = k * n;
        for (let j = 0; j < n; j++) row[j] = row[j]! + a * down[off + j]!;
      }
      const w = base + o * n;
      for (let j = 0; j < n; j++) values[w + j] = values[w + j]! + s * row[j]!;
    }
  }
}

/**
 * LoCon's Tucker core folded into down (ComfyUI's lora_mid): down [r, in, 1, 1], mid [r, r, kh, kw] ->
 * down' [r, in, kh, kw] with down'[m, j, y, x] = Σ_n mid[m, n, y, x] · down[n, j].
 */
function tuckerDown(down: Float32Array, downShape: readonly number[], mid: Float32Array, midShape: readonly number[]): Float32Array {
  const [r, inC] = [downShape[0]!, prod(downShape.slice(1))];
  const k = prod(midShape.slice(2));
  const out = new Float32Array(r * inC * k);
  for (let m = 0; m < r; m++) {
    for (let n = 0; n < r; n++) {
      for (let yx = 0; yx < k; yx++) {
        const c = mid[(m * r + n) * k + yx]!;
        if (c === 0) continue;
        for (let j = 0; j < inC; j++) {
          const i = (m * inC + j) * k + yx;
          out[i] = out[i]! + c * down[n * inC + j]!;
        }
      }
    }
  }
  return out;
}

/**
 * Reads LoRA files and maps their modules onto the checkpoint's tensors: `patches` (checkpoint key -> updates, in
 * the order of `loras`) for a WeightSource (setPatches, or applyLoras), and what matched. Modules at strength 0
 * make no patch. Throws CheckpointError for an adapter kind that is not applied (named), a malformed module and
 * a module whose tensor has another shape (a LoRA for another base model).
 */
export function resolveLoras(
  loras: readonly LoraSpec[],
  checkpoint: LoraCheckpoint,
  options: LoraOptions = {},
): { patches: Map<string, LoraPatch[]>; report: LoraReport } {
  const shapes = shapesOf(checkpoint);
  const keyMap = keyMapOf(shapes);
  const patches = new Map<string, LoraPatch[]>();
  const report: LoraReport = { files: [], applied: 0, unmatched: [] };
  const open = options.openReader ?? openSafetensors;
  for (const lora of loras) {
    const file = basename(lora.path);
    const reader = open(lora.path);
    const infos = new Map(reader.tensors().map((t) => [t.name, t]));
    const read = (name: string) => readFloats(reader, file, name, infos.get(name)!.dtype);
    const bad = (message: string, key?: string) => new CheckpointError(`LoRA ${file}: ${message}`, 'bad_tensor', key);

    // Tensors grouped by module.
    const modules = new Map<string, Partial<Record<Role, string>>>();
    const unknown: string[] = [];
    for (const name of infos.keys()) {
      const refused = UNSUPPORTED.find(([end]) => name.endsWith(end));
      if (refused) {
        throw new CheckpointError(
          `LoRA ${file}: module "${name.slice(0, -refused[0].length)}" is ${refused[1]}; gategraph applies LoRA / LoCon modules (lora_up / lora_down, alpha) and full differences (diff) only`,
          'unsupported',
          name,
        );
      }
      const role = ROLES.find(([end]) => name.endsWith(end));
      if (!role) {
        unknown.push(name);
        continue;
      }
      const module = name.slice(0, -role[0].length);
      const entry = modules.get(module) ?? {};
      entry[role[1]] = name;
      modules.set(module, entry);
    }

    const fileReport: LoraFileReport = { path: lora.path, modules: modules.size, unet: 0, text: 0, unmatched: [] };
    const addPatch = (key: string, patch: LoraPatch) => {
      const list = patches.get(key) ?? [];
      list.push(patch);
      patches.set(key, list);
      report.applied++;
    };
    for (const [module, t] of modules) {
      const target = keyMap.get(module) ?? keyMap.get(canonicalDotted(module));
      if (!target || !(t.up || t.down || t.diff || t.diff_b)) {
        fileReport.unmatched.push(module);
        continue;
      }
      fileReport[target.component]++;
      const strength = target.component === 'unet' ? lora.strengthModel : lora.strengthClip;
      const targetShape = shapes.get(target.key)!;
      const rowCount = target.rows ? target.rows[1] - target.rows[0] : targetShape[0]!;
      const cols = prod(targetShape.slice(1));
      const partOf = target.rows ? ` (rows ${target.rows[0]}..${target.rows[1]} of it)` : '';
      const elsewhere = 'the LoRA is for another base model';
      if (t.up || t.down) {
        if (!t.up || !t.down) throw bad(`module "${module}" has ${t.up ? 'an up' : 'a down'} tensor and no ${t.up ? 'down' : 'up'} tensor`, t.up ?? t.down);
        const up = infos.get(t.up)!;
        const down = infos.get(t.down)!;
        const mid = t.mid ? infos.get(t.mid) : undefined;
        const rank = down.shape[0] ?? 0;
        if (up.shape.length < 2 || down.shape.length < 2 || prod(up.shape.slice(1)) !== rank) {
          throw bad(`module "${module}": up ${fmt(up.shape)} and down ${fmt(down.shape)} do not multiply`, t.up);
        }
        if (mid && (mid.shape.length < 2 || mid.shape[0] !== rank || mid.shape[1] !== rank || prod(down.shape.slice(2)) !== 1)) {
          throw bad(`module "${module}": lora_mid ${fmt(mid.shape)} does not fit down ${fmt(down.shape)}`, t.mid);
        }
        const n = mid ? prod(down.shape.slice(1)) * prod(mid.shape.slice(2)) : prod(down.shape.slice(1));
        if (up.shape[0] !== rowCount || n !== cols) {
          throw bad(`module "${module}" makes a [${up.shape[0]}, ${n}] update; it patches ${target.key} ${fmt(targetShape)}${partOf}: ${elsewhere}`, target.key);
        }
        let scale = 1;
        if (t.alpha) {
          // kohya saves alpha in the save dtype; an integer one is read too (ComfyUI takes `.item()` of any).
          const dtype = infos.get(t.alpha)!.dtype;
          const bytes = dtype === 'I64' || dtype === 'I32' ? reader.readBytes(t.alpha) : undefined;
          const alpha = bytes
            ? Float32Array.from(dtype === 'I64' ? Array.from(new BigInt64Array(bytes.slice().buffer), Number) : new Int32Array(bytes.slice().buffer))
            : read(t.alpha);
          if (alpha.length !== 1) throw bad(`"${t.alpha}" holds ${alpha.length} values; alpha is one number`, t.alpha);
          scale = alpha[0]! / rank;
        }
        if (strength !== 0) {
          addPatch(target.key, new LoraPatch(file, module, target.key, strength, scale, read, { up, down, ...(mid ? { mid } : {}) }, target.rows));
        }
      }
      for (const [role, key] of [['diff', target.key], ['diff_b', target.bias]] as const) {
        const name = t[role];
        if (!name) continue;
        const keyShape = shapes.get(key);
        const expected = keyShape && (target.rows ? (keyShape.length === 1 ? rowCount : rowCount * prod(keyShape.slice(1))) : prod(keyShape));
        if (expected === undefined) throw bad(`module "${module}": "${name}" patches ${key}, which the checkpoint does not have`, key);
        if (prod(infos.get(name)!.shape) !== expected) throw bad(`"${name}" ${fmt(infos.get(name)!.shape)} does not fit ${key} ${fmt(keyShape!)}${partOf}: ${elsewhere}`, key);
        if (strength !== 0) addPatch(key, new LoraPatch(file, module, key, strength, 1, read, { diff: name }, target.rows));
      }
    }
    fileReport.unmatched.push(...unknown);
    fileReport.unmatched.sort();
    report.files.push(fileReport);
    report.unmatched.push(...fileReport.unmatched.map((m) => `${file}: ${m}`));
  }
  return { patches, report };
}

/** resolveLoras on the source's checkpoint, the patches set on the source (replacing any before); the report. */
export function applyLoras(source: WeightSource, loras: readonly LoraSpec[], options: LoraOptions = {}): LoraReport {
  const { patches, report } = resolveLoras(loras, source, options);
  source.setPatches(patches.size ? patches : undefined);
  return report;
}

export type { LoraPatch };
