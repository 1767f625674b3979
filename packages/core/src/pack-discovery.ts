/**
 * Finding packs on disk: the entries of a `custom_nodes/` folder, the entry module of a pack folder, and the
 * folder of a workspace package given by name. No importing happens here (see `packs.ts`).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';

/** File extensions a pack entry may have. tsx runs the host, so TypeScript entries work as they are. */
export const PACK_FILE_EXTENSIONS = ['.ts', '.mjs', '.js'] as const;
const INDEX_FILES = PACK_FILE_EXTENSIONS.map((ext) => `index${ext}`);
const DISABLED_SUFFIX = '.disabled';

export type CustomNodesEntry =
  | { kind: 'pack'; name: string; path: string }
  | { kind: 'disabled'; name: string; path: string };

const isPackFileName = (name: string): boolean =>
  PACK_FILE_EXTENSIONS.some((ext) => name.endsWith(ext)) && !name.endsWith('.d.ts');

/** The pack name a file or folder stands for: its base name without `.disabled` and without the extension. */
export function packNameFromPath(path: string): string {
  let name = basename(path);
  if (name.endsWith(DISABLED_SUFFIX)) name = name.slice(0, -DISABLED_SUFFIX.length);
  return isPackFileName(name) ? name.slice(0, -extname(name).length) : name;
}

/** Entries that are never packs: hidden files, Python leftovers, installed dependencies, READMEs. */
function isIgnored(name: string): boolean {
  return name.startsWith('.') || name === '__pycache__' || name === 'node_modules' || /^readme(\.|$)/i.test(name);
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path); // follows symlinks: a pack linked into custom_nodes/ is a pack
  } catch {
    return undefined;
  }
}

/**
 * Lists the packs in a `custom_nodes/` folder, sorted by name (code-unit order, the same on every machine).
 * Every folder and every `.ts`/`.mjs`/`.js` file is a pack; a name ending `.disabled` is reported as disabled.
 * A missing folder has no packs.
 */
export async function discoverCustomNodes(dir: string): Promise<CustomNodesEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: CustomNodesEntry[] = [];
  for (const name of names.sort()) {
    if (isIgnored(name)) continue;
    const path = join(dir, name);
    const info = await statOrUndefined(path);
    if (!info) continue; // a dangling symlink
    const bareName = name.endsWith(DISABLED_SUFFIX) ? name.slice(0, -DISABLED_SUFFIX.length) : name;
    if (!info.isDirectory() && !(info.isFile() && isPackFileName(bareName))) continue;
    const kind = bareName === name ? 'pack' : 'disabled';
    entries.push({ kind, name: packNameFromPath(path), path });
  }
  return entries;
}

export type EntryResolution = { entry: string; packageName?: string } | { error: string };

/**
 * The module to import for a pack at `root`: the file itself, or for a folder its package.json entry
 * (`exports["."]`, then `main`) or else an `index.ts` / `index.mjs` / `index.js`.
 */
export async function resolvePackEntry(root: string): Promise<EntryResolution> {
  const info = await statOrUndefined(root);
  if (!info) return { error: `${root} does not exist` };
  if (info.isFile()) return { entry: root };

  const manifestPath = join(root, 'package.json');
  let manifest: Record<string, unknown> | undefined;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      return { error: `cannot read ${manifestPath}: ${(error as Error).message}` };
    }
  }
  const packageName = typeof manifest?.name === 'string' ? manifest.name : undefined;
  const withName = (entry: string) => (packageName === undefined ? { entry } : { entry, packageName });

  if (manifest && (manifest.exports !== undefined || manifest.main !== undefined)) {
    const target = manifest.exports !== undefined ? exportsTarget(manifest.exports) : manifest.main;
    if (typeof target !== 'string') {
      return {
        error: `${manifestPath}: "exports" has no "." entry that loads under Node (an "import", "node" or "default" condition)`,
      };
    }
    const entry = resolve(root, target);
    if (!(await statOrUndefined(entry))?.isFile()) {
      return { error: `${manifestPath} names "${target}" as the entry module, but ${entry} does not exist` };
    }
    return withName(entry);
  }
  for (const file of INDEX_FILES) {
    const entry = join(root, file);
    if ((await statOrUndefined(entry))?.isFile()) return withName(entry);
  }
  return {
    error:
      `no entry module in ${root}: add an index.ts (or index.mjs / index.js), ` +
      `or a package.json whose "exports" or "main" names the entry`,
  };
}

