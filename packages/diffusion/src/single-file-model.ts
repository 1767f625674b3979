/**
 * A single-file checkpoint (ComfyUI's models/checkpoints/*.safetensors, LDM key layout) as an ONNX model folder
 * that openModelFolder opens like any export: each component is built once by @gategraph/onnx-graph's builders
 * into its own cache entry (componentFromCheckpoint), and a small folder puts them together with what a single
 * file does not carry: model_index.json, the scheduler's config, and CLIP's tokenizer (shipped with this
 * package).
 *
 *   <cache>/<component key>/<component>/          one per component, keyed by the file's content and variant
 *   <cache>/models/<model key>/                    model_index.json, scheduler/, tokenizer/, and for each
 *       unet -> ../../<key>/unet, ...              component a relative symlink to its entry
 *
 * Components are separate entries so that what changes one does not rebuild the others: a LoRA rebuilds the UNet
 * (and the text encoder when its clip strength is not 0), a VAE file replaces the VAE entries only. The session
 * pool keys sessions by real path, so two model folders sharing an entry share its sessions.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import {
  CheckpointError,
  checkpointSha256,
  componentFromCheckpoint,
  derivedCacheDir,
  ensureCacheDir,
  type CheckpointComponent,
  type CheckpointComponentName,
  type CheckpointComponentOptions,
  type ComponentBuild,
  type UnetOverrides,
} from '@gategraph/onnx-graph';
import { applyLoras, buildClipText, buildLdmUnet, buildVaeDecoder, buildVaeEncoder, type LoraReport, type WeightSource } from '@gategraph/onnx-graph/build';
import { bundledClipTokenizerDir } from './tokenizer.ts';

/** Bump when the assembled folder's own files (index, scheduler, tokenizer) change for the same components. */
const ASSEMBLY_VERSION = 1;

/** What the checkpoint is, as far as building it goes (from checkpoint-family.ts's detection). */
export interface SingleFileFamily {
  /**
   * 'sd1': CLIP ViT-L/14 text encoder; 'sd2': OpenCLIP ViT-H/14 (pads prompts with "!"); 'sdxl': CLIP ViT-L/14 at
   * `conditioner.embedders.0.transformer.` and OpenCLIP ViT-bigG/14 at `conditioner.embedders.1.model.`;
   * 'sdxl-refiner': ViT-bigG/14 alone at `conditioner.embedders.0.model.`.
   */
  readonly text: 'sd1' | 'sd2' | 'sdxl' | 'sdxl-refiner';
  readonly prediction: 'epsilon' | 'v_prediction';
}

/** Where SDXL's text encoders lie in Stability's (SGM) single files. */
const SDXL_ENCODER_PREFIXES = {
  sdxl: { text_encoder: 'conditioner.embedders.0.transformer.', text_encoder_2: 'conditioner.embedders.1.model.' },
  'sdxl-refiner': { text_encoder_2: 'conditioner.embedders.0.model.' },
} as const;

/** SDXL's VAE scales latents by 0.13025 (its config.json), SD-1.x/2.x's by 0.18215. */
const SDXL_VAE_SCALING_FACTOR = 0.13025;

function isSdxl(text: SingleFileFamily['text']): text is 'sdxl' | 'sdxl-refiner' {
  return text === 'sdxl' || text === 'sdxl-refiner';
}

/** Architecture values a checkpoint's shapes do not record; only narrow test checkpoints need them. */
export interface SingleFileOverrides {
  unet?: UnetOverrides;
  text?: Record<string, number | string | undefined>;
  vae?: Record<string, number | string | undefined>;
}

/** One LoRA file applied to one component at a strength (ComfyUI's strength_model or strength_clip). */
export interface LoraUse {
  readonly path: string;
  readonly strength: number;
}

