// Single-file checkpoints as cached ONNX components: the first load builds the graph and converts the weights
// (one tensor at a time) into a folder shaped like an export's component, later loads find it by the checkpoint's
// content and cost what opening an ONNX folder costs.
//
// Layout, in the checkpoint's folder (derived-cache.ts's conventions: `.gategraph-derived/`, ignored by git):
//   .gategraph-derived/<key>/unet/{model.onnx, model.onnx_data, config.json}   what openUnet opens
//   .gategraph-derived/<key>/entry.json                                        written last: the entry is valid
//   .gategraph-derived/checkpoint-ids/<hash of the path>.json                   content hash memo (see below)
// `key` hashes the checkpoint's sha256, the component, the builder version and the overrides. The sha256 of a
// multi-GB checkpoint costs seconds, so it is remembered per file identity (path, size, mtime, inode), as git's
// index remembers file hashes: a checkpoint rewritten in place gets a new mtime and is hashed again. Building an
// entry first deletes the entries that can never be hit again (another builder version, an older content of the
// same checkpoint path, a checkpoint that no longer exists). The entry records are kept inside the entry folders,
// apart from derived-cache.ts's `<key>.json` records, so neither cache prunes the other's entries.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureCacheDir, derivedCacheDir } from '../derived-cache.ts';
import { atomicWrite } from '../model-io.ts';
import { openSafetensors, type CheckpointReader } from './checkpoint.ts';
import type { KeyReport } from './ldm-keys.ts';
import { buildLdmUnet, type LdmUnetConfig, type UnetOverrides } from './unet.ts';
import { WeightSource } from './weights.ts';
import { writeBuiltModel } from './write.ts';

/** Bump when a builder's output for the same checkpoint changes (graph or weights). */
export const BUILD_VERSION = 1;

export interface CheckpointUnetOptions {
  /** Defaults to `<checkpoint folder>/.gategraph-derived`. */
  cacheDir?: string;
  overrides?: UnetOverrides;
  /** How the checkpoint is read (default openSafetensors; packages/diffusion's SafetensorsFile works too). */
  openReader?: (path: string) => CheckpointReader;
}

export interface CheckpointUnet {
  /** Folder holding model.onnx, model.onnx_data and config.json: open it as an exported UNet. */
  dir: string;
  modelPath: string;
  key: string;
  fromCache: boolean;
  checkpointSha256: string;
  config: LdmUnetConfig;
  /** config.json's content. */
  diffusersConfig: Record<string, unknown>;
  /** Tensors of the checkpoint the UNet did not use, classified (see ldm-keys.ts). */
  keys: KeyReport;
  /** Set when this call built the entry. */
  build?: { seconds: number; dataBytes: number; convertedElements: number };
}

interface EntryRecord {
  version: number;
  kind: 'ldm-unet';
  checkpoint: string;
  checkpointSha256: string;
  overrides: UnetOverrides;
  config: LdmUnetConfig;
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

function canonicalOverrides(o: UnetOverrides): UnetOverrides {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))) as UnetOverrides;
}

function entryKey(sha: string, overrides: UnetOverrides): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: BUILD_VERSION, kind: 'ldm-unet', sha, overrides: canonicalOverrides(overrides) }))
    .digest('hex')
    .slice(0, 32);
}

async function validEntry(entryDir: string): Promise<EntryRecord | undefined> {
  let record: EntryRecord;
  try {
    record = JSON.parse(readFileSync(join(entryDir, 'entry.json'), 'utf8')) as EntryRecord;
  } catch {
    return undefined;
  }
  if (record.version !== BUILD_VERSION) return undefined;
  for (const f of record.files) {
    const p = join(entryDir, 'unet', f.name);
    if (!existsSync(p)) return undefined;
    const st = statSync(p);
    if (st.size !== f.size || Math.round(st.mtimeMs) !== f.mtimeMs) return undefined;
  }
  if ((await sha256File(join(entryDir, 'unet', 'model.onnx'))) !== record.onnxSha256) return undefined;
  return record;
}

/**
 * The UNet of a single-file SD-1.x/2.x checkpoint as an ONNX folder, built and cached on the first call.
 * Throws CheckpointError for a checkpoint it cannot build (naming the missing tensor, or the architecture).
 */
export async function unetFromCheckpoint(checkpoint: string, options: CheckpointUnetOptions = {}): Promise<CheckpointUnet> {
  const path = resolve(checkpoint);
  const cacheDir = resolve(options.cacheDir ?? derivedCacheDir(path));
  const overrides = canonicalOverrides(options.overrides ?? {});
  const sha = await checkpointSha256(path, cacheDir);
  const key = entryKey(sha, overrides);
  const entryDir = join(cacheDir, key);
  const dir = join(entryDir, 'unet');
  const modelPath = join(dir, 'model.onnx');
  const hit = await validEntry(entryDir);
  if (hit) {
    return { dir, modelPath, key, fromCache: true, checkpointSha256: sha, config: hit.config, diffusersConfig: hit.diffusersConfig, keys: hit.keys };
  }

  ensureCacheDir(cacheDir);
  pruneCheckpointEntries(cacheDir, path, sha);
  const started = performance.now();
  const source = new WeightSource((options.openReader ?? openSafetensors)(path));
  const unet = buildLdmUnet(source, overrides);
  rmSync(entryDir, { recursive: true, force: true });
  const written = writeBuiltModel(unet.built, source, modelPath, { dataName: 'model.onnx_data' });
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify({ ...unet.diffusersConfig, _gategraph: { checkpoint: path, sha256: sha, builder: BUILD_VERSION } }, null, 2)}\n`);
  const files = ['model.onnx', 'model.onnx_data', 'config.json'].map((name) => {
    const st = statSync(join(dir, name));
    return { name, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  });
  const record: EntryRecord = {
    version: BUILD_VERSION,
    kind: 'ldm-unet',
    checkpoint: path,
    checkpointSha256: sha,
    overrides,
    config: unet.config,
    diffusersConfig: unet.diffusersConfig,
    keys: unet.keys,
    files,
    onnxSha256: await sha256File(modelPath),
  };
  atomicWrite(join(entryDir, 'entry.json'), new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`));
  return {
    dir,
    modelPath,
    key,
    fromCache: false,
    checkpointSha256: sha,
    config: unet.config,
    diffusersConfig: unet.diffusersConfig,
    keys: unet.keys,
    build: { seconds: (performance.now() - started) / 1000, dataBytes: written.dataBytes, convertedElements: written.convertedElements },
  };
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
    if (typeof record.checkpoint !== 'string' || record.kind !== 'ldm-unet') continue;
    const stale =
      record.version !== BUILD_VERSION || (record.checkpoint === resolve(checkpoint) && record.checkpointSha256 !== sha256) || !existsSync(record.checkpoint);
    if (stale) {
      rmSync(join(cacheDir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
