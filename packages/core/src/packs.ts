/**
 * Node packs: how a host finds, imports and registers node definitions written outside core.
 *
 * A pack is an ESM module (a single file, a folder with an `index.ts`/`index.mjs`/`index.js`, or a package
 * whose package.json `exports["."]`/`main` names the entry) that default-exports, or exports as `pack`, the
 * object made by `definePack({ name?, nodes, webDirectory? })`. Hosts call `loadPacks` once at start-up with
 * their workspace packages and their `custom_nodes/` folder.
 *
 * A broken pack never stops the host: it is reported in `failed` with a reason a person can act on, and the
 * other packs load. A pack is all-or-nothing: if any of its nodes is invalid or clashes with an id already
 * registered, none of its nodes are registered, so a workflow never runs against half of a pack.
 */
import { spawnSync } from 'node:child_process';
import { register as registerModuleHooks } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { readFile, realpath, stat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkNodeDefinition } from './check-node-definition.ts';
import { silentLogger, type Logger } from './logger.ts';
import type { AnyNodeDefinition } from './node-definition.ts';
import { discoverCustomNodes, packNameFromPath, resolvePackageDir, resolvePackEntry } from './pack-discovery.ts';
import type { NodeRegistry } from './registry.ts';

/** What a pack's entry module exports (as `default`, or as a named export `pack`). */
export interface PackDefinition {
  /**
   * The pack's name in reports, in node sources and in its extension URL (`/extensions/<name>/`). Defaults to
   * the package.json `name`, else the folder or file name.
   */
  name?: string;
  /** The node classes the pack adds. May be empty only for a pack that just ships editor extensions. */
  nodes: readonly AnyNodeDefinition[];
  /**
   * Folder of editor extensions (ES modules the editor imports), relative to the pack folder, or for a
   * single-file pack to the folder holding the file. It must lie inside that folder.
   */
  webDirectory?: string;
  /**
   * Called when the host is asked to free memory (the server's `POST /free` with `unload_models`), after
   * the output cache was cleared: release models, sessions and other heavy handles the pack keeps open.
   */
  onFree?: () => void | Promise<void>;
}

/** Declares a pack. Only an identity function: it exists so TypeScript checks the shape. */
export function definePack(pack: PackDefinition): PackDefinition {
  return pack;
}

export interface LoadedPack {
  name: string;
  /** Absolute path of the pack folder, or of the file for a single-file pack. */
  root: string;
  /** Ids of the node classes it registered, in the pack's order. */
  nodes: string[];
  /** Absolute path of the pack's web folder, when it declares one that exists. */
  webDirectory?: string;
  /** Import and registration time. */
  ms: number;
  /** Problems that did not stop the pack from loading (e.g. a declared web folder that is missing). */
  warnings?: string[];
  /** The pack's `onFree` hook, when it has one. */
  onFree?: () => void | Promise<void>;
}

export interface FailedPack {
  name: string;
  root: string;
  /** Why, for a person: the import error with its location in the pack, or what is wrong with the exports. */
  error: string;
}

export interface SkippedPack {
  name: string;
  root: string;
  reason: 'disabled';
}

export interface PackLoadReport {
  loaded: LoadedPack[];
  failed: FailedPack[];
  skipped: SkippedPack[];
}

export interface LoadPacksOptions {
  /** Folder whose entries are each a pack (`custom_nodes/`). A missing folder holds no packs. */
  customNodesDir?: string;
  /**
   * Packages to load as packs before custom_nodes, in this order: package names (looked up in node_modules
   * and then in the pnpm workspace, from `resolveFrom`) or absolute paths, e.g. `'@gategraph/nodes-tgate'`.
   */
  packages?: string[];
  /** Where package names are looked up from; defaults to the current directory. */
  resolveFrom?: string;
  registry: NodeRegistry;
  logger?: Logger;
}

interface Candidate {
  /** Name to use until the pack says otherwise. */
  name: string;
  root: string;
  /** True when `name` is only the file or folder name, so a package.json `name` is better. */
  provisionalName: boolean;
}