export interface SingleFileModelOptions {
  /** Defaults to `<checkpoint folder>/.gategraph-derived`. */
  cacheDir?: string;
  /** A standalone VAE file (ComfyUI's models/vae/) used instead of the checkpoint's own. */
  vae?: string;
  /** LoRAs patched into the UNet's weights, in order (LoraLoader's strength_model). */
  unetLoras?: readonly LoraUse[];
  /** LoRAs patched into the text encoder's weights (strength_clip). */
  textLoras?: readonly LoraUse[];
  overrides?: SingleFileOverrides;
  /**
   * A tokenizer folder (vocab.json + merges.txt) used instead of the CLIP tokenizer this package ships: for a
   * text encoder trained on another vocabulary (the narrow test checkpoints). Its vocabulary must match the
   * encoder's embedding rows.
   */
  tokenizer?: string;
  /**
   * What each LoRA matched when a component was built with LoRAs (modules that matched nothing are listed, as
   * ComfyUI's "lora key not loaded" warnings): for the log.
   */
  onLoraReport?: (component: 'unet' | 'text_encoder', report: LoraReport) => void;
  /** Called before a component is built (a first load takes seconds to minutes): for progress messages. */
  onBuild?: (component: CheckpointComponentName, source: string) => void;
}

export interface SingleFileModel {
  /** The assembled model folder: give it to openModelFolder. */
  dir: string;
  /** SD-1.x/2.x: unet, text_encoder, vae_*; SDXL adds text_encoder_2; the SDXL refiner has text_encoder_2 only. */
  components: Partial<Record<CheckpointComponentName, CheckpointComponent>>;
  /** Components built by this call (the others came from the cache). */
  built: CheckpointComponentName[];
}

type Builder = (source: WeightSource, overrides: Record<string, unknown>) => ComponentBuild;

const BUILDERS: Record<CheckpointComponentName, Builder> = {
  unet: (source, overrides) => buildLdmUnet(source, overrides as UnetOverrides),
  text_encoder: (source, overrides) => buildClipText(source, overrides),
  text_encoder_2: (source, overrides) => buildClipText(source, overrides),
  vae_decoder: (source, overrides) => buildVaeDecoder(source, overrides),
  vae_encoder: (source, overrides) => buildVaeEncoder(source, overrides),
};

/** Which file and which builder options make each component. */
interface ComponentPlan {
  file: string;
  overrides: Record<string, unknown>;
  extra?: Pick<CheckpointComponentOptions, 'prepare' | 'evictable'> & { variant?: Record<string, unknown> };
}

/** Builds (or finds) one component of a checkpoint. */
async function component(name: CheckpointComponentName, plan: ComponentPlan, options: SingleFileModelOptions, built: CheckpointComponentName[]): Promise<CheckpointComponent> {
  let announced = false;
  const result = await componentFromCheckpoint(plan.file, name, (source) => {
    if (!announced) options.onBuild?.(name, plan.file);
    announced = true;
    return BUILDERS[name](source, plan.overrides);
  }, {
    cacheDir: options.cacheDir ?? derivedCacheDir(plan.file),
    variant: { overrides: plan.overrides, ...plan.extra?.variant },
    ...(plan.extra?.prepare ? { prepare: plan.extra.prepare } : {}),
    ...(plan.extra?.evictable ? { evictable: true } : {}),
  });
  if (!result.fromCache) built.push(name);
  return result;
}

/**
 * The LoRAs of one component as a build step: patched into the weights as they stream (applyLoras), the files'
 * content and strengths in the cache key, and the entry evictable (a user tries LoRAs and strengths and moves on;
 * each entry costs the component's size on disk). Strength 0 everywhere is the plain component.
 */
async function loraPlan(
  uses: readonly LoraUse[] | undefined,
  component: 'unet' | 'text_encoder',
  cacheDir: string,
  onReport: SingleFileModelOptions['onLoraReport'],
): Promise<ComponentPlan['extra']> {
  const active = (uses ?? []).filter((l) => l.strength !== 0);
  if (active.length === 0) return undefined;
  const loras = await Promise.all(active.map(async (l) => ({ sha256: await checkpointSha256(l.path, cacheDir), strength: l.strength })));
  const specs = active.map((l) => ({
    path: resolve(l.path),
    strengthModel: component === 'unet' ? l.strength : 0,
    strengthClip: component === 'text_encoder' ? l.strength : 0,
  }));
  return {
    variant: { loras },
    evictable: true,
    prepare: (source) => onReport?.(component, applyLoras(source, specs)),
  };
}

