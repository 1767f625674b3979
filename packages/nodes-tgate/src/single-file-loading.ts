/**
 * Single-file checkpoints, VAEs and LoRAs for the loader nodes: a file is built into an ONNX model folder once
 * (@gategraph/diffusion's modelFolderFromCheckpoint, cached by content) and then opened like any model folder
 * (model-cache.ts shares it between nodes and runs).
 *
 * What a model was built from (its checkpoint, VAE file and LoRAs) is recorded in the assembled folder's
 * model_index.json (`_gategraph`), so LoraLoader can take a MODEL or CLIP and ask for the same model with one
 * more LoRA, without a second channel beside the value.
 */
import type { ExecutionContext } from '@gategraph/core';
import {
  detectCheckpoint,
  detectLora,
  detectSdxlTextEncoderFile,
  detectTextEncoderFile,
  detectVaeFile,
  modelFolderFromCheckpoint,
  PICKLE_EXTENSIONS,
  textEncoderFolderFromFile,
  sdxlTextEncoderFolderFromFiles,
  type OpenedTextEncoder,
  vaeFolderFromFile,
  type DiffusionModel,
  type LoraUse,
  type SingleFileFamily,
  type SingleFileOverrides,
  type OpenedVae,
} from '@gategraph/diffusion';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { loadModel, loadTextEncoder, loadVae } from './model-cache.ts';

/** Extensions read as safetensors (ComfyUI lists `.sft` as the same format). */
const SAFETENSORS_EXTENSIONS: readonly string[] = ['.safetensors', '.sft'];

