/**
 * Where the loader's and LoadImage's combos look for files.
 *
 * Combo values are computed when object_info is built and when a prompt is validated, before any node runs.
 * They list the host's folder (`ComboContext.paths`, when the host passes it) first, then:
 *
 * - models: the folders in `GATEGRAPH_MODELS` (one or more, separated by the platform's path delimiter,
 *   `:` on Linux), then `<workspace root>/models`;
 * - input images: the folders in `GATEGRAPH_INPUT`, then `<workspace root>/input`;
 *
 * where the workspace root is the folder with `pnpm-workspace.yaml` above the current directory (what hosts use
 * by default), and also the one above this pack. At run time the node looks in the host's folder
 * (`ctx.paths.models` / `ctx.paths.input`) first, then in those. Hosts pass their folders to the combos
 * (`ComboContext.paths`), which are listed first, so `gategraph run --models-dir X` and the server's folder
 * options list X's entries.
 */
import { findWorkspaceRoot, type ComboContext } from '@gategraph/core';
import { isModelFolder, listModelFolders } from '@gategraph/diffusion';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const packDir = dirname(fileURLToPath(import.meta.url));

function envFolders(name: string): string[] {
  const value = process.env[name];
  if (!value) return [];
  return value
    .split(delimiter)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => resolve(p));
}

function unique(paths: string[]): string[] {
  return [...new Set(paths)];
}

/** The workspace roots to search: the current directory's (as hosts use) and this pack's. */
function workspaceRoots(): string[] {
  return unique([findWorkspaceRoot(), findWorkspaceRoot(packDir)]);
}

/** Folders whose model subfolders the ckpt_name combo lists, in priority order. */
export function modelSearchFolders(): string[] {
  return unique([...envFolders('GATEGRAPH_MODELS'), ...workspaceRoots().map((r) => join(r, 'models'))]);
}

/**
 * Folders `embedding:NAME` is looked up in, in order: `embeddings/` of the host's models folder, then of the
 * model search folders (ComfyUI's `models/embeddings`).
 */
export function embeddingFolders(hostModels: string | undefined): string[] {
  return unique([...(hostModels ? [resolve(hostModels)] : []), ...modelSearchFolders()]).map((folder) => join(folder, 'embeddings'));
}

/** Folders whose images the LoadImage combo lists, in priority order. */
export function inputSearchFolders(): string[] {
  return unique([...envFolders('GATEGRAPH_INPUT'), ...workspaceRoots().map((r) => join(r, 'input'))]);
}

/** The ckpt_name combo: names of model folders (diffusers/optimum ONNX layouts) found in the search folders. */
export function listCheckpoints(context: ComboContext = {}): string[] {
  const names = new Set<string>();
  const folders = unique([...(context.paths ? [resolve(context.paths.models)] : []), ...modelSearchFolders()]);
  for (const folder of folders) for (const name of listModelFolders(folder)) names.add(name);
  return [...names].sort((a, b) => a.localeCompare(b));
}

/**
 * The folder of model `name`: the first candidate (host folder first) that is a complete model folder, else the
 * first that exists (so opening it reports what is missing), else undefined.
 */
export function resolveModelFolder(name: string, hostModels: string | undefined): { dir?: string; searched: string[] } {
  const searched = unique([...(hostModels ? [resolve(hostModels)] : []), ...modelSearchFolders()]);
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

/** `folder/name` when it stays inside `folder` (no `..`, no absolute name), else undefined. */
export function insideOrUndefined(folder: string, name: string): string | undefined {
  if (name === '' || isAbsolute(name) || name.includes('\0')) return undefined;
  const full = resolve(folder, name);
  const rel = relative(folder, full);
  if (rel === '' || rel.split(sep)[0] === '..' || isAbsolute(rel)) return undefined;
  return full;
}