/**
 * The diffusers scheduler config SD-1.x / 2.x / SDXL checkpoints were trained with (the LDM configs' schedule; SDXL
 * keeps it and its folders name Euler).
 */
export function sdSchedulerConfig(prediction: SingleFileFamily['prediction'], text: SingleFileFamily['text'] = 'sd1'): Record<string, unknown> {
  return {
    _class_name: isSdxl(text) ? 'EulerDiscreteScheduler' : 'PNDMScheduler',
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    num_train_timesteps: 1000,
    clip_sample: false,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: 'leading',
    prediction_type: prediction,
  };
}

/** CLIP's tokenizer files (or `source`'s), with OpenCLIP's "!" padding for OpenCLIP text encoders (SD-2.x, SDXL's second). */
function writeTokenizer(dir: string, text: 'sd1' | 'sd2', source = bundledClipTokenizerDir()): void {
  mkdirSync(dir, { recursive: true });
  for (const file of ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json']) {
    if (existsSync(join(source, file))) copyFileSync(join(source, file), join(dir, file));
  }
  if (text === 'sd2') {
    for (const file of ['special_tokens_map.json', 'tokenizer_config.json']) {
      const json = (existsSync(join(dir, file)) ? JSON.parse(readFileSync(join(dir, file), 'utf8')) : {}) as Record<string, unknown>;
      json.pad_token = '!';
      writeFileSync(join(dir, file), `${JSON.stringify(json, null, 2)}\n`);
    }
  }
}

/**
 * The ONNX model folder of a single-file SD-1.x / 2.x checkpoint, built on first use (components are cached by
 * content, so later calls cost a few hashes of small files). `family` comes from detectCheckpoint. Throws
 * onnx-graph's CheckpointError when a component cannot be built (a missing tensor is named).
 */