/**
 * Imports the packs and registers their nodes into `options.registry`: workspace packages first, then the
 * entries of `customNodesDir` in name order. Never throws for a broken pack; see the report.
 *
 * Side effect: installs a module resolution hook so that packs importing `@gategraph/core`, or another
 * `@gategraph/*` package that one of `packages` is or depends on (`@gategraph/diffusion`), get the host's copy
 * (see pack-core-resolve-hook.mjs). It is registered again only when `packages` brings a package it does not map.
 */
export async function loadPacks(options: LoadPacksOptions): Promise<PackLoadReport> {
  const logger = options.logger ?? silentLogger;
  const report: PackLoadReport = { loaded: [], failed: [], skipped: [] };
  const fail = (failure: FailedPack) => {
    report.failed.push(failure);
    logger.error(`pack "${failure.name}" failed to load (${failure.root}): ${failure.error}`);
  };
  const candidates: Candidate[] = [];
  for (const spec of options.packages ?? []) {
    const dir = await resolvePackageDir(spec, options.resolveFrom ?? process.cwd());
    if (typeof dir !== 'string') fail({ name: spec, root: spec, error: dir.error });
    else if (isAbsolute(spec)) candidates.push({ name: packNameFromPath(spec), root: dir, provisionalName: true });
    else candidates.push({ name: spec, root: dir, provisionalName: false });
  }
  // Before any pack is imported: the host's own packs are where custom_nodes/ packs find @gategraph/*.
  await installPackResolveHook(candidates.map((c) => c.root));
  if (options.customNodesDir !== undefined) {
    const dir = resolve(options.customNodesDir);
    try {
      for (const entry of await discoverCustomNodes(dir)) {
        if (entry.kind === 'pack') candidates.push({ name: entry.name, root: entry.path, provisionalName: true });
        else {
          report.skipped.push({ name: entry.name, root: entry.path, reason: 'disabled' });
          logger.info(`pack "${entry.name}" is disabled (${entry.path}); remove ".disabled" from its name to load it`);
        }
      }
    } catch (error) {
      fail({ name: 'custom_nodes', root: dir, error: `cannot list the folder: ${(error as Error).message}` });
    }
  }

  for (const candidate of candidates) {
    const outcome = await loadPack(candidate, options.registry, report.loaded);
    if ('error' in outcome) fail(outcome);
    else {
      report.loaded.push(outcome);
      logger.info(`loaded pack "${outcome.name}": ${outcome.nodes.length} node(s) in ${outcome.ms} ms`);
      for (const warning of outcome.warnings ?? []) logger.warn(`pack "${outcome.name}": ${warning}`);
    }
  }
  return report;
}

async function loadPack(candidate: Candidate, registry: NodeRegistry, loaded: LoadedPack[]): Promise<LoadedPack | FailedPack> {
  const started = performance.now();
  const { root } = candidate;
  const resolution = await resolvePackEntry(root);
  if ('error' in resolution) return { name: candidate.name, root, error: resolution.error };
  const { entry } = resolution;
  let name = candidate.provisionalName ? (resolution.packageName ?? candidate.name) : candidate.name;

  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
  } catch (error) {
    return { name, root, error: describeImportError(error, root, entry) };
  }

  const pack = findPackExport(module, entry);
  if (typeof pack === 'string') return { name, root, error: pack };
  if (pack.name !== undefined) {
    if (typeof pack.name !== 'string' || pack.name.trim() === '') {
      return { name, root, error: `"name" must be a non-empty string, got ${JSON.stringify(pack.name)}` };
    }
    name = pack.name;
  }
  const sameName = loaded.find((other) => other.name === name);
  if (sameName) {
    return {
      name,
      root,
      error:
        `a pack named "${name}" is already loaded from ${sameName.root}; ` +
        'give one of them another name with definePack({ name }) or disable it (add ".disabled" to its name)',
    };
  }

  const problems = nodeProblems(pack.nodes, name, registry);
  if (problems.length) return { name, root, error: problems.join('; ') };

  const ids: string[] = [];
  for (const node of pack.nodes) {
    try {
      registry.register(node, { pack: name });
      ids.push(node.id);
    } catch (error) {
      // Not expected after the checks above; if it happens, say which nodes did get in.
      const partial = ids.length ? ` (already registered: ${ids.join(', ')})` : '';
      return { name, root, error: `${(error as Error).message}${partial}` };
    }
  }

  const result: LoadedPack = { name, root, nodes: ids, ms: 0 };
  if (typeof pack.onFree === 'function') result.onFree = pack.onFree;
  if (pack.webDirectory !== undefined) {
    const web = await resolveWebDirectory(pack.webDirectory, root);
    if (typeof web === 'string') result.webDirectory = web;
    else result.warnings = [web.warning];
  }
  result.ms = Math.round((performance.now() - started) * 10) / 10;
  return result;
}

