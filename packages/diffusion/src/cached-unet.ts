/**
 * The UNet variants TGATE and DeepCache run, built from a model's unet/model.onnx with @gategraph/onnx-graph
 * and opened through the session pool.
 *
 * Attention caching follows onnx-graph's measured recommendation (its README, "Design measurement"): ONE graph
 * whose attention modules sit in ONNX `If` nodes switched by boolean inputs (`compute_attn2`, `compute_attn1`).
 * One session, one copy of the weights; the same call computes (and returns every module output, for the
 * caches) or passes the cached values fed as `cached::<output>` through. A second session would copy the
 * weights again (1.9x the memory of a plain run on SD-1.5).
 *
 * On request (`separateComputeGraph`) a second, *compute-all* graph runs the steps that compute every module
 * (TGATE's steps before the gate): the plain UNet also returning the module outputs, without `If` nodes. Each `If`
 * runs its branch as a subgraph (its own frame, and ORT folds less shape arithmetic there: 168 vs 91 Unsqueeze
 * nodes per call on tiny-sd), a fixed cost per call that is noise on SD-1.5 but measurable on a tiny UNet:
 * tiny-sd, 25 DDIM steps, gate 10, 40 runs alternating with plain: TGATE 1.357x -> 1.403x of plain on 2 threads,
 * 1.389x -> 1.430x on 1 (in bench/tgate.ts's five-way alternation the gain did not show). The price is a second
 * session over the same weights: +25-30 MB peak RSS on tiny-sd (TGATE 1.08-1.16x of a plain run's peak ->
 * 1.19-1.33x), and nearly twice the memory on SD-1.5. Not the default.
 *
 * DeepCache keeps separate graphs: the full form also returns the deep feature (for attention caching that
 * is the gated graph with one more output), and the shallow form is cut from it with the deep feature as an
 * input (onnx-graph: `{ reuse: [deep], outputs: ['out_sample', ...] }`); it holds only the shallow branch's
 * weights (75 MB of SD-1.5's 3.4 GB for branch 0).
 *
 * Everything is written once per model content and variant kind next to the model
 * (`<unet folder>/.gategraph-derived/`, the cache of derivedModelPath), with a record of what was prepared
 * (`prepared-<key>.json`): later runs, in this process or another, open the files without decoding the model.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  OnnxGraphError,
  attentionOutputs,
  buildIfGated,
  deepFeature,
  canonicalPath,
  derivedCacheDir,
  derivedModelPath,
  deriveModel,
  discoverUNet,
  ensureCacheDir,
  externalDataFiles,
  loadModel,
  modelFileSha256,
  pruneStaleEntries,
  saveModel,
  signaturesOf,
  type ModelFile,
  type ModelProto,
  type TensorSignature,
} from '@gategraph/onnx-graph';
import { settingsForModel, type SessionLease, type SessionPool, type SessionSettings } from './sessions.ts';
import { OnnxUnetRunner } from './unet-runner.ts';
import type { DiffusionModel, UnetModel } from './model-folder.ts';

/** What a plan needs from the UNet. */
export interface CachedUnetNeeds {
  /** Cross-attention outputs captured and reused (TGATE's CacheCrossAttn). */
  attn2: boolean;
  /** Self-attention outputs captured and reused (CacheSelfAttn). */
  attn1: boolean;
  /** DeepCache branch id (cache_branch_id), when DeepCache runs. */
  deepBranch?: number;
}

/** One cached attention output: the module's output tensor and the graph input that stands in for it. */
export interface AttentionGate {
  kind: 'attn1' | 'attn2';
  /** The module's output (a graph output of the variants that compute it). */
  output: string;
  /** The `cached::<output>` graph input fed when the module is not computed. */
  cachedInput: string;
  /** Its declared dims (symbolic ones as names): the dummy fed on compute steps uses 1 for those. */
  dims: Array<number | string>;
}

/** What one variant of the runner declares, for the step planner. */
export interface VariantLayout {
  key: string;
  /** Boolean inputs switching each attention kind (absent: that kind is not gated in this variant). */
  conditions: Partial<Record<'attn1' | 'attn2', string>>;
  /** The gates this variant has (a shallow variant keeps only the shallow branch's modules). */
  gates: AttentionGate[];
  /** Full DeepCache variant: the deep feature it returns. Shallow variant: the input it reads. */
  deepFeature?: string;
}

