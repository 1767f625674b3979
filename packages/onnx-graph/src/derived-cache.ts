// Derived graphs cached on disk next to the model: <model folder>/.gategraph-derived/<key>.onnx + <key>.json.
// The key hashes the model file's bytes (streamed: an .onnx with embedded weights can be near 2 GiB), the
// derivation spec and this package's derivation version. External data files are not hashed (gigabytes); their
// size and mtime are recorded in the entry and checked on every hit, so a re-exported weights file invalidates
// it. The .json is written last and records the .onnx's sha256: an entry whose .onnx is missing, truncated or
// altered, or whose .json does not parse, is rebuilt. Building an entry first deletes the entries that can never
// be hit again (another derivation version, or built from an older content of the same model file), so
// re-exporting a model does not leave its old derived graphs on disk.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fuseAttention, type AttentionFusionReport } from './attention-fusion.ts';
import { writeCpuFloat32, type CpuFloat32Report } from './cpu-float32.ts';
import { deriveModel, type DerivationReport, type DerivationSpec, type DeriveOptions } from './derive.ts';
import { atomicWrite, externalDataFiles, loadModel, saveModel, type ExternalDataMode, type ModelFile } from './model-io.ts';

/** Bump when a derivation's output for the same input and spec changes. */
const DERIVATION_VERSION = 2;

export interface DerivedCacheOptions {
  /** Defaults to <model folder>/.gategraph-derived. */
  cacheDir?: string;
  derive?: DeriveOptions;
  externalData?: ExternalDataMode;
}

export interface DerivedEntry<R = DerivationReport> {
  path: string;
  key: string;
  report: R;
  fromCache: boolean;
}