/** The pack object among a module's exports, or a sentence saying why there is none. */
function findPackExport(module: Record<string, unknown>, entry: string): PackDefinition | string {
  const def = module.default as Record<string, unknown> | undefined;
  // `default.default` is what an ESM pack compiled to CommonJS looks like when imported.
  const candidates = [def, module.pack, def?.default, def?.pack];
  const pack = candidates.find(
    (c): c is Record<string, unknown> => typeof c === 'object' && c !== null && 'nodes' in c,
  );
  if (!pack) {
    const names = Object.keys(module).filter((key) => key !== 'default');
    const found = names.length ? `it exports ${names.map((n) => `"${n}"`).join(', ')}` : 'it has no named exports';
    const defaultNote = def === undefined ? 'no default export' : `a default export without "nodes"`;
    return (
      `exports no nodes: ${entry} must default-export definePack({ nodes: [...] }) or export it as "pack" ` +
      `(found ${defaultNote}; ${found})`
    );
  }
  if (!Array.isArray(pack.nodes)) return `"nodes" must be an array of node definitions, got ${typeof pack.nodes}`;
  if (pack.onFree !== undefined && typeof pack.onFree !== 'function') {
    return `"onFree" must be a function, got ${typeof pack.onFree}`;
  }
  if (pack.webDirectory !== undefined && typeof pack.webDirectory !== 'string') {
    return `"webDirectory" must be a folder path relative to the pack, got ${typeof pack.webDirectory}`;
  }
  if (pack.nodes.length === 0 && pack.webDirectory === undefined) {
    return `exports no nodes: "nodes" is empty and there is no webDirectory, so the pack adds nothing`;
  }
  return pack as unknown as PackDefinition;
}

/** Every reason not to register this pack's nodes: invalid definitions, ids repeated or already taken. */
function nodeProblems(nodes: readonly unknown[], packName: string, registry: NodeRegistry): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  nodes.forEach((node, index) => {
    const id = (node as { id?: unknown } | null)?.id;
    const label = typeof id === 'string' && id !== '' ? `node "${id}"` : `node #${index + 1} of "nodes"`;
    problems.push(...checkNodeDefinition(node).map((problem) => `${label}: ${problem}`));
    if (typeof id !== 'string' || id === '') return;
    if (seen.has(id)) problems.push(`node id "${id}" appears twice in the pack`);
    seen.add(id);
    const existing = registry.sourceOf(id);
    if (existing) {
      problems.push(
        `Duplicate node id "${id}": defined by pack "${existing.pack}" and by pack "${packName}"; ` +
          `"${existing.pack}" keeps it and none of "${packName}"'s nodes were loaded (a pack loads whole or not at all). ` +
          `Rename the node in one pack or disable one of them (add ".disabled" to its name)`,
      );
    }
  });
  return problems;
}

async function resolveWebDirectory(webDirectory: string, root: string): Promise<string | { warning: string }> {
  const base = (await stat(root)).isDirectory() ? root : dirname(root);
  const dir = resolve(base, webDirectory);
  const inside = relative(base, dir);
  if (inside.startsWith('..') || isAbsolute(inside)) {
    return { warning: `webDirectory "${webDirectory}" points outside the pack (${dir}); its files are not served` };
  }
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    return { warning: `webDirectory "${webDirectory}" does not exist (${dir}); the pack's editor extensions are not served` };
  }
  return dir;
}