export async function modelFolderFromCheckpoint(checkpoint: string, family: SingleFileFamily, options: SingleFileModelOptions = {}): Promise<SingleFileModel> {
  const file = resolve(checkpoint);
  const vaeFile = options.vae ? resolve(options.vae) : file;
  const o = options.overrides ?? {};
  const built: CheckpointComponentName[] = [];
  const cacheDir = resolve(options.cacheDir ?? derivedCacheDir(file));
  if (isSdxl(family.text) && [...(options.unetLoras ?? []), ...(options.textLoras ?? [])].some((l) => l.strength !== 0)) {
    throw new CheckpointError(`${basename(file)} is an SDXL checkpoint: LoRAs are applied to SD-1.x / 2.x checkpoints; SDXL LoRAs (two text encoders, SDXL's module names) are not supported yet`, 'unsupported');
  }
  const unetLoras = await loraPlan(options.unetLoras, 'unet', cacheDir, options.onLoraReport);
  const textLoras = await loraPlan(options.textLoras, 'text_encoder', cacheDir, options.onLoraReport);
  const vae = { ...(isSdxl(family.text) ? { scalingFactor: SDXL_VAE_SCALING_FACTOR } : {}), ...o.vae };
  const plans: Partial<Record<CheckpointComponentName, ComponentPlan>> = {
    vae_decoder: { file: vaeFile, overrides: vae },
    vae_encoder: { file: vaeFile, overrides: vae },
  };
  if (isSdxl(family.text)) {
    // optimum's SDXL exports: every layer's raw state out (SDXL conditions on the penultimate one), and the second
    // encoder with its projection (the pooled text_embeds).
    const prefixes: Partial<Record<'text_encoder' | 'text_encoder_2', string>> = SDXL_ENCODER_PREFIXES[family.text];
    if (prefixes.text_encoder) plans.text_encoder = { file, overrides: { prefix: prefixes.text_encoder, hiddenStates: true, ...o.text } };
    plans.text_encoder_2 = { file, overrides: { prefix: prefixes.text_encoder_2, hiddenStates: true, withProjection: true, ...o.text } };
  } else {
    plans.text_encoder = { file, overrides: { ...o.text }, ...(textLoras ? { extra: textLoras } : {}) };
  }
  // One at a time: each build streams its weights through memory once; two at once would double the peak.
  const components: Partial<Record<CheckpointComponentName, CheckpointComponent>> = {};
  for (const name of ['text_encoder', 'text_encoder_2'] as const) {
    const plan = plans[name];
    if (plan) components[name] = await component(name, plan, { ...options, cacheDir }, built);
  }
  // SDXL's UNet takes the second encoder's projected pooled text: its width splits label_emb's input.
  const pooled = components.text_encoder_2?.config as { projectionDim?: number } | undefined;
  plans.unet = {
    file,
    overrides: { ...(pooled?.projectionDim ? { added: { textEmbedsDim: pooled.projectionDim } } : {}), ...o.unet },
    ...(unetLoras ? { extra: unetLoras } : {}),
  };
  for (const name of ['unet', 'vae_decoder', 'vae_encoder'] as const) components[name] = await component(name, plans[name]!, { ...options, cacheDir }, built);

  const tokenizer = options.tokenizer ? resolve(options.tokenizer) : undefined;
  const modelKey = createHash('sha256')
    .update(JSON.stringify({ v: ASSEMBLY_VERSION, family, tokenizer: tokenizer ?? null, parts: Object.fromEntries(Object.entries(components).map(([k, c]) => [k, c.dir])) }))
    .digest('hex')
    .slice(0, 32);
  const modelsDir = join(cacheDir, 'models');
  const dir = join(modelsDir, modelKey);
  const provenance = {
    checkpoint: file,
    family,
    ...(vaeFile !== file ? { vae: vaeFile } : {}),
    unetLoras: (options.unetLoras ?? []).map((l) => ({ path: resolve(l.path), strength: l.strength })),
    textLoras: (options.textLoras ?? []).map((l) => ({ path: resolve(l.path), strength: l.strength })),
    ...(options.overrides && Object.values(options.overrides).some((v) => v && Object.keys(v).length) ? { overrides: options.overrides } : {}),
  };
  if (!existsSync(join(dir, 'model_index.json'))) {
    for (const encoder of [components.text_encoder, components.text_encoder_2]) if (encoder) checkVocabulary(tokenizer ?? bundledClipTokenizerDir(), encoder, file);
    assemble(dir, provenance, components, modelsDir, cacheDir, tokenizer);
  }
  return { dir, components, built };
}

/**
 * A tokenizer whose ids run past the text encoder's embedding rows would fail at the first prompt with an
 * onnxruntime Gather error: said here instead, naming both sizes.
 */