export function isSafetensorsFile(path: string): boolean {
  if (!SAFETENSORS_EXTENSIONS.includes(extname(path).toLowerCase())) return false;
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** What a model assembled from single files was built from. */
export interface SingleFileProvenance {
  readonly checkpoint: string;
  readonly family: SingleFileFamily;
  readonly vae?: string;
  readonly unetLoras: readonly LoraUse[];
  readonly textLoras: readonly LoraUse[];
  /** What a config file (CheckpointLoader's config_name) said that the checkpoint's tensors do not. */
  readonly overrides?: SingleFileOverrides;
}

/** The provenance recorded in a model's model_index.json; undefined for a model that is an ONNX folder. */
export function provenanceOf(model: Pick<DiffusionModel, 'index'>): SingleFileProvenance | undefined {
  const record = model.index._gategraph as Partial<SingleFileProvenance> | undefined;
  if (!record || typeof record.checkpoint !== 'string' || !record.family) return undefined;
  return {
    checkpoint: record.checkpoint,
    family: record.family,
    ...(typeof record.vae === 'string' ? { vae: record.vae } : {}),
    unetLoras: Array.isArray(record.unetLoras) ? record.unetLoras : [],
    textLoras: Array.isArray(record.textLoras) ? record.textLoras : [],
    ...(record.overrides && typeof record.overrides === 'object' ? { overrides: record.overrides } : {}),
  };
}

/**
 * Where a file's built graphs go: next to it (`.gategraph-derived/`, the default), or, when its folder cannot be
 * written (a read-only share of models), under the host's models folder, said once in the log.
 */
function cacheDirFor(file: string, ctx: Pick<ExecutionContext, 'log' | 'paths'>): { cacheDir?: string } {
  const folder = dirname(file);
  const next = join(folder, '.gategraph-derived');
  try {
    accessSync(existsSync(next) ? next : folder, constants.W_OK);
    return {};
  } catch {
    const fallback = join(ctx.paths.models, '.gategraph-derived', 'single-files');
    if (!announcedReadOnly.has(folder)) {
      announcedReadOnly.add(folder);
      ctx.log.info(`${folder} cannot be written: the graphs built from its files are cached in ${fallback}`);
    }
    return { cacheDir: fallback };
  }
}
const announcedReadOnly = new Set<string>();

/**
 * Builds from one file run one after another in this process (two workers loading the same checkpoint would
 * otherwise write the same cache entries at once); the second then finds the first's entries.
 */
const builds = new Map<string, Promise<unknown>>();
async function oneBuildAtATime<T>(file: string, build: () => Promise<T>): Promise<T> {
  const key = resolve(file);
  const run = (builds.get(key) ?? Promise.resolve()).catch(() => {}).then(build);
  builds.set(key, run);
  try {
    return await run;
  } finally {
    if (builds.get(key) === run) builds.delete(key);
  }
}

const COMPONENT_LABELS = { text_encoder: 'text encoder', text_encoder_2: 'second text encoder', unet: 'UNet', vae_decoder: 'VAE decoder', vae_encoder: 'VAE encoder' } as const;

/** The log line of a component being built (a first use takes seconds to minutes). */
function announceBuild(ctx: Pick<ExecutionContext, 'log'>, label: string) {
  return (component: keyof typeof COMPONENT_LABELS, source: string) =>
    ctx.log.info(`${label}: building the ${COMPONENT_LABELS[component]} from ${source} (first use of this file; cached for later runs)`);
}

/**
 * The model built from `provenance` (its checkpoint, VAE file and LoRAs), opened and shared. The first load of a
 * file builds its components (seconds to minutes, reported as progress and in the log); later loads reuse them.
 */
export async function loadSingleFileModel(provenance: SingleFileProvenance, ctx: Pick<ExecutionContext, 'log' | 'progress' | 'paths'>, label: string): Promise<DiffusionModel> {
  let done = 0;
  // SDXL has a second text encoder; its refiner only that one.
  const total = provenance.family.text === 'sdxl' ? 5 : 4;
  const built = await oneBuildAtATime(provenance.checkpoint, () => modelFolderFromCheckpoint(provenance.checkpoint, provenance.family, {
    ...cacheDirFor(provenance.checkpoint, ctx),
    ...(provenance.vae ? { vae: provenance.vae } : {}),
    unetLoras: provenance.unetLoras,
    textLoras: provenance.textLoras,
    ...(provenance.overrides ? { overrides: provenance.overrides } : {}),
    onBuild(component, source) {
      announceBuild(ctx, label)(component, source);
      ctx.progress(done++, total);
    },
    onLoraReport(component, report) {
      for (const file of report.files) {
        const matched = component === 'unet' ? file.unet : file.text;
        ctx.log.info(`${label}: ${basename(file.path)} changes ${matched} ${COMPONENT_LABELS[component]} modules`);
      }
      // As ComfyUI's "lora key not loaded": a LoRA for another model, or modules of a kind not applied.
      if (report.unmatched.length) {
        const shown = report.unmatched.slice(0, 8).join(', ');
        ctx.log.warn(`${label}: ${report.unmatched.length} LoRA modules match nothing in this checkpoint and were skipped: ${shown}${report.unmatched.length > 8 ? ', ...' : ''}`);
      }
    },
  }));
  if (built.built.length) {
    ctx.progress(total, total);
    // Every tensor no graph reads is named (a variant architecture, a merge artefact), once, when the graphs are
    // built: no weight is dropped silently.
    const unknown = [...new Set(Object.values(built.components).flatMap((c) => c.keys.unknown))].sort();
    if (unknown.length) {
      ctx.log.warn(`${label}: ${unknown.length} tensors of ${basename(provenance.checkpoint)} are used by no component (not an SD-1.x / 2.x / SDXL weight gategraph knows): ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', ...' : ''}`);
    }
  }
  return loadModel(built.dir);
}

/** The family of a checkpoint file, or the one-sentence reason gategraph does not run it. */
export function checkpointFamily(path: string): { family: SingleFileFamily } | { refusal: string } {
  const detected = detectCheckpoint(path);
  if ('refusal' in detected) return { refusal: detected.refusal };
  return { family: detected.family };
}

/** Why a file in models/vae cannot be used as a VAE (what it is instead), or undefined when it can. */
export function vaeFileProblem(path: string): string | undefined {
  return fileProblem(path, 'VAE', detectVaeFile);
}

/** Why a file in models/text_encoders cannot be used as SD's text encoder (what it is instead), or undefined when it can. */
export function textEncoderFileProblem(path: string): string | undefined {
  return fileProblem(path, 'text encoder', detectTextEncoderFile);
}

/** A standalone text encoder file (models/text_encoders/), built once with CLIP's tokenizer and opened. */
export async function loadTextEncoderFile(path: string, ctx: Pick<ExecutionContext, 'log' | 'paths'>, label: string): Promise<OpenedTextEncoder> {
  const detected = detectTextEncoderFile(path);
  if ('refusal' in detected) throw detected.error;
  const { dir } = await oneBuildAtATime(path, () =>
    textEncoderFolderFromFile(path, detected.family, { ...cacheDirFor(path, ctx), onBuild: announceBuild(ctx, label) }),
  );
  return loadTextEncoder(dir, label);
}

/** Why a file in models/text_encoders cannot be one of SDXL's text encoders (DualCLIPLoader), or undefined when it can. */
export function sdxlTextEncoderFileProblem(path: string): string | undefined {
  return fileProblem(path, 'text encoder', detectSdxlTextEncoderFile);
}

/**
 * SDXL's two text encoders from standalone files (DualCLIPLoader, type sdxl), in either order as ComfyUI takes
 * them: each file's role (CLIP ViT-L/14 or OpenCLIP ViT-bigG/14) is told from its tensors.
 */
export async function loadSdxlTextEncoderFiles(paths: readonly [string, string], ctx: Pick<ExecutionContext, 'log' | 'paths'>, label: string): Promise<OpenedTextEncoder> {
  const roles = paths.map((path) => {
    const detected = detectSdxlTextEncoderFile(path);
    if ('refusal' in detected) throw detected.error;
    return { path, role: detected.role };
  });
  const l = roles.find((r) => r.role === 'l');
  const g = roles.find((r) => r.role === 'g');
  if (!l || !g) {
    const both = roles[0]!.role === 'l' ? 'CLIP ViT-L/14 (clip_l)' : 'OpenCLIP ViT-bigG/14 (clip_g)';
    throw new Error(`both files are ${both}: SDXL takes one CLIP ViT-L/14 file (clip_l) and one OpenCLIP ViT-bigG/14 file (clip_g)`);
  }
  const { dir } = await oneBuildAtATime(l.path, () => sdxlTextEncoderFolderFromFiles(l.path, g.path, { ...cacheDirFor(l.path, ctx), onBuild: announceBuild(ctx, label) }));
  return loadTextEncoder(dir, label);
}

/** Why a file in models/loras cannot be used as a LoRA (what it is instead), or undefined when it can. */
export function loraFileProblem(path: string): string | undefined {
  return fileProblem(path, 'LoRA', detectLora);
}

function fileProblem(path: string, what: string, detect: (path: string) => object | { refusal: string; error: { reason: string } }): string | undefined {
  const ext = extname(path).toLowerCase();
  if (!SAFETENSORS_EXTENSIONS.includes(ext) && !PICKLE_EXTENSIONS.includes(ext)) {
    return `gategraph reads ${what} files in the safetensors format (.safetensors, .sft)`;
  }
  const detected = detect(path); // pickles are refused unopened, with how to convert them
  return 'refusal' in detected ? detected.error.reason : undefined;
}

/** A standalone VAE file (models/vae/), built once and opened. */
export async function loadVaeFile(path: string, ctx: Pick<ExecutionContext, 'log' | 'paths'>, label: string): Promise<OpenedVae> {
  const { dir } = await oneBuildAtATime(path, () => vaeFolderFromFile(path, { ...cacheDirFor(path, ctx), onBuild: announceBuild(ctx, label) }));
  return loadVae(dir, label);
}