/** One line: the error's message, and where in the pack it was thrown if the message does not say already. */
function describeImportError(error: unknown, root: string, entry: string): string {
  const err = error instanceof Error ? error : undefined;
  const message = (err ? err.message : String(error))
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ');
  // tsx compiles TypeScript with esbuild, whose syntax errors read "Transform failed with 1 error: <file:line:col>: ERROR: <what>".
  const transform = /^Transform failed with \d+ errors?: (.+?): ERROR: (.*)$/.exec(message);
  if (transform) return `import failed: syntax error at ${transform[1]}: ${transform[2]}`;
  const kind = err && err.name !== 'Error' ? `${err.name}: ` : '';
  let frame = err ? firstFrameInside(err.stack ?? '', root) : undefined;
  // Node's own ESM syntax errors carry no location when loader hooks are active; ask `node --check`.
  if (!frame && err?.name === 'SyntaxError' && /\.m?js$/.test(entry)) frame = syntaxErrorLocation(entry);
  const where = frame && !message.includes(frame) ? ` (at ${frame})` : '';
  // tsx compiles a .ts file in a package without "type": "module" to CommonJS, where our resolve hook does not apply.
  const hint = /Cannot find module '@gategraph\/core'.*Require stack/.test(message)
    ? '. The pack was loaded as CommonJS: add "type": "module" to its package.json (packs are ES modules)'
    : '';
  return `import failed: ${kind}${message}${where}${hint}`;
}

/** `file:line` of a syntax error in a JavaScript file, from `node --check` (only the entry file is checked). */
function syntaxErrorLocation(file: string): string | undefined {
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  const firstLine = check.status === 0 ? undefined : check.stderr.split('\n')[0];
  return firstLine && /:\d+$/.test(firstLine) ? firstLine : undefined;
}

/** The first `path:line:column` of a stack trace that lies in the pack. Frames may be paths or file URLs. */
function firstFrameInside(stack: string, root: string): string | undefined {
  for (const line of stack.split('\n').slice(1)) {
    const match = /((?:file:\/\/)?\/[^\s()]+?):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!match?.[1]) continue;
    const path = match[1].startsWith('file:') ? fileURLToPath(match[1]) : match[1];
    if (path === root || path.startsWith(root + sep)) return `${path}:${match[2]}:${match[3]}`;
  }
  return undefined;
}

/** The `@gategraph/*` packages the resolve hook already maps, by name: URL of the package's package.json. */
const sharedPackages = new Map<string, string>();
let hookRegistered = false;

/**
 * The host's `@gategraph/*` packages that `roots` (the host's own packs) are or depend on, with the URL of each
 * one's package.json, for those that declare `exports` (a package resolves its own name only then). Core is
 * left out: the hook always maps it to itself.
 */
async function packagesOfHostPacks(roots: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const manifestOf = async (dir: string) => JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest;
  for (const root of roots) {
    if (!(await stat(root)).isDirectory()) continue;
    const own = await manifestOf(root).catch(() => undefined);
    if (!own) continue;
    const names = [own.name, ...Object.keys(own.dependencies ?? {}), ...Object.keys(own.peerDependencies ?? {})];
    for (const name of names) {
      if (typeof name !== 'string' || !name.startsWith('@gategraph/') || name === '@gategraph/core' || found.has(name)) continue;
      const dir = name === own.name ? root : await resolvePackageDir(name, root);
      if (typeof dir !== 'string') continue;
      const real = await realpath(dir);
      const manifest = await manifestOf(real).catch(() => undefined);
      if (manifest?.name === name && manifest.exports !== undefined) found.set(name, pathToFileURL(join(real, 'package.json')).href);
    }
  }
  return found;
}

interface Manifest {
  name?: unknown;
  exports?: unknown;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

async function installPackResolveHook(roots: readonly string[]): Promise<void> {
  const fresh: Record<string, string> = {};
  for (const [name, url] of await packagesOfHostPacks(roots)) if (!sharedPackages.has(name)) fresh[name] = url;
  if (hookRegistered && Object.keys(fresh).length === 0) return;
  hookRegistered = true;
  for (const [name, url] of Object.entries(fresh)) sharedPackages.set(name, url);
  // Hooks run on the loader thread: the packages travel as `initialize` data. A later registration (a host
  // with other packs) adds only names not mapped yet, so the first host's copy of a package stays the one.
  registerModuleHooks(new URL('./pack-core-resolve-hook.mjs', import.meta.url), { data: { packages: fresh } });
}
