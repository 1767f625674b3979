/**
 * Where the loaders' and LoadImage's combos look for files: the public face of model-paths.ts (ComfyUI's model
 * folder kinds and extra_model_paths.yaml, extra-model-paths.ts) and of the input folders.
 *
 * Combo values are computed when object_info is built and when a prompt is validated, before any node runs.
 * They list the host's folder (`ComboContext.paths`, when the host passes it) first, then:
 *
 * - models: the models roots are the host's folder, the folders in `GATEGRAPH_MODELS` (one or more, separated
 *   by the platform's path delimiter, `:` on Linux), then `<workspace root>/models`. In each root, ONNX model
 *   folders (and checkpoint files) directly inside it, as always, and ComfyUI's kind folders: `checkpoints/`,
 *   `vae/`, `loras/`, `embeddings/`, `diffusers/`, `text_encoders/` (and `clip/`). extra_model_paths.yaml files
 *   add more kind folders (model-paths.ts says in which order);
 * - input images: the folders in `GATEGRAPH_INPUT`, then `<workspace root>/input`;
 *
 * where the workspace root is the folder with `pnpm-workspace.yaml` above the current directory (what hosts use
 * by default), and also the one above this pack. At run time the node looks in the host's folder
 * (`ctx.paths.models` / `ctx.paths.input`) first, then in those. Hosts pass their folders to the combos
 * (`ComboContext.paths`), which are listed first, so `gategraph run --models-dir X` and the server's folder
 * options list X's entries; their `--extra-model-paths-config` options reach this pack through
 * `GATEGRAPH_EXTRA_MODEL_PATHS`.
 */
import type { ComboContext } from '@gategraph/core';
import { CHECKPOINT_FILE_EXTENSIONS, isModelFolder, listModelFolders } from '@gategraph/diffusion';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import {
  compareCodePoints,
  comboModelOptions,
  envFolders,
  insideOrUndefined,
  listModelNames,
  modelFolderPaths,
  modelNameProblem,
  modelRoots,
  unique,
  workspaceRoots,
  SUPPORTED_PT_EXTENSIONS,
} from './model-paths.ts';

export {
  MODEL_KINDS,
  SUPPORTED_PT_EXTENSIONS,
  KIND_SUBFOLDERS,
  modelKindOf,
  modelFolderPaths,
  existingModelFolders,
  listModelNames,
  resolveModelFile,
  modelNameProblem,
  modelRoots,
  modelSearchFolders,
  insideOrUndefined,
  compareCodePoints,
  scanModelFolder,
  type ModelKind,
  type ModelPathsOptions,
  type ResolvedModelFile,
  type ListedModel,
} from './model-paths.ts';
export {
  EXTRA_MODEL_PATHS_ENV,
  EXTRA_MODEL_PATHS_FILE,
  ExtraModelPathsError,
  parseExtraModelPaths,
  readExtraModelPathsFile,
  extraModelPathsProblem,
  extraModelPathsFiles,
  setModelPathsLogger,
  type ExtraModelPath,
  type ParsedExtraModelPaths,
} from './extra-model-paths.ts';

/**
 * Folders `embedding:NAME` is looked up in, in order: the embeddings folders of the host's models folder, of the
 * other models roots, and those extra_model_paths.yaml adds (ComfyUI's `embeddings` folders).
 */
export function embeddingFolders(hostModels: string | undefined): string[] {
  return modelFolderPaths('embeddings', { hostModels });
}

/** Folders whose images the LoadImage combo lists, in priority order. */
export function inputSearchFolders(): string[] {
  return unique([...envFolders('GATEGRAPH_INPUT'), ...workspaceRoots().map((r) => join(r, 'input'))]);
}

/**
 * The ckpt_name combo: ONNX model folders (diffusers/optimum layouts) and checkpoint files directly in the models
 * roots (as always), and ComfyUI's `checkpoints` (files, `sub/name.safetensors`, and ONNX folders) and
 * `diffusers` (ONNX folders) kinds. Sorted by code point, as ComfyUI sorts.
 */
export function listCheckpoints(context: ComboContext = {}): string[] {
  const options = comboModelOptions(context);
  const names = new Set<string>();
  for (const root of modelRoots(options.hostModels)) for (const name of listModelFolders(root)) names.add(name);
  for (const name of listModelNames('checkpoints', options)) names.add(name);
  for (const name of listModelNames('diffusers', options)) names.add(name);
  return [...names].sort(compareCodePoints);
}