/**
 * The variants a plan runs: 'full' steps on `full`, DeepCache's shallow steps on `shallow`, and full steps
 * that compute every attention module on `computeAll` when it exists (no switches, no cached inputs; the same
 * gate outputs and deep feature as `full`).
 */
export interface CacheLayout {
  full: VariantLayout;
  shallow?: VariantLayout;
  computeAll?: VariantLayout;
}

export interface CachedUnet {
  runner: OnnxUnetRunner;
  layout: CacheLayout;
  /** The derived ONNX files (for logs and the bench's MAC counts). */
  files: { full: string; shallow?: string; computeAll?: string };
  /** Releases the derived sessions (the model's own lease is the model's). */
  release(): Promise<void>;
}

/** A model whose UNet cannot be prepared: names the model and says why (onnx-graph's reason kept as `cause`). */
export class CachedUnetError extends Error {
  override name = 'CachedUnetError';
}

/** Bump when the layout of the gated files changes (their key includes it). */
const GATED_VERSION = 2;
const GATED_KEY = 'gategraph-if-gated';

export const ATTN_CONDITIONS = { attn2: 'compute_attn2', attn1: 'compute_attn1' } as const;

/**
 * Builds (or finds on disk) the variants `needs` asks for and returns a runner over them. The runner's 'full'
 * variant stays the plain UNet (not used by the plans; see `closePlain`); 'tgate'
 * is the gated/capturing full form, 'shallow' DeepCache's shallow branch and 'compute-all' the If-free form for
 * steps that compute every module (when separateComputeGraph is set). `release()` drops the derived
 * leases; their sessions stay open while idle (SessionPool's `keepOpenWhenIdle`, in the plain UNet's weights
 * group), so the next gated run does not reopen them; the pool's memory budget decides whether the plain and
 * the gated graphs stay open together (SessionPool, "Memory budget").
 */
export async function prepareCachedUnet(
  model: UnetModel,
  needs: CachedUnetNeeds,
  options: {
    /** Default: the pool the model's UNet session came from (its settings: threads, execution providers). */
    pool?: SessionPool;
    /**
     * Close the model's plain UNet session now (default false: the pool's memory budget decides). The gated
     * graph holds the same weights, so both open double the UNet's memory; while that fits the budget, keeping
     * both spares a graph that alternates plain and gated samplers a reopen (seconds on SD-1.5) per switch, and
     * when it does not, the pool closes the plain one (idle, or not in use) before the gated one opens.
     */
    closePlain?: boolean;
    /**
     * Also open a graph without `If` nodes for the steps that compute every attention module: a few percent
     * faster on a small UNet, at the cost of a second copy of the weights in memory (see the top of this
     * file). Default false.
     */
    separateComputeGraph?: boolean;
  } = {},
): Promise<CachedUnet> {
  const pool = options.pool ?? model.unet.lease.sessionPool;
  const { files, layout } = await cachedFiles(model, needs, options.separateComputeGraph ?? false);
  if (options.closePlain === true) await model.unet.lease.close();
  const leases: SessionLease[] = [];
  const runner = OnnxUnetRunner.forModel(model);
  // The derived graphs embed or hard-link the plain UNet's weights: same weights group.
  const leaseOptions = { keepOpenWhenIdle: true, weightsGroup: model.unet.lease.path };
  // DeepCache (and a compute-all graph) alternate sessions, each with its own intra-op thread pool. If the
  // pools spin, the one that just finished busy-waits on the cores the other is computing on. Measured on
  // tiny-sd, 2 cores (bench/tgate.ts --spinning): DeepCache at 0.77-0.90x of plain, slower than no caching;
  // with its two sessions not spinning, 0.98-1.02x (the rest of the process still spins; with spinning off
  // everywhere, the default, 1.30-1.44x). So alternating sessions never spin, whatever the pool's setting.
  // The derived graphs run with the threads the plain UNet got for its size (sessions.ts, settingsForModel).
  const overrides: SessionSettings = settingsForModel(pool, model.unet.lease.path, layout.shallow || layout.computeAll ? { intraOpSpinning: false } : {});
  const add = (key: string, path: string) => {
    const lease = pool.acquire(path, overrides, leaseOptions);
    leases.push(lease);
    runner.addVariant(key, lease);
  };
  add(layout.full.key, files.full);
  if (layout.shallow && files.shallow) add(layout.shallow.key, files.shallow);
  if (layout.computeAll && files.computeAll) add(layout.computeAll.key, files.computeAll);
  return {
    runner,
    layout,
    files,
    async release() {
      await Promise.all(leases.map((l) => l.release()));
    },
  };
}