function checkVocabulary(tokenizerDir: string, textEncoder: CheckpointComponent, checkpoint: string): void {
  const rows = (textEncoder.diffusersConfig as { vocab_size?: unknown } | undefined)?.vocab_size;
  if (typeof rows !== 'number') return;
  const vocab = JSON.parse(readFileSync(join(tokenizerDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const ids = Math.max(...Object.values(vocab)) + 1;
  if (ids > rows) {
    throw new Error(
      `${basename(checkpoint)}: its text encoder embeds ${rows} tokens but the tokenizer (${tokenizerDir}) has ${ids}: ` +
        'this checkpoint was trained with another vocabulary than CLIP\'s; give its tokenizer folder (vocab.json + merges.txt)',
    );
  }
}

/** Writes the model folder under a temporary name and renames it into place (a reader never sees half of one). */
function assemble(
  dir: string,
  provenance: { checkpoint: string; family: SingleFileFamily; vae?: string; unetLoras: LoraUse[]; textLoras: LoraUse[]; overrides?: SingleFileOverrides },
  components: Partial<Record<CheckpointComponentName, CheckpointComponent>>,
  modelsDir: string,
  cacheDir: string,
  tokenizer: string | undefined,
): void {
  ensureCacheDir(cacheDir);
  mkdirSync(modelsDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const [name, c] of Object.entries(components)) symlinkSync(relative(dir, c.dir), join(tmp, name), 'dir');
  const text = provenance.family.text;
  // SDXL's tokenizer pads with the end token for CLIP-L and with "!" for OpenCLIP bigG, as its folders ship them.
  if (components.text_encoder) writeTokenizer(join(tmp, 'tokenizer'), text === 'sd2' ? 'sd2' : 'sd1', tokenizer);
  if (components.text_encoder_2) writeTokenizer(join(tmp, 'tokenizer_2'), 'sd2', tokenizer);
  mkdirSync(join(tmp, 'scheduler'));
  writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), `${JSON.stringify(sdSchedulerConfig(provenance.family.prediction, text), null, 2)}\n`);
  const onnx = ['onnxruntime', 'OnnxRuntimeModel'];
  const index = {
    _class_name: isSdxl(text) ? 'ORTStableDiffusionXLPipeline' : 'OnnxStableDiffusionPipeline',
    // What it was built from: the loaders read it back (a LoRA applied to this model rebuilds from the same files).
    _gategraph: { builtFrom: basename(provenance.checkpoint), ...provenance },
    ...(components.text_encoder ? { text_encoder: onnx, tokenizer: ['transformers', 'CLIPTokenizer'] } : {}),
    ...(components.text_encoder_2 ? { text_encoder_2: onnx, tokenizer_2: ['transformers', 'CLIPTokenizer'] } : {}),
    unet: onnx,
    vae_decoder: onnx,
    vae_encoder: onnx,
    scheduler: ['diffusers', isSdxl(text) ? 'EulerDiscreteScheduler' : 'PNDMScheduler'],
  };
  writeFileSync(join(tmp, 'model_index.json'), `${JSON.stringify(index, null, 2)}\n`);
  try {
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    // Another process assembled the same folder first: theirs is the same.
    if (!existsSync(join(dir, 'model_index.json'))) throw err;
  }
}

/**
 * A standalone VAE file (ComfyUI's models/vae/, LDM VAE keys with or without `first_stage_model.`) as a folder
 * with vae_decoder/ and vae_encoder/, for openVaeFolder.
 */
export async function vaeFolderFromFile(
  file: string,
  options: Pick<SingleFileModelOptions, 'cacheDir' | 'onBuild'> & { overrides?: SingleFileOverrides['vae'] } = {},
): Promise<{ dir: string; components: Record<'vae_decoder' | 'vae_encoder', CheckpointComponent>; built: CheckpointComponentName[] }> {
  const path = resolve(file);
  const built: CheckpointComponentName[] = [];
  const plan: ComponentPlan = { file: path, overrides: { ...options.overrides } };
  const components = {
    vae_decoder: await component('vae_decoder', plan, options, built),
    vae_encoder: await component('vae_encoder', plan, options, built),
  };
  const cacheDir = resolve(options.cacheDir ?? derivedCacheDir(path));
  const key = createHash('sha256')
    .update(JSON.stringify({ v: ASSEMBLY_VERSION, parts: [components.vae_decoder.dir, components.vae_encoder.dir] }))
    .digest('hex')
    .slice(0, 32);
  const vaesDir = join(cacheDir, 'vaes');
  const dir = join(vaesDir, key);
  if (!existsSync(join(dir, 'vae_decoder'))) {
    ensureCacheDir(cacheDir);
    mkdirSync(vaesDir, { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    for (const [name, c] of Object.entries(components)) symlinkSync(relative(dir, c.dir), join(tmp, name), 'dir');
    try {
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(join(dir, 'vae_decoder'))) throw err;
    }
  }
  return { dir, components, built };
}

/**
 * A standalone text encoder file (ComfyUI's models/text_encoders, e.g. clip_l.safetensors: transformers' or
 * OpenCLIP's names) as a folder with text_encoder/ and CLIP's tokenizer, for openTextEncoderFolder.
 */
export async function textEncoderFolderFromFile(
  file: string,
  text: 'sd1' | 'sd2',
  options: Pick<SingleFileModelOptions, 'cacheDir' | 'onBuild' | 'tokenizer'> & { overrides?: SingleFileOverrides['text'] } = {},
): Promise<{ dir: string; component: CheckpointComponent; built: CheckpointComponentName[] }> {
  const path = resolve(file);
  const built: CheckpointComponentName[] = [];
  const encoder = await component('text_encoder', { file: path, overrides: { ...options.overrides } }, options, built);
  const dir = assembleTextEncoders({ text_encoder: encoder }, { file: path, text }, text === 'sd2' ? 'sd2' : 'sd1', resolve(options.cacheDir ?? derivedCacheDir(path)), options.tokenizer);
  return { dir, component: encoder, built };
}

/**
 * SDXL's two text encoders from standalone files (ComfyUI's DualCLIPLoader, type sdxl: clip_l.safetensors, CLIP
 * ViT-L/14, and clip_g.safetensors, OpenCLIP ViT-bigG/14 with its text_projection; transformers' or OpenCLIP's
 * names) as a folder with text_encoder/, text_encoder_2/ and their tokenizers, for openTextEncoderFolder. Each is
 * built as an SDXL folder's encoders are (every layer's raw output; the second with its projection).
 */
export async function sdxlTextEncoderFolderFromFiles(
  clipL: string,
  clipG: string,
  options: Pick<SingleFileModelOptions, 'cacheDir' | 'onBuild' | 'tokenizer'> = {},
): Promise<{ dir: string; components: Record<'text_encoder' | 'text_encoder_2', CheckpointComponent>; built: CheckpointComponentName[] }> {
  const l = resolve(clipL);
  const g = resolve(clipG);
  const built: CheckpointComponentName[] = [];
  const components = {
    text_encoder: await component('text_encoder', { file: l, overrides: { hiddenStates: true } }, options, built),
    text_encoder_2: await component('text_encoder_2', { file: g, overrides: { hiddenStates: true, withProjection: true } }, options, built),
  };
  const dir = assembleTextEncoders(components, { files: [l, g], text: 'sdxl' }, 'sd1', resolve(options.cacheDir ?? derivedCacheDir(l)), options.tokenizer);
  return { dir, components, built };
}

/** The folder of standalone text encoders (`<cache>/text-encoders/<key>/`), written once under a temporary name. */
function assembleTextEncoders(
  components: Partial<Record<'text_encoder' | 'text_encoder_2', CheckpointComponent>>,
  builtFrom: Record<string, unknown>,
  padding: 'sd1' | 'sd2',
  cacheDir: string,
  tokenizerOption: string | undefined,
): string {
  const tokenizer = tokenizerOption ? resolve(tokenizerOption) : undefined;
  const parts = Object.fromEntries(Object.entries(components).map(([k, c]) => [k, c.dir]));
  const key = createHash('sha256')
    .update(JSON.stringify({ v: ASSEMBLY_VERSION, text: builtFrom.text, parts, tokenizer: tokenizer ?? null }))
    .digest('hex')
    .slice(0, 32);
  const encodersDir = join(cacheDir, 'text-encoders');
  const dir = join(encodersDir, key);
  if (existsSync(join(dir, 'model_index.json'))) return dir;
  for (const encoder of Object.values(components)) checkVocabulary(tokenizer ?? bundledClipTokenizerDir(), encoder, String(builtFrom.file ?? (builtFrom.files as string[])[0]));
  ensureCacheDir(cacheDir);
  mkdirSync(encodersDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  if (components.text_encoder) {
    symlinkSync(relative(dir, components.text_encoder.dir), join(tmp, 'text_encoder'), 'dir');
    writeTokenizer(join(tmp, 'tokenizer'), padding, tokenizer);
  }
  if (components.text_encoder_2) {
    symlinkSync(relative(dir, components.text_encoder_2.dir), join(tmp, 'text_encoder_2'), 'dir');
    writeTokenizer(join(tmp, 'tokenizer_2'), 'sd2', tokenizer);
  }
  // What it was built from, as a model folder's index records it (a loader's messages name it).
  writeFileSync(join(tmp, 'model_index.json'), `${JSON.stringify({ _gategraph_text_encoder: builtFrom }, null, 2)}\n`);
  try {
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, 'model_index.json'))) throw err;
  }
  return dir;
}
