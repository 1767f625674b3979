// Single-file checkpoints as cached ONNX components: the first load builds the graph and converts the weights
// (one tensor at a time) into a folder shaped like an export's component, later loads find it by the checkpoint's
// content and cost what opening an ONNX folder costs.
//
// Layout, in the checkpoint's folder (derived-cache.ts's conventions: `.gategraph-derived/`, ignored by git):
//   .gategraph-derived/<key>/<component>/{model.onnx, model.onnx_data, config.json}   opened like an export's
//   .gategraph-derived/<key>/entry.json                                        written last: the entry is valid
//   .gategraph-derived/checkpoint-ids/<hash of the path>.json                   content hash memo (see below)
// `key` hashes the checkpoint's sha256, the component, the builder version and the variant (overrides, LoRAs). The sha256 of a
// multi-GB checkpoint costs seconds, so it is remembered per file identity (path, size, mtime, inode), as git's
// index remembers file hashes: a checkpoint rewritten in place gets a new mtime and is hashed again. Building an
// entry first deletes the entries that can never be hit again (another builder version, an older content of the
// same checkpoint path, a checkpoint that no longer exists). The entry records are kept inside the entry folders,
// apart from derived-cache.ts's `<key>.json` records, so neither cache prunes the other's entries.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureCacheDir, derivedCacheDir } from '../derived-cache.ts';
import { atomicWrite } from '../model-io.ts';
import { openSafetensors, type CheckpointReader } from './checkpoint.ts';
import type { KeyReport } from './ldm-keys.ts';
import type { BuiltGraph } from './builder.ts';
import { buildLdmUnet, type LdmUnetConfig, type UnetOverrides } from './unet.ts';
import { WeightSource } from './weights.ts';
import { writeBuiltModel } from './write.ts';

/** Bump when a builder's output for the same checkpoint changes (graph or weights). */
export const BUILD_VERSION = 3;

/** The components built from single files, each in its own cache entry (a LoRA rebuilds the UNet, not the VAE). */
export type CheckpointComponentName = 'unet' | 'text_encoder' | 'text_encoder_2' | 'vae_decoder' | 'vae_encoder';

/** What a component builder returns (buildLdmUnet's shape). */
export interface ComponentBuild<C = unknown> {
  built: BuiltGraph;
  config: C;
  /** The diffusers / transformers config.json written beside model.onnx (what the engine reads). */
  diffusersConfig: Record<string, unknown>;
  keys: KeyReport;
}

export interface CheckpointComponentOptions {
  /** Defaults to `<checkpoint folder>/.gategraph-derived`. */
  cacheDir?: string;
  /** How the checkpoint is read (default openSafetensors). */
  openReader?: (path: string) => CheckpointReader;
  /**
   * Everything besides the checkpoint's content that changes the built files (builder overrides, the LoRAs and
   * strengths patched in): part of the cache key, recorded in the entry. JSON-serialisable.
   */
  variant?: Record<string, unknown>;
  /** Called on the weight source before building (e.g. to attach LoRA patches). */
  prepare?: (source: WeightSource) => void;
  /**
   * One of many variants a user tries and moves on from (LoRAs at some strengths): such entries of the same
   * checkpoint and component are kept up to MAX_EVICTABLE_ENTRIES, the least recently used deleted first, since
   * each costs the component's size on disk.
   */
  evictable?: boolean;
}

/** Evictable entries kept per checkpoint and component (see CheckpointComponentOptions.evictable). */
export const MAX_EVICTABLE_ENTRIES = 3;

export interface CheckpointComponent<C = unknown> {
  /** Folder holding model.onnx, model.onnx_data and config.json: open it as an exported component. */
  dir: string;
  modelPath: string;
  key: string;
  component: CheckpointComponentName;
  fromCache: boolean;
  checkpointSha256: string;
  config: C;
  /** config.json's content. */
  diffusersConfig: Record<string, unknown>;
  /** Tensors of the checkpoint the component did not use, classified (see ldm-keys.ts). */
  keys: KeyReport;
  /** Set when this call built the entry. */
  build?: { seconds: number; dataBytes: number; convertedElements: number };
}

