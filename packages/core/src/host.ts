/**
 * What every host (the CLI, the server) sets up the same way: the folders it reads and writes, the node
 * registry filled from workspace packs and `custom_nodes/`, and an executor over them.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { HostPaths } from './node-definition.ts';
import type { Logger } from './logger.ts';
import { NodeRegistry } from './registry.ts';
import { loadPacks, type PackLoadReport } from './packs.ts';

/** The nearest folder at or above `start` holding `pnpm-workspace.yaml`; `start` itself when there is none. */
export function findWorkspaceRoot(start = process.cwd()): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(start);
    dir = parent;
  }
}

/** Default folders, relative to the workspace root, like ComfyUI's `output/`, `input/`, `temp/`, `models/`. */
export function defaultHostPaths(root: string, overrides: Partial<HostPaths> = {}): HostPaths {
  return {
    output: resolve(overrides.output ?? join(root, 'output')),
    input: resolve(overrides.input ?? join(root, 'input')),
    temp: resolve(overrides.temp ?? join(root, 'temp')),
    models: resolve(overrides.models ?? join(root, 'models')),
  };
}

/**
 * Workspace packages that declare themselves node packs with `"gategraph": { "pack": true }` in their
 * package.json. Only `packages/*` is searched: `examples/` holds samples users load on purpose.
 */
export function discoverWorkspacePacks(root: string): string[] {
  const base = join(root, 'packages');
  if (!existsSync(base)) return [];
  const found: string[] = [];
  for (const name of readdirSync(base).sort()) {
    const manifest = join(base, name, 'package.json');
    if (!existsSync(manifest)) continue;
    try {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { gategraph?: { pack?: boolean } };
      if (pkg.gategraph?.pack) found.push(join(base, name));
    } catch {
      // A package with unreadable package.json is not ours to report here; pnpm will complain about it.
    }
  }
  return found;
}

export interface HostOptions {
  root?: string;
  paths?: Partial<HostPaths>;
  /** Folder of user packs; `false` disables them. Default `<root>/custom_nodes`. */
  customNodesDir?: string | false;
  /** Extra packs to load (package folders or files), after the workspace packs. */
  extraPacks?: string[];
  logger?: Logger;
}

export interface Host {
  root: string;
  paths: HostPaths;
  registry: NodeRegistry;
  packs: PackLoadReport;
}

/** Builds the registry from workspace packs and custom nodes. Broken packs are reported, never fatal. */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const root = options.root ?? findWorkspaceRoot();
  const registry = new NodeRegistry();
  const customNodesDir = options.customNodesDir === false ? undefined : (options.customNodesDir ?? join(root, 'custom_nodes'));
  const packs = await loadPacks({
    registry,
    packages: [...discoverWorkspacePacks(root), ...(options.extraPacks ?? [])],
    ...(customNodesDir && existsSync(customNodesDir) ? { customNodesDir } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return { root, paths: defaultHostPaths(root, options.paths), registry, packs };
}
