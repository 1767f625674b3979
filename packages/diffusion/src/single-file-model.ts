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
  /** 'sd1': CLIP ViT-L/14 text encoder; 'sd2': OpenCLIP ViT-H/14 (pads prompts with "!"). */
  readonly text: 'sd1' | 'sd2';
  readonly prediction: 'epsilon' | 'v_prediction';
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
  components: Record<CheckpointComponentName, CheckpointComponent>;
  /** Components built by this call (the others came from the cache). */
  built: CheckpointComponentName[];
}

type Builder = (source: WeightSource, overrides: Record<string, unknown>) => ComponentBuild;

const BUILDERS: Record<CheckpointComponentName, Builder> = {
  unet: (source, overrides) => buildLdmUnet(source, overrides as UnetOverrides),
  text_encoder: (source, overrides) => buildClipText(source, overrides),
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

/** The diffusers scheduler config SD-1.x / 2.x checkpoints were trained with (the LDM configs' schedule). */
export function sdSchedulerConfig(prediction: SingleFileFamily['prediction']): Record<string, unknown> {
  return {
    _class_name: 'PNDMScheduler',
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

/** CLIP's tokenizer files (or `source`'s), with OpenCLIP's "!" padding for SD-2.x text encoders. */
function writeTokenizer(dir: string, text: SingleFileFamily['text'], source = bundledClipTokenizerDir()): void {
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
  const unetLoras = await loraPlan(options.unetLoras, 'unet', cacheDir, options.onLoraReport);
  const textLoras = await loraPlan(options.textLoras, 'text_encoder', cacheDir, options.onLoraReport);
  const plans: Record<CheckpointComponentName, ComponentPlan> = {
    unet: { file, overrides: { ...o.unet }, ...(unetLoras ? { extra: unetLoras } : {}) },
    text_encoder: { file, overrides: { ...o.text }, ...(textLoras ? { extra: textLoras } : {}) },
    vae_decoder: { file: vaeFile, overrides: { ...o.vae } },
    vae_encoder: { file: vaeFile, overrides: { ...o.vae } },
  };
  // One at a time: each build streams its weights through memory once; two at once would double the peak.
  const components = {} as Record<CheckpointComponentName, CheckpointComponent>;
  for (const name of ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'] as const) components[name] = await component(name, plans[name], { ...options, cacheDir }, built);

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
    checkVocabulary(tokenizer ?? bundledClipTokenizerDir(), components.text_encoder, file);
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
  components: Record<CheckpointComponentName, CheckpointComponent>,
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
  writeTokenizer(join(tmp, 'tokenizer'), provenance.family.text, tokenizer);
  mkdirSync(join(tmp, 'scheduler'));
  writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), `${JSON.stringify(sdSchedulerConfig(provenance.family.prediction), null, 2)}\n`);
  const index = {
    _class_name: 'OnnxStableDiffusionPipeline',
    // What it was built from: the loaders read it back (a LoRA applied to this model rebuilds from the same files).
    _gategraph: { builtFrom: basename(provenance.checkpoint), ...provenance },
    text_encoder: ['onnxruntime', 'OnnxRuntimeModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['onnxruntime', 'OnnxRuntimeModel'],
    vae_decoder: ['onnxruntime', 'OnnxRuntimeModel'],
    vae_encoder: ['onnxruntime', 'OnnxRuntimeModel'],
    scheduler: ['diffusers', 'PNDMScheduler'],
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
  text: SingleFileFamily['text'],
  options: Pick<SingleFileModelOptions, 'cacheDir' | 'onBuild' | 'tokenizer'> & { overrides?: SingleFileOverrides['text'] } = {},
): Promise<{ dir: string; component: CheckpointComponent; built: CheckpointComponentName[] }> {
  const path = resolve(file);
  const built: CheckpointComponentName[] = [];
  const encoder = await component('text_encoder', { file: path, overrides: { ...options.overrides } }, options, built);
  const tokenizer = options.tokenizer ? resolve(options.tokenizer) : undefined;
  const cacheDir = resolve(options.cacheDir ?? derivedCacheDir(path));
  const key = createHash('sha256')
    .update(JSON.stringify({ v: ASSEMBLY_VERSION, text, tokenizer: tokenizer ?? null, part: encoder.dir }))
    .digest('hex')
    .slice(0, 32);
  const encodersDir = join(cacheDir, 'text-encoders');
  const dir = join(encodersDir, key);
  if (!existsSync(join(dir, 'tokenizer'))) {
    checkVocabulary(tokenizer ?? bundledClipTokenizerDir(), encoder, path);
    ensureCacheDir(cacheDir);
    mkdirSync(encodersDir, { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    symlinkSync(relative(dir, encoder.dir), join(tmp, 'text_encoder'), 'dir');
    writeTokenizer(join(tmp, 'tokenizer'), text, tokenizer);
    // What it was built from, as a model folder's index records it (a loader's messages name it).
    writeFileSync(join(tmp, 'model_index.json'), `${JSON.stringify({ _gategraph_text_encoder: { file: path, text } }, null, 2)}\n`);
    try {
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(join(dir, 'tokenizer'))) throw err;
    }
  }
  return { dir, component: encoder, built };
}