interface EntryRecord {
  version: number;
  kind: 'ldm-component';
  component: CheckpointComponentName;
  checkpoint: string;
  checkpointSha256: string;
  variant: Record<string, unknown>;
  evictable?: boolean;
  config: unknown;
  diffusersConfig: Record<string, unknown>;
  keys: KeyReport;
  files: Array<{ name: string; size: number; mtimeMs: number }>;
  onnxSha256: string;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * sha256 of a checkpoint's bytes, remembered in `<cacheDir>/checkpoint-ids/` per file identity so a file hashed
 * once is not read again until it changes.
 */
export async function checkpointSha256(checkpoint: string, cacheDir = derivedCacheDir(checkpoint)): Promise<string> {
  const path = resolve(checkpoint);
  const st = statSync(path);
  const identity = { path, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev };
  const memoDir = join(cacheDir, 'checkpoint-ids');
  const memo = join(memoDir, `${createHash('sha256').update(path).digest('hex').slice(0, 24)}.json`);
  try {
    const known = JSON.parse(readFileSync(memo, 'utf8')) as typeof identity & { sha256: string };
    if (known.path === path && known.size === st.size && known.mtimeMs === st.mtimeMs && known.ino === st.ino && known.dev === st.dev && /^[0-9a-f]{64}$/.test(known.sha256)) {
      return known.sha256;
    }
  } catch {
    // no memo yet, or unreadable: hash
  }
  const sha256 = await sha256File(path);
  ensureCacheDir(cacheDir);
  mkdirSync(memoDir, { recursive: true });
  atomicWrite(memo, new TextEncoder().encode(`${JSON.stringify({ ...identity, sha256 })}\n`));
  return sha256;
}

/** Object keys sorted, undefined dropped, recursively: equal variants give equal keys whatever their key order. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

function entryKey(sha: string, component: CheckpointComponentName, variant: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: BUILD_VERSION, kind: 'ldm-component', component, sha, variant: canonical(variant) }))
    .digest('hex')
    .slice(0, 32);
}

async function validEntry(entryDir: string, component: CheckpointComponentName): Promise<EntryRecord | undefined> {
  let record: EntryRecord;
  try {
    record = JSON.parse(readFileSync(join(entryDir, 'entry.json'), 'utf8')) as EntryRecord;
  } catch {
    return undefined;
  }
  if (record.version !== BUILD_VERSION || record.component !== component) return undefined;
  for (const f of record.files) {
    const p = join(entryDir, component, f.name);
    if (!existsSync(p)) return undefined;
    const st = statSync(p);
    if (st.size !== f.size || Math.round(st.mtimeMs) !== f.mtimeMs) return undefined;
  }
  if ((await sha256File(join(entryDir, component, 'model.onnx'))) !== record.onnxSha256) return undefined;
  return record;
}

/**
 * One component of a single-file checkpoint as an ONNX folder (`<entry>/<component>/`), built by `build` and
 * cached on the first call; later calls with the same checkpoint content and variant find it. Throws
 * CheckpointError for a checkpoint `build` cannot build (naming the missing tensor, or the architecture).
 */
export async function componentFromCheckpoint<C>(
  checkpoint: string,
  component: CheckpointComponentName,
  build: (source: WeightSource) => ComponentBuild<C>,
  options: CheckpointComponentOptions = {},
): Promise<CheckpointComponent<C>> {
  const path = resolve(checkpoint);
  const cacheDir = resolve(options.cacheDir ?? derivedCacheDir(path));
  const variant = (canonical(options.variant ?? {}) ?? {}) as Record<string, unknown>;
  const sha = await checkpointSha256(path, cacheDir);
  const key = entryKey(sha, component, variant);
  const entryDir = join(cacheDir, key);
  const dir = join(entryDir, component);
  const modelPath = join(dir, 'model.onnx');
  const hit = await validEntry(entryDir, component);
  if (hit) {
    touch(join(entryDir, 'entry.json'));
    return { dir, modelPath, key, component, fromCache: true, checkpointSha256: sha, config: hit.config as C, diffusersConfig: hit.diffusersConfig, keys: hit.keys };
  }

  ensureCacheDir(cacheDir);
  pruneCheckpointEntries(cacheDir, path, sha);
  const started = performance.now();
  const source = new WeightSource((options.openReader ?? openSafetensors)(path));
  options.prepare?.(source);
  const result = build(source);
  rmSync(entryDir, { recursive: true, force: true });
  const written = writeBuiltModel(result.built, source, modelPath, { dataName: 'model.onnx_data' });
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify({ ...result.diffusersConfig, _gategraph: { checkpoint: path, sha256: sha, builder: BUILD_VERSION, variant } }, null, 2)}\n`);
  const files = ['model.onnx', 'model.onnx_data', 'config.json'].map((name) => {
    const st = statSync(join(dir, name));
    return { name, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  });
  const record: EntryRecord = {
    version: BUILD_VERSION,
    kind: 'ldm-component',
    component,
    checkpoint: path,
    checkpointSha256: sha,
    variant,
    ...(options.evictable ? { evictable: true } : {}),
    config: result.config,
    diffusersConfig: result.diffusersConfig,
    keys: result.keys,
    files,
    onnxSha256: await sha256File(modelPath),
  };
  atomicWrite(join(entryDir, 'entry.json'), new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`));
  if (options.evictable) evictVariants(cacheDir, path, component, key);
  return {
    dir,
    modelPath,
    key,
    component,
    fromCache: false,
    checkpointSha256: sha,
    config: result.config,
    diffusersConfig: result.diffusersConfig,
    keys: result.keys,
    build: { seconds: (performance.now() - started) / 1000, dataBytes: written.dataBytes, convertedElements: written.convertedElements },
  };
}

