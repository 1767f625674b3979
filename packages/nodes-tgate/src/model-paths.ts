/**
 * Model folders as ComfyUI lays them out (its `folder_paths.py`): each kind of model file has its folders, in
 * priority order, and a list of names found in them.
 *
 * The folders of a kind, in order (as ComfyUI builds its list, then adds extra_model_paths.yaml's):
 *
 * 1. the folders extra_model_paths.yaml marks `is_default` (each put in front of those before it, as ComfyUI does);
 * 2. in each models root, the kind's subfolders (`checkpoints/`; `text_encoders/` then `clip/` ...); the models
 *    roots are the host's folder (`--models-dir`, `--models-directory`: ComboContext.paths / ctx.paths), then the
 *    folders in `GATEGRAPH_MODELS`, then `<workspace root>/models`;
 * 3. the other folders of extra_model_paths.yaml files (extra-model-paths.ts), in file order.
 *
 * A folder that is not there is skipped (one named by an extra_model_paths.yaml is logged once). Names are
 * paths relative to their kind's folder with `/` separators (`sub/name.safetensors`), found recursively,
 * following symlinks, skipping hidden files and folders (`.git`, `.gategraph-derived` caches), merged over
 * all folders and sorted by code point as ComfyUI's `sorted()` does. Listing reads names and stats only.
 *
 * An ONNX model folder (one holding `model_index.json`) is a model, listed by its folder's name; nothing inside
 * it is listed (its `unet/*.safetensors` are not checkpoints).
 */
import type { ComboContext } from '@gategraph/core';
import { findWorkspaceRoot } from '@gategraph/core';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extraModelPathsFiles, loadExtraModelPaths, warnOnce, type ExtraModelPath } from './extra-model-paths.ts';

/** The kinds of model folder gategraph knows, with ComfyUI's names. */
export type ModelKind = 'checkpoints' | 'configs' | 'vae' | 'loras' | 'embeddings' | 'diffusers' | 'text_encoders' | 'diffusion_models';
export const MODEL_KINDS: readonly ModelKind[] = ['checkpoints', 'configs', 'vae', 'loras', 'embeddings', 'diffusers', 'text_encoders', 'diffusion_models'];

/** ComfyUI's `supported_pt_extensions`: the files listed for every kind but `diffusers`. */
export const SUPPORTED_PT_EXTENSIONS: readonly string[] = ['.ckpt', '.pt', '.pt2', '.bin', '.pth', '.safetensors', '.pkl', '.sft'];

/** The subfolders of a models root that hold each kind (ComfyUI's defaults, legacy folders last). */
export const KIND_SUBFOLDERS: Readonly<Record<ModelKind, readonly string[]>> = {
  checkpoints: ['checkpoints'],
  configs: ['configs'],
  vae: ['vae'],
  loras: ['loras'],
  embeddings: ['embeddings'],
  diffusers: ['diffusers'],
  text_encoders: ['text_encoders', 'clip'],
  diffusion_models: ['unet', 'diffusion_models'],
};

/** ComfyUI's legacy names (`map_legacy`): an extra_model_paths.yaml key `clip` adds text_encoders folders. */
const LEGACY_KINDS: Readonly<Record<string, ModelKind>> = { clip: 'text_encoders', unet: 'diffusion_models' };

/** The kind a name stands for (`clip` -> text_encoders), or undefined for kinds gategraph has no use for. */
export function modelKindOf(name: string): ModelKind | undefined {
  const mapped = LEGACY_KINDS[name] ?? name;
  return (MODEL_KINDS as readonly string[]).includes(mapped) ? (mapped as ModelKind) : undefined;
}

/** The deepest subfolder nesting listed (a guard; real model folders are shallow). */
const MAX_DEPTH = 16;

const packDir = dirname(fileURLToPath(import.meta.url));

export function unique(paths: readonly string[]): string[] {
  return [...new Set(paths)];
}

/** The folders in environment variable `name`, split on the path delimiter, absolute. */
export function envFolders(name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const value = env[name];
  if (!value) return [];
  return value
    .split(delimiter)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => resolve(p));
}

/** The workspace roots to search: the current directory's (as hosts use) and this pack's. */
export function workspaceRoots(): string[] {
  return unique([findWorkspaceRoot(), findWorkspaceRoot(packDir)]);
}