/**
 * The files and layout for (model file, needs), remembered in this process while the model file and its
 * external data keep their size and time: a second KSampler run neither re-hashes nor re-derives anything.
 */
interface Resolved {
  files: CachedUnet['files'];
  layout: CacheLayout;
  /** The external data files and their identity when resolved. */
  data: string[];
}
const resolved = new Map<string, Promise<Resolved>>();

const identityOf = (f: string) => {
  const st = statSync(f);
  return `${st.size}:${st.mtimeMs}`;
};
/** True while every `<file>\0<identity>` entry still names a file with that size and time. */
const unchanged = (entries: readonly string[]) =>
  entries.every((d) => {
    const [f, identity] = d.split('\0') as [string, string];
    return existsSync(f) && identityOf(f) === identity;
  });

async function cachedFiles(model: Pick<DiffusionModel, 'unet' | 'name'>, needs: CachedUnetNeeds, separateCompute: boolean): Promise<Resolved> {
  // Canonical: the gated graphs' markers and records name their source, and pruning compares those names.
  const source = canonicalPath(model.unet.path);
  const key = JSON.stringify({ source, at: identityOf(source), needs: { attn2: needs.attn2, attn1: needs.attn1, deep: needs.deepBranch ?? null }, separateCompute });
  const hit = resolved.get(key);
  if (hit) {
    const r = await hit.catch(() => undefined);
    const fresh = r && unchanged(r.data);
    const present = r && Object.values(r.files).every((f) => existsSync(f));
    if (r && fresh && present) return r;
  }
  const entry = (async (): Promise<Resolved> => {
    const modelSha256 = await modelFileSha256(source);
    const recordPath = preparedRecordPath(source, modelSha256, needs, separateCompute);
    const recorded = readPreparedRecord(recordPath, source, modelSha256);
    if (recorded) return recorded;
    const file = loadModel(source);
    const data = externalDataFiles(file.proto, file.baseDir).map((f) => `${f}\0${identityOf(f)}`);
    const built: Resolved = { ...(await buildFiles(model.name, source, modelSha256, file, needs, separateCompute)), data };
    try {
      writePreparedRecord(recordPath, source, modelSha256, built);
    } catch {
      // Only a shortcut for later runs: without it they prepare the slow way, which is still right.
    }
    return built;
  })();
  resolved.set(key, entry);
  entry.catch(() => resolved.delete(key));
  return entry;
}

/**
 * What a preparation found, kept next to the derived graphs (`prepared-<key>.json`), so that the next process
 * preparing the same (model content, needs) opens the files without decoding the model, discovering its modules
 * or inferring shapes: on tiny-sd that work raised a TGATE run's peak RSS by ~45 MB, a quarter of a plain run's.
 * Trusted while every file it names keeps its size and time (derived files are written once, atomically);
 * otherwise the slow path runs again and rewrites it.
 */
interface PreparedRecord {
  version: number;
  /** The UNet file (not `model`: onnx-graph's entry records use that field, and pruning reads it). */
  unet: string;
  modelSha256: string;
  files: CachedUnet['files'];
  layout: CacheLayout;
  data: string[];
  /** `size:mtime` of every file in `files` when recorded. */
  identities: Record<string, string>;
}
const PREPARED_VERSION = 1;

function preparedRecordPath(source: string, modelSha256: string, needs: CachedUnetNeeds, separateCompute: boolean): string {
  const key = createHash('sha256')
    .update(JSON.stringify({ PREPARED_VERSION, GATED_VERSION, modelSha256, attn2: needs.attn2, attn1: needs.attn1, deep: needs.deepBranch ?? null, separateCompute }))
    .digest('hex')
    .slice(0, 32);
  return join(derivedCacheDir(source), `prepared-${key}.json`);
}

function readPreparedRecord(path: string, source: string, modelSha256: string): Resolved | undefined {
  let record: PreparedRecord;
  try {
    record = JSON.parse(readFileSync(path, 'utf8')) as PreparedRecord;
  } catch {
    return undefined; // absent, or unreadable: prepare the slow way
  }
  if (record.version !== PREPARED_VERSION || record.unet !== source || record.modelSha256 !== modelSha256) return undefined;
  if (!unchanged(Object.values(record.files).map((f) => `${f}\0${record.identities[f]}`))) return undefined;
  if (!unchanged(record.data)) return undefined;
  return { files: record.files, layout: record.layout, data: record.data };
}