/** The entry's record file gets the time of its last use, which pruneVariantEntries orders by. */
function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // read-only cache: the order of use is only a pruning hint
  }
}

export interface CheckpointUnetOptions extends Omit<CheckpointComponentOptions, 'variant'> {
  overrides?: UnetOverrides;
}

export type CheckpointUnet = CheckpointComponent<LdmUnetConfig>;

/**
 * The UNet of a single-file SD-1.x/2.x checkpoint as an ONNX folder, built and cached on the first call.
 * Throws CheckpointError for a checkpoint it cannot build (naming the missing tensor, or the architecture).
 */
export function unetFromCheckpoint(checkpoint: string, options: CheckpointUnetOptions = {}): Promise<CheckpointUnet> {
  const { overrides = {}, ...rest } = options;
  return componentFromCheckpoint(checkpoint, 'unet', (source) => buildLdmUnet(source, overrides), { ...rest, variant: { overrides } });
}

/** Deletes the least recently used evictable entries of `checkpoint`'s `component` beyond MAX_EVICTABLE_ENTRIES. */
function evictVariants(cacheDir: string, checkpoint: string, component: CheckpointComponentName, keep: string): void {
  const entries: Array<{ name: string; used: number }> = [];
  for (const name of readdirSync(cacheDir)) {
    const recordPath = join(cacheDir, name, 'entry.json');
    try {
      const record = JSON.parse(readFileSync(recordPath, 'utf8')) as Partial<EntryRecord>;
      if (record.evictable && record.checkpoint === checkpoint && record.component === component && name !== keep) entries.push({ name, used: statSync(recordPath).mtimeMs });
    } catch {
      // not an entry, or being written
    }
  }
  entries.sort((a, b) => b.used - a.used);
  // Opened sessions keep their files (deleted files stay readable on Linux until closed); a later use rebuilds.
  for (const { name } of entries.slice(MAX_EVICTABLE_ENTRIES - 1)) rmSync(join(cacheDir, name), { recursive: true, force: true });
}

/**
 * Deletes checkpoint entries of `cacheDir` that can never be hit again: another builder version, built from
 * `checkpoint` when its content was not `sha256`, or from a checkpoint that no longer exists. Returns their keys.
 */
export function pruneCheckpointEntries(cacheDir: string, checkpoint: string, sha256: string): string[] {
  if (!existsSync(cacheDir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(cacheDir)) {
    const recordPath = join(cacheDir, name, 'entry.json');
    if (!existsSync(recordPath)) continue;
    let record: Partial<EntryRecord>;
    try {
      record = JSON.parse(readFileSync(recordPath, 'utf8')) as Partial<EntryRecord>;
    } catch {
      continue; // being written, or not ours
    }
    // 'ldm-unet': builder version 1's records (UNet only), stale by their version.
    if (typeof record.checkpoint !== 'string' || !['ldm-component', 'ldm-unet'].includes(String(record.kind))) continue;
    const stale =
      record.version !== BUILD_VERSION || (record.checkpoint === resolve(checkpoint) && record.checkpointSha256 !== sha256) || !existsSync(record.checkpoint);
    if (stale) {
      rmSync(join(cacheDir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