interface EntryRecord<R = unknown> {
  version: number;
  model: string;
  /** sha256 of the model file the entry was derived from. */
  modelSha256: string;
  /** What was derived: a DerivationSpec, or `{ conversion: 'cpu-float32' }`. */
  spec: unknown;
  onnxSha256: string;
  onnxBytes: number;
  dataFiles: Array<{ path: string; size: number; mtimeMs: number }>;
  report: R;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 (hex) of a model file's bytes, streamed; what cache entries record as the content they came from. */
export function modelFileSha256(modelPath: string): Promise<string> {
  return sha256File(resolve(modelPath));
}

function canonicalSpec(spec: DerivationSpec): DerivationSpec {
  return {
    capture: [...new Set(spec.capture ?? [])].sort(),
    reuse: [...new Set(spec.reuse ?? [])].sort(),
    ...(spec.outputs ? { outputs: [...new Set(spec.outputs)].sort() } : {}),
  };
}

/** Cache key of (model content, spec): stable across processes and machines for identical inputs. */
export async function modelContentKey(modelPath: string, spec: DerivationSpec, derive: DeriveOptions = {}): Promise<string> {
  return contentKey(await modelFileSha256(modelPath), spec, derive);
}

function contentKey(modelHash: string, spec: DerivationSpec, derive: DeriveOptions): string {
  return hashKey({ v: DERIVATION_VERSION, modelHash, spec: canonicalSpec(spec), symbolSizes: derive.symbolSizes ?? null });
}

function hashKey(payload: unknown): string {
  return createHash('sha256').update(JSON.stringify(payload)).digest('hex').slice(0, 32);
}

function fileIdentity(path: string) {
  const st = statSync(path);
  return { path, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
}

async function validEntry<R>(onnxPath: string, jsonPath: string): Promise<EntryRecord<R> | undefined> {
  if (!existsSync(onnxPath) || !existsSync(jsonPath)) return undefined;
  let record: EntryRecord<R>;
  try {
    record = JSON.parse(readFileSync(jsonPath, 'utf8')) as EntryRecord<R>;
  } catch {
    return undefined;
  }
  if (record.version !== DERIVATION_VERSION) return undefined;
  if (statSync(onnxPath).size !== record.onnxBytes) return undefined;
  for (const f of record.dataFiles) {
    if (!existsSync(f.path)) return undefined;
    const now = fileIdentity(f.path);
    if (now.size !== f.size || now.mtimeMs !== f.mtimeMs) return undefined;
  }
  if ((await sha256File(onnxPath)) !== record.onnxSha256) return undefined;
  return record;
}

/**
 * Where graphs derived from `modelPath` are cached: `<its folder>/.gategraph-derived/`, or that folder itself
 * when the model is already a cache entry (a float32 conversion of an fp16 component), so everything derived from
 * one published file lives in one folder and is pruned together.
 */
export function derivedCacheDir(modelPath: string): string {
  const folder = dirname(resolve(modelPath));
  return basename(folder) === '.gategraph-derived' ? folder : join(folder, '.gategraph-derived');
}

/** Creates the cache folder with a `.gitignore` of `*`, so caches next to committed models stay out of git. */
export function ensureCacheDir(cacheDir: string): void {
  mkdirSync(cacheDir, { recursive: true });
  const ignore = join(cacheDir, '.gitignore');
  if (!existsSync(ignore)) writeFileSync(ignore, '# derived graphs written by @gategraph/onnx-graph, rebuilt on demand\n*\n');
}

/**
 * The path of the derived model for `spec`, built and written on the first call (and whenever the cached entry
 * is missing, stale or corrupted). Load it with onnxruntime by path so its external data resolves.
 */
export async function derivedModelPath(modelPath: string, spec: DerivationSpec, options: DerivedCacheOptions = {}): Promise<DerivedEntry> {
  return cachedModel(modelPath, options.cacheDir, (sha) => contentKey(sha, spec, options.derive ?? {}), canonicalSpec(spec), (file, onnxPath) => {
    const { model, report } = deriveModel(file.proto, spec, { ...options.derive, baseDir: file.baseDir });
    const saved = saveModel(model, onnxPath, { baseDir: file.baseDir, externalData: options.externalData ?? 'auto' });
    // Record the source's data files (a hard link shares their inode, so either identity works).
    return { report, bytes: saved.bytes, dataFiles: externalDataFiles(file.proto, file.baseDir) };
  });
}

/**
 * The path of `modelPath` as a float32 model without random sampling (see cpu-float32.ts), converted and
 * written on the first call into the cache folder next to it, with its weights in a data file of its own.
 */
export async function cpuFloat32ModelPath(modelPath: string, options: Pick<DerivedCacheOptions, 'cacheDir'> = {}): Promise<DerivedEntry<CpuFloat32Report>> {
  const spec = { conversion: 'cpu-float32' };
  return cachedModel(modelPath, options.cacheDir, (sha) => hashKey({ v: DERIVATION_VERSION, modelHash: sha, spec }), spec, (file, onnxPath) => {
    const report = writeCpuFloat32(file, onnxPath);
    // The source's data files are recorded too: a re-exported weights file must invalidate the conversion.
    return { report, bytes: statSync(onnxPath).size, dataFiles: externalDataFiles(file.proto, file.baseDir) };
  });
}

/** Bump when the attention fusion's output for the same input changes. */
const FUSION_VERSION = 1;

/**
 * The path of `modelPath` with its attention rewritten into onnxruntime's fused MultiHeadAttention kernel (see
 * attention-fusion.ts), written on the first call into the cache folder next to it; its weights stay in the
 * source's data file (referenced or hard-linked, not copied). Undefined when nothing in the graph is fused (no
 * attention, or none of a layout the fusion proves equal): open the model as it is then.
 */
export async function fusedAttentionModelPath(modelPath: string, options: Pick<DerivedCacheOptions, 'cacheDir'> = {}): Promise<DerivedEntry<AttentionFusionReport> | undefined> {
  const spec = { conversion: 'fused-attention', version: FUSION_VERSION };
  const source = resolve(modelPath);
  const cacheDir = options.cacheDir ?? derivedCacheDir(source);
  const key = hashKey({ v: DERIVATION_VERSION, modelHash: await modelFileSha256(source), spec });
  // A model with nothing to fuse is remembered as such (a small marker), so later opens do not try again.
  const nothing = join(cacheDir, `${key}.unfused`);
  if (existsSync(nothing)) return undefined;
  try {
    return await cachedModel<AttentionFusionReport>(source, cacheDir, () => key, spec, (file, onnxPath) => {
      const { model, report } = fuseAttention(file.proto, { baseDir: file.baseDir });
      if (report.fused.length === 0) throw new NothingToFuse(report);
      const saved = saveModel(model, onnxPath, { baseDir: file.baseDir, externalData: 'auto' });
      return { report, bytes: saved.bytes, dataFiles: externalDataFiles(file.proto, file.baseDir) };
    });
  } catch (err) {
    if (!(err instanceof NothingToFuse)) throw err;
    writeFileSync(nothing, `${JSON.stringify({ model: source, skipped: err.report.skipped }, null, 1)}\n`);
    return undefined;
  }
}

class NothingToFuse extends Error {
  constructor(readonly report: AttentionFusionReport) {
    super('no attention to fuse');
  }
}

/**
 * A cache entry keyed by the model file's content: returned when valid, else built by `build` and recorded. For
 * derivations of other kinds than a DerivationSpec (clip-text-derive.ts): `keyOf` turns the model's sha256 into the
 * entry's key (include the derivation and its version), `spec` is recorded in the entry, `build` writes the .onnx.
 */
export async function cachedModel<R>(
  modelPath: string,
  cacheDirOption: string | undefined,
  keyOf: (modelSha256: string) => string,
  spec: unknown,
  build: (file: ModelFile, onnxPath: string) => { report: R; bytes: number; dataFiles: string[] },
): Promise<DerivedEntry<R>> {
  const source = resolve(modelPath);
  const cacheDir = cacheDirOption ?? derivedCacheDir(source);
  const modelSha256 = await modelFileSha256(source);
  const key = keyOf(modelSha256);
  const onnxPath = join(cacheDir, `${key}.onnx`);
  const jsonPath = join(cacheDir, `${key}.json`);
  const hit = await validEntry<R>(onnxPath, jsonPath);
  if (hit) return { path: onnxPath, key, report: hit.report, fromCache: true };

  ensureCacheDir(cacheDir);
  pruneStaleEntries(cacheDir, source, modelSha256);
  const file = loadModel(source);
  const built = build(file, onnxPath);
  const record: EntryRecord<R> = {
    version: DERIVATION_VERSION,
    model: canonicalPath(source),
    modelSha256,
    spec,
    onnxSha256: await sha256File(onnxPath),
    onnxBytes: built.bytes,
    dataFiles: built.dataFiles.map(fileIdentity),
    report: built.report,
  };
  atomicWrite(jsonPath, new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`));
  return { path: onnxPath, key, report: built.report, fromCache: false };
}

/**
 * `path` absolute with its symlinks resolved (its folder's, when the file itself is gone): the name entries record
 * their source under. A model reached through a symlinked folder (a ComfyUI models/ entry, a test's temporary
 * host) must not look like another model whose file is gone, or pruning would delete entries still in use.
 */
export function canonicalPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    try {
      return join(realpathSync(dirname(abs)), basename(abs));
    } catch {
      return abs;
    }
  }
}

/**
 * Deletes the entries in `cacheDir` that can never be hit again: written by another derivation version, derived
 * from `model` when its content was not `modelSha256`, or derived from a model file listed in `deletedSources`
 * (derived files another cache just removed) or from an entry deleted here (a graph cut from a stale derived
 * graph is stale too). Entries of other models sharing the folder are kept. Returns the keys removed. Deleting
 * an entry an open session uses is safe: the session holds its own copy.
 */
export function pruneStaleEntries(cacheDir: string, model: string, modelSha256: string, deletedSources: readonly string[] = []): string[] {
  if (!existsSync(cacheDir)) return [];
  const source = canonicalPath(model);
  const records = new Map<string, Partial<EntryRecord>>();
  for (const name of readdirSync(cacheDir)) {
    if (!name.endsWith('.json')) continue;
    try {
      const record = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')) as Partial<EntryRecord>;
      if (typeof record.model === 'string') records.set(name.slice(0, -'.json'.length), record);
    } catch {
      // not ours, or being written: leave it
    }
  }
  const gone = new Set(deletedSources.map(canonicalPath));
  const stale = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const [key, record] of records) {
      if (stale.has(key)) continue;
      // Derived from a file that no longer exists (a float32 conversion of an older content, removed): unusable.
      const orphaned = record.model !== source && !existsSync(record.model!);
      const outdated = record.version !== DERIVATION_VERSION || (record.model === source && record.modelSha256 !== modelSha256) || orphaned;
      if (outdated || gone.has(record.model!)) {
        stale.add(key);
        gone.add(canonicalPath(join(cacheDir, `${key}.onnx`)));
        changed = true;
      }
    }
  }
  for (const key of stale) {
    rmSync(join(cacheDir, `${key}.onnx`), { force: true });
    rmSync(join(cacheDir, `${key}.json`), { force: true });
  }
  return [...stale];
}