/** The models roots without the host's: `GATEGRAPH_MODELS` folders, then `<workspace root>/models`. */
export function modelSearchFolders(): string[] {
  return unique([...envFolders('GATEGRAPH_MODELS'), ...workspaceRoots().map((r) => join(r, 'models'))]);
}

/** The models roots, the host's folder first. */
export function modelRoots(hostModels: string | undefined): string[] {
  return unique([...(hostModels ? [resolve(hostModels)] : []), ...modelSearchFolders()]);
}

/** What decides where models are looked for; every part has a default from the process (tests pass their own). */
export interface ModelPathsOptions {
  /** The host's models folder (listed first of the roots). */
  hostModels?: string | undefined;
  /** Default: `GATEGRAPH_MODELS` folders, then `<workspace root>/models`. */
  roots?: readonly string[];
  /** The extra_model_paths.yaml files; default: the workspace root's, then GATEGRAPH_EXTRA_MODEL_PATHS. */
  extraConfigs?: readonly string[];
}

/** The folders added by the extra_model_paths.yaml files in force. */
export function extraModelPaths(options: ModelPathsOptions = {}): ExtraModelPath[] {
  return loadExtraModelPaths(options.extraConfigs ?? extraModelPathsFiles(workspaceRoots()));
}

/**
 * The folders of `kind`, in priority order (see the top of this file), existing or not. ComfyUI's
 * `get_folder_paths`.
 */
export function modelFolderPaths(kind: ModelKind, options: ModelPathsOptions = {}): string[] {
  return folderPathsWith(kind, options, extraModelPaths(options));
}

function folderPathsWith(kind: ModelKind, options: ModelPathsOptions, extras: readonly ExtraModelPath[]): string[] {
  const roots = unique([...(options.hostModels ? [resolve(options.hostModels)] : []), ...(options.roots ?? modelSearchFolders())]);
  const folders: string[] = [];
  for (const root of roots) for (const sub of KIND_SUBFOLDERS[kind]) folders.push(join(root, sub));
  const list = unique(folders);
  // As ComfyUI's add_model_folder_path: appended in order; is_default ones moved or put in front.
  for (const extra of extras) {
    if (modelKindOf(extra.kind) !== kind) continue;
    const at = list.indexOf(extra.path);
    if (extra.isDefault) {
      if (at > 0) list.splice(at, 1);
      if (at !== 0) list.unshift(extra.path);
    } else if (at < 0) {
      list.push(extra.path);
    }
  }
  return list;
}

/** Like modelFolderPaths, without the folders that are not there (those an extra_model_paths.yaml names are logged once). */
export function existingModelFolders(kind: ModelKind, options: ModelPathsOptions = {}): string[] {
  const extras = extraModelPaths(options);
  const named = new Map<string, ExtraModelPath>();
  for (const extra of extras) if (modelKindOf(extra.kind) === kind && !named.has(extra.path)) named.set(extra.path, extra);
  return folderPathsWith(kind, options, extras).filter((folder) => {
    if (isDirectory(folder)) return true;
    const extra = named.get(folder);
    if (extra) warnOnce(`${extra.file} line ${extra.line}: section "${extra.section}", ${extra.kind}: ${folder} is not a folder; skipped`);
    return false;
  });
}

/** Compares as Python compares str (by code point), which is how ComfyUI sorts its lists. */
export function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

export interface ListedModel {
  /** The name as listed: relative to its kind's folder, `/`-separated. */
  name: string;
  /** `folder`: an ONNX model folder (model_index.json); `file`: a file with one of the kind's extensions. */
  type: 'file' | 'folder';
}

/**
 * Files with the kind's extensions and ONNX model folders under `folder`, recursively, as names relative to it.
 * Hidden entries are skipped and symlinks followed (each real folder visited once, so a link loop ends).
 */