/** The "." target of a package.json `exports` field, following Node's conditions for an ESM import. */
function exportsTarget(exports: unknown): unknown {
  if (typeof exports === 'string' || exports === null) return exports;
  if (Array.isArray(exports)) {
    for (const candidate of exports) {
      const target = exportsTarget(candidate);
      if (typeof target === 'string') return target;
    }
    return undefined;
  }
  if (typeof exports !== 'object') return undefined;
  const record = exports as Record<string, unknown>;
  const keys = Object.keys(record);
  // Subpath form: { ".": ..., "./x": ... }; otherwise the object is a set of conditions for ".".
  if (keys.some((key) => key.startsWith('.'))) return '.' in record ? exportsTarget(record['.']) : undefined;
  for (const key of keys) {
    if (key === 'import' || key === 'node' || key === 'default') {
      const target = exportsTarget(record[key]);
      if (typeof target === 'string') return target;
    }
  }
  return undefined;
}

/**
 * The folder of a package given by name, looked up from `from` upwards: first in `node_modules/`, then among
 * the packages of the nearest pnpm workspace (a workspace package is not linked into the root node_modules
 * unless something depends on it). Absolute paths are returned as they are.
 */
export async function resolvePackageDir(spec: string, from: string): Promise<string | { error: string }> {
  if (isAbsolute(spec)) return spec;
  let workspaceRoot: string | undefined;
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', spec);
    if ((await statOrUndefined(join(candidate, 'package.json')))?.isFile()) return candidate;
    if (!workspaceRoot && (await statOrUndefined(join(dir, 'pnpm-workspace.yaml')))?.isFile()) workspaceRoot = dir;
    if (dirname(dir) === dir) break;
  }
  if (workspaceRoot) {
    for (const dir of await workspacePackageDirs(workspaceRoot)) {
      try {
        const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
        if (manifest.name === spec) return dir;
      } catch {
        // a folder without a readable package.json is not a workspace package
      }
    }
  }
  return {
    error:
      `cannot find package "${spec}": it is not in a node_modules folder above ${from}` +
      (workspaceRoot ? ` nor among the packages of the workspace at ${workspaceRoot}` : ' and no pnpm workspace was found') +
      '; pass its absolute path instead, or add it as a dependency',
  };
}

/**
 * Package folders listed by a pnpm-workspace.yaml. Only the `packages:` list is read, and only the pattern
 * forms workspaces use in practice: `dir`, `dir/*` and `dir/**`; `!` exclusions are honoured for exact folders.
 */
async function workspacePackageDirs(root: string): Promise<string[]> {
  const text = await readFile(join(root, 'pnpm-workspace.yaml'), 'utf8');
  const patterns: string[] = [];
  let inPackages = false;
  for (const line of text.split(/\r?\n/)) {
    if (/^packages\s*:/.test(line)) inPackages = true;
    else if (/^\S/.test(line)) inPackages = false;
    else if (inPackages) {
      const match = /^\s*-\s*(["']?)(.+?)\1\s*(#.*)?$/.exec(line);
      if (match?.[2]) patterns.push(match[2]);
    }
  }
  const excluded = new Set(patterns.filter((p) => p.startsWith('!')).map((p) => resolve(root, p.slice(1))));
  const dirs: string[] = [];
  for (const pattern of patterns.filter((p) => !p.startsWith('!'))) {
    const recursive = pattern.endsWith('/**');
    const base = pattern.replace(/\/\*\*?$/, '');
    if (base === pattern) dirs.push(resolve(root, pattern));
    else dirs.push(...(await subfolders(resolve(root, base), recursive)));
  }
  return dirs.filter((dir) => !excluded.has(dir));
}

async function subfolders(dir: string, recursive: boolean): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    found.push(path);
    if (recursive) found.push(...(await subfolders(path, true)));
  }
  return found;
}
