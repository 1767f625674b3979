// Derived graphs cached on disk next to the model: <model folder>/.gategraph-derived/<key>.onnx + <key>.json.
// The key hashes the model file's bytes (streamed: an .onnx with embedded weights can be near 2 GiB), the
// derivation spec and this package's derivation version. External data files are not hashed (gigabytes); their
// size and mtime are recorded in the entry and checked on every hit, so a re-exported weights file invalidates
// it. The .json is written last and records the .onnx's sha256: an entry whose .onnx is missing, truncated or
// altered, or whose .json does not parse, is rebuilt.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { deriveModel, type DerivationReport, type DerivationSpec, type DeriveOptions } from './derive.ts';
import { atomicWrite, externalDataFiles, loadModel, saveModel, type ExternalDataMode } from './model-io.ts';

/** Bump when a derivation's output for the same input and spec changes. */
const DERIVATION_VERSION = 1;

export interface DerivedCacheOptions {
  /** Defaults to <model folder>/.gategraph-derived. */
  cacheDir?: string;
  derive?: DeriveOptions;
  externalData?: ExternalDataMode;
}

export interface DerivedEntry {
  path: string;
  key: string;
  report: DerivationReport;
  fromCache: boolean;
}

interface EntryRecord {
  version: number;
  model: string;
  spec: DerivationSpec;
  onnxSha256: string;
  onnxBytes: number;
  dataFiles: Array<{ path: string; size: number; mtimeMs: number }>;
  report: DerivationReport;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
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
  const modelHash = await sha256File(resolve(modelPath));
  const payload = JSON.stringify({ v: DERIVATION_VERSION, modelHash, spec: canonicalSpec(spec), symbolSizes: derive.symbolSizes ?? null });
  return createHash('sha256').update(payload).digest('hex').slice(0, 32);
}

function fileIdentity(path: string) {
  const st = statSync(path);
  return { path, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
}

async function validEntry(onnxPath: string, jsonPath: string): Promise<EntryRecord | undefined> {
  if (!existsSync(onnxPath) || !existsSync(jsonPath)) return undefined;
  let record: EntryRecord;
  try {
    record = JSON.parse(readFileSync(jsonPath, 'utf8')) as EntryRecord;
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
  const source = resolve(modelPath);
  const cacheDir = options.cacheDir ?? join(dirname(source), '.gategraph-derived');
  const key = await modelContentKey(source, spec, options.derive);
  const onnxPath = join(cacheDir, `${key}.onnx`);
  const jsonPath = join(cacheDir, `${key}.json`);
  const hit = await validEntry(onnxPath, jsonPath);
  if (hit) return { path: onnxPath, key, report: hit.report, fromCache: true };

  ensureCacheDir(cacheDir);
  const file = loadModel(source);
  const { model, report } = deriveModel(file.proto, spec, { ...options.derive, baseDir: file.baseDir });
  const saved = saveModel(model, onnxPath, { baseDir: file.baseDir, externalData: options.externalData ?? 'auto' });
  const record: EntryRecord = {
    version: DERIVATION_VERSION,
    model: source,
    spec: canonicalSpec(spec),
    onnxSha256: await sha256File(onnxPath),
    onnxBytes: saved.bytes,
    // Record the source's data files (a hard link shares their inode, so either identity works).
    dataFiles: externalDataFiles(file.proto, file.baseDir).map(fileIdentity),
    report,
  };
  atomicWrite(jsonPath, new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`));
  return { path: onnxPath, key, report, fromCache: false };
}