export function scanModelFolder(folder: string, extensions: readonly string[] = SUPPORTED_PT_EXTENSIONS): ListedModel[] {
  const found: ListedModel[] = [];
  const visited = new Set<string>();
  const walk = (dir: string, prefix: string, depth: number) => {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      return;
    }
    if (visited.has(real)) return;
    visited.add(real);
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const full = join(dir, entry);
      const name = prefix ? `${prefix}/${entry}` : entry;
      let stat;
      try {
        stat = statSync(full); // follows symlinks; a dangling link is skipped
      } catch {
        continue;
      }
      if (stat.isDirectory()) {
        if (existsSync(join(full, 'model_index.json'))) found.push({ name, type: 'folder' });
        else if (depth < MAX_DEPTH) walk(full, name, depth + 1);
      } else if (stat.isFile() && extensions.includes(extname(entry).toLowerCase())) {
        found.push({ name, type: 'file' });
      }
    }
  };
  walk(folder, '', 1);
  return found;
}

/**
 * The names of `kind` in its folders, merged and sorted (ComfyUI's `get_filename_list`): files with ComfyUI's
 * extensions, and for `checkpoints` and `diffusers` the ONNX model folders too (`diffusers` lists only those).
 */
export function listModelNames(kind: ModelKind, options: ModelPathsOptions = {}): string[] {
  const names = new Set<string>();
  for (const folder of existingModelFolders(kind, options)) {
    for (const item of scanModelFolder(folder, kindExtensions(kind))) {
      if (item.type === 'file' || kind === 'checkpoints' || kind === 'diffusers') names.add(item.name);
    }
  }
  return [...names].sort(compareCodePoints);
}

/** The file extensions listed for `kind` (ComfyUI's: .yaml for configs, none for diffusers' folders). */
function kindExtensions(kind: ModelKind): readonly string[] {
  return kind === 'diffusers' ? [] : kind === 'configs' ? ['.yaml'] : SUPPORTED_PT_EXTENSIONS;
}

/** The options for a combo computed for `context` (the host's models folder first). */
export function comboModelOptions(context: ComboContext = {}): ModelPathsOptions {
  return context.paths ? { hostModels: context.paths.models } : {};
}

/** Why `name` cannot name a model: empty, absolute, or leaving its folder with `..`; undefined when it is fine. */
export function modelNameProblem(name: string): string | undefined {
  if (name === '' || name.includes('\0')) return 'is not a file name';
  if (isAbsolute(name) || name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) {
    return 'is an absolute path; names are relative to the model folders';
  }
  if (name.split(/[\\/]/).includes('..')) return 'leaves the model folders (".." is not allowed in names)';
  return undefined;
}

/** `folder/name` when it stays inside `folder` (no `..`, no absolute name), else undefined. */
export function insideOrUndefined(folder: string, name: string): string | undefined {
  if (name === '' || isAbsolute(name) || name.includes('\0')) return undefined;
  const full = resolve(folder, name);
  const rel = relative(folder, full);
  if (rel === '' || rel.split(sep)[0] === '..' || isAbsolute(rel)) return undefined;
  return full;
}

export interface ResolvedModelFile {
  /** The absolute path of the first folder holding `name` (a file; for `diffusers` a model folder). */
  file?: string;
  /** The folders looked in, in order (for the "not found" message). */
  searched: string[];
  /** Set when the name itself is refused (absolute, `..`): a sentence ending what `name "x"` begins. */
  refused?: string;
}

/**
 * The file a listed name of `kind` stands for: the first of the kind's folders (modelFolderPaths order) that
 * holds it (ComfyUI's `get_full_path`). Names that leave the folder (`..`, absolute paths) are refused rather
 * than looked up. For `checkpoints`, an ONNX model folder of that name also counts (CheckpointLoaderSimple
 * lists both); for `diffusers` only model folders do.
 */
export function resolveModelFile(kind: ModelKind, name: string, hostModels: string | undefined, options: Omit<ModelPathsOptions, 'hostModels'> = {}): ResolvedModelFile {
  const refused = modelNameProblem(name);
  if (refused) return { searched: [], refused };
  const searched = modelFolderPaths(kind, { ...options, hostModels });
  for (const folder of searched) {
    const full = insideOrUndefined(folder, name);
    if (!full) continue;
    let stat;
    try {
      stat = statSync(full);
    } catch {
      continue;
    }
    if (stat.isFile() && kind !== 'diffusers') return { file: full, searched };
    if (stat.isDirectory() && (kind === 'checkpoints' || kind === 'diffusers') && existsSync(join(full, 'model_index.json'))) return { file: full, searched };
  }
  return { searched };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