function writePreparedRecord(path: string, source: string, modelSha256: string, r: Resolved): void {
  const identities = Object.fromEntries(Object.values(r.files).map((f) => [f, identityOf(f)]));
  const record: PreparedRecord = { version: PREPARED_VERSION, unet: source, modelSha256, files: r.files, layout: r.layout, data: r.data, identities };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 1)}\n`);
  renameSync(tmp, path);
}

async function buildFiles(
  name: string,
  source: string,
  modelSha256: string,
  file: ModelFile,
  needs: CachedUnetNeeds,
  separateCompute: boolean,
): Promise<{ files: CachedUnet['files']; layout: CacheLayout }> {
  const where = `the UNet of model "${name}" (${source})`;
  const unet = wrap(where, () => discoverUNet(file.proto));
  const kinds = (['attn2', 'attn1'] as const).filter((k) => needs[k]);
  const outputsOf = (kind: 'attn1' | 'attn2') => {
    const outs = attentionOutputs(unet, kind);
    if (outs.length === 0) {
      throw new CachedUnetError(`${where} has no ${kind === 'attn2' ? 'cross-attention (attn2)' : 'self-attention (attn1)'} modules to cache.`);
    }
    return outs;
  };
  const deep = needs.deepBranch !== undefined ? wrap(where, () => deepFeature(unet, needs.deepBranch!)) : undefined;
  const gateOutputs = kinds.flatMap((kind) => outputsOf(kind).map((output) => ({ kind, output })));
  const sigs = gateOutputs.length
    ? wrap(where, () => signaturesOf(file.proto, gateOutputs.map((g) => g.output), { baseDir: file.baseDir }))
    : new Map<string, TensorSignature>();
  const gates: AttentionGate[] = gateOutputs.map(({ kind, output }) => ({
    kind,
    output,
    cachedInput: `cached::${output}`,
    dims: sigs.get(output)?.dims ?? [],
  }));
  const cacheDir = derivedCacheDir(source);

  let fullPath: string;
  if (kinds.length > 0) {
    fullPath = await gatedModelPath(source, modelSha256, file, cacheDir, kinds, deep?.tensor, () => {
      let proto: ModelProto = file.proto;
      let structure = unet;
      for (const kind of kinds) {
        const modules = structure.attention.filter((a) => a.kind === kind);
        proto = wrap(where, () => buildIfGated(proto, structure, modules, { condition: ATTN_CONDITIONS[kind], baseDir: file.baseDir }).model);
        structure = wrap(where, () => discoverUNet(proto));
      }
      if (deep) proto = wrap(where, () => deriveModel(proto, { capture: [deep.tensor] }, { baseDir: file.baseDir }).model);
      return proto;
    });
  } else if (deep) {
    fullPath = (await wrapAsync(where, () => derivedModelPath(source, { capture: [deep.tensor] }))).path;
  } else {
    throw new CachedUnetError('prepareCachedUnet: nothing to prepare (no attention caching and no DeepCache).');
  }
  const conditions = Object.fromEntries(kinds.map((k) => [k, ATTN_CONDITIONS[k]])) as VariantLayout['conditions'];
  const layout: CacheLayout = {
    full: { key: 'tgate', conditions, gates, ...(deep ? { deepFeature: deep.tensor } : {}) },
  };
  const files: CachedUnet['files'] = { full: fullPath };
  if (separateCompute && kinds.length > 0) {
    // The plain UNet returning what the gated one returns when every switch is on.
    const capture = [...gates.map((g) => g.output), ...(deep ? [deep.tensor] : [])];
    files.computeAll = (await wrapAsync(where, () => derivedModelPath(source, { capture }, { cacheDir }))).path;
    layout.computeAll = { key: 'compute-all', conditions: {}, gates, ...(deep ? { deepFeature: deep.tensor } : {}) };
  }

  if (deep) {
    // Cut the shallow branch; first with out_sample alone to learn which gates survive in it, then again
    // returning those gates' outputs too (a shallow step may refresh the caches of its own modules).
    const spec = { reuse: [deep.tensor], outputs: ['out_sample'] };
    const probe = await wrapAsync(where, () => derivedModelPath(fullPath, spec, { cacheDir }));
    const declared = new Set(probe.report.inputs.map((i) => i.name));
    const kept = gates.filter((g) => declared.has(g.cachedInput));
    const entry = kept.length
      ? await wrapAsync(where, () => derivedModelPath(fullPath, { ...spec, outputs: ['out_sample', ...kept.map((g) => g.output)] }, { cacheDir }))
      : probe;
    const keptKinds = new Set(kept.map((g) => g.kind));
    layout.shallow = {
      key: 'shallow',
      conditions: Object.fromEntries(kinds.filter((k) => keptKinds.has(k) && declared.has(ATTN_CONDITIONS[k])).map((k) => [k, ATTN_CONDITIONS[k]])),
      gates: kept,
      deepFeature: deep.tensor,
    };
    files.shallow = entry.path;
  }
  return { files, layout };
}

/**
 * The If-gated graph for `kinds` (+ the deep feature as an output), written once per model content. The
 * marker file, written after the model, records the external data files' size and time (weights are linked,
 * not copied): a re-exported weights file, or a crash while saving, makes it rebuild.
 */
async function gatedModelPath(
  source: string,
  /** sha256 of `source`'s bytes (the caller has hashed it). */
  modelSha256: string,
  file: ModelFile,
  cacheDir: string,
  kinds: readonly string[],
  deepTensor: string | undefined,
  build: () => ModelProto,
): Promise<string> {
  const key = createHash('sha256')
    .update(JSON.stringify({ GATED_KEY, v: GATED_VERSION, modelSha256, kinds: [...kinds].sort(), deep: deepTensor ?? null }))
    .digest('hex')
    .slice(0, 32);
  const path = join(cacheDir, `gated-${key}.onnx`);
  const done = join(cacheDir, `gated-${key}.done`);
  const marker = JSON.stringify({
    key,
    version: GATED_VERSION,
    model: source,
    modelSha256,
    data: externalDataFiles(file.proto, file.baseDir).map((f) => {
      const st = statSync(f);
      return [f, st.size, Math.round(st.mtimeMs)];
    }),
  });
  if (existsSync(path) && existsSync(done) && readFileSync(done, 'utf8').trim() === marker) return path;
  ensureCacheDir(cacheDir);
  const removed = pruneStaleGated(cacheDir, source, modelSha256);
  pruneStaleEntries(cacheDir, source, modelSha256, removed);
  saveModel(build(), path, { baseDir: file.baseDir });
  writeFileSync(done, `${marker}\n`);
  return path;
}

/**
 * Deletes the gated graphs that can never be used again (an older layout, or built from an older content of
 * `source`, e.g. before a re-export), and the prepared records of such contents, so they do not pile up next to
 * the model. Returns the graphs' paths, so the graphs cut from them (DeepCache's shallow branch) can go too.
 */
function pruneStaleGated(cacheDir: string, source: string, modelSha256: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(cacheDir)) {
    if (name.startsWith('prepared-') && name.endsWith('.json')) {
      // a record of an older content of `source` (or an older layout) can never be read again
      try {
        const record = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')) as Partial<PreparedRecord>;
        const orphaned = typeof record.unet === 'string' && record.unet !== source && !existsSync(record.unet);
        if (record.version !== PREPARED_VERSION || (record.unet === source && record.modelSha256 !== modelSha256) || orphaned) rmSync(join(cacheDir, name), { force: true });
      } catch {
        // being written by another process: leave it
      }
      continue;
    }
    if (!name.startsWith('gated-') || !name.endsWith('.done')) continue;
    let marker: { version?: unknown; model?: unknown; modelSha256?: unknown };
    try {
      marker = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')) as typeof marker;
    } catch {
      continue; // being written by another process: leave it
    }
    // Kept: this layout, and another model's graph (unless that model's file is gone: a float32 conversion of an
    // older content) or this content's.
    const orphaned = typeof marker.model === 'string' && marker.model !== source && !existsSync(marker.model);
    if (marker.version === GATED_VERSION && !orphaned && (marker.model !== source || marker.modelSha256 === modelSha256)) continue;
    const onnx = join(cacheDir, name.replace(/\.done$/, '.onnx'));
    rmSync(onnx, { force: true });
    rmSync(join(cacheDir, name), { force: true });
    removed.push(onnx);
  }
  return removed;
}

function describeCause(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function wrap<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (error instanceof OnnxGraphError) throw new CachedUnetError(`${where}: ${describeCause(error)}`, { cause: error });
    throw error;
  }
}

async function wrapAsync<T>(where: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (error) {
    if (error instanceof OnnxGraphError) throw new CachedUnetError(`${where}: ${describeCause(error)}`, { cause: error });
    throw error;
  }
}