/** The config_name combo (CheckpointLoader): the LDM .yaml configs in the `configs` folders. */
export function listConfigs(context: ComboContext = {}): string[] {
  return listModelNames('configs', comboModelOptions(context));
}

/** The vae_name combo (VAELoader): files in the `vae` folders. */
export function listVaes(context: ComboContext = {}): string[] {
  return listModelNames('vae', comboModelOptions(context));
}

/** The lora_name combo (LoraLoader): files in the `loras` folders. */
export function listLoras(context: ComboContext = {}): string[] {
  return listModelNames('loras', comboModelOptions(context));
}

/** Files in the `text_encoders` (and legacy `clip`) folders (CLIPLoader). */
export function listTextEncoders(context: ComboContext = {}): string[] {
  return listModelNames('text_encoders', comboModelOptions(context));
}

/** Files in the `embeddings` folders. */
export function listEmbeddings(context: ComboContext = {}): string[] {
  return listModelNames('embeddings', comboModelOptions(context));
}

/** Whether `name` looks like a single-file checkpoint (ComfyUI's extensions) rather than an ONNX folder. */
export function isCheckpointFileName(name: string): boolean {
  const ext = extname(name).toLowerCase();
  return SUPPORTED_PT_EXTENSIONS.includes(ext) || CHECKPOINT_FILE_EXTENSIONS.includes(ext);
}

/**
 * What ckpt_name `name` stands for: in each models root `<root>/<name>` (an ONNX folder or a file, as always),
 * then in the `checkpoints` folders (a file or an ONNX folder), then in the `diffusers` folders. The first
 * complete model folder wins, else the first that exists (a checkpoint file, or a folder whose opening reports
 * what is missing), else undefined. `dir` is then a file's path for a single-file checkpoint. Names that leave
 * the folders (`..`, absolute) resolve to nothing.
 */
export function resolveModelFolder(name: string, hostModels: string | undefined): { dir?: string; searched: string[] } {
  const roots = modelRoots(hostModels);
  const searched = unique([...roots, ...modelFolderPaths('checkpoints', { hostModels }), ...modelFolderPaths('diffusers', { hostModels })]);
  if (modelNameProblem(name)) return { searched };
  const candidates = searched.map((folder) => insideOrUndefined(folder, name)).filter((d): d is string => d !== undefined);
  const complete = candidates.find((dir) => isModelFolder(dir));
  if (complete) return { dir: complete, searched };
  const existing = candidates.find((dir) => existsSync(dir));
  return existing ? { dir: existing, searched } : { searched };
}

/** Extensions LoadImage lists (and can decode). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff'];

/** The LoadImage combo: image files in the input search folders (and their subfolders), '/'-separated, sorted. */
export function listInputImages(context: ComboContext = {}): string[] {
  const names = new Set<string>();
  const folders = unique([...(context.paths ? [resolve(context.paths.input)] : []), ...inputSearchFolders()]);
  for (const folder of folders) {
    for (const name of imageFilesIn(folder, '', 2)) names.add(name);
  }
  return [...names].sort((a, b) => a.localeCompare(b));
}

function imageFilesIn(folder: string, prefix: string, depth: number): string[] {
  let entries: string[];
  try {
    entries = readdirSync(join(folder, prefix));
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${entry}` : entry;
    let isDir = false;
    try {
      isDir = statSync(join(folder, rel)).isDirectory();
    } catch {
      continue;
    }
    if (isDir) {
      if (depth > 1) found.push(...imageFilesIn(folder, rel, depth - 1));
    } else if (IMAGE_EXTENSIONS.some((ext) => entry.toLowerCase().endsWith(ext))) {
      found.push(rel);
    }
  }
  return found;
}

/** The file of input image `name`: host input folder first, then the search folders; undefined when absent. */
export function resolveInputImage(name: string, hostInput: string | undefined): { file?: string; searched: string[] } {
  const searched = unique([...(hostInput ? [resolve(hostInput)] : []), ...inputSearchFolders()]);
  for (const folder of searched) {
    const file = insideOrUndefined(folder, name);
    if (file && existsSync(file) && statSync(file).isFile()) return { file, searched };
  }
  return { searched };
}
