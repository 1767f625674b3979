/**
 * onnxruntime-node sessions: opened lazily, shared and reference counted.
 *
 * A `SessionPool` hands out leases. `pool.acquire(path)` costs nothing: the ONNX file is opened on the lease's
 * first use (`session()`, `run()`), and every lease on the same file with the same options shares that one
 * `InferenceSession` (so two MODEL values of one checkpoint, or a UNet and its TGATE variants that reuse a
 * file, hold the weights once). `lease.release()` drops one reference; the last one disposes the session
 * (`session.release()`, which frees ORT's native memory at once instead of whenever V8 collects the wrapper).
 *
 * `pool.freeAll()` is for the server's `/free`: it closes every open session but leaves the leases valid; a
 * lease used again reopens its file. Runs in flight finish first.
 *
 * Idle sessions. Opening a session costs time (0.3-0.4 s for the 13 MB tiny-sd UNet, seconds for SD-1.5), which
 * for a graph used once per KSampler run (TGATE's gated UNet) can cancel what the graph saves. A lease acquired
 * with `keepOpenWhenIdle` therefore leaves its session open when the last reference goes ("idle"), and the next
 * acquire of the same file takes it back without reopening.
 *
 * Memory budget. One pool owns what its open sessions hold (their weights' size, reported to the host's memory
 * ledger, which the output cache also reads) and keeps it under `memoryBudgetBytes` (default: 60 % of the RAM, or
 * GATEGRAPH_SESSION_MEMORY). Opening a session that would go over first closes, in this order, idle sessions
 * (least recently released first), then open sessions of the same `weightsGroup` that no run is using (the plain
 * UNet while its gated graph runs: they hold the same weights, and a lease reopens its session on next use), then
 * any other open session no run is using. So while a model's plain and gated graphs both fit, a graph that
 * alternates them (a plain and a gated sampler side by side) opens nothing after its first run; when they do not
 * fit, only one of them is open at a time, as before, and `onNotice` says why. Besides, an idle session is closed
 *   - when the last lease of a non-idle-keeping session of its group is released (the model it was derived from
 *     is gone);
 *   - when more than `maxIdleSessions` are idle (least recently used first), or `freeAll()` runs.
 * A session that fails to open while others are open is tried once more after closing every session no run is
 * using: a run never fails for memory that a release would have freed.
 *
 * Models are always loaded by file path, never read into JS memory: ORT then finds external weights
 * (`model.onnx_data`, `weights.pb`) next to the file and maps them itself, and files over 2 GiB work.
 */
import { realpathSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type Tensor } from './tensor.ts';
import { weightFileBytes } from './weight-files.ts';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'layout' | 'all';

/** The ORT settings we expose. Everything is optional; see DEFAULT_SESSION_SETTINGS. */
export interface SessionSettings {
  /** Threads inside one operator (ORT's intra-op pool). Default: the number of cores. */
  intraOpNumThreads?: number;
  /** Threads across independent operators (only used with executionMode 'parallel'). Default: ORT's (1). */
  interOpNumThreads?: number;
  /** Default 'all' (ORT's own default for the C API). */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /**
   * Execution providers in order of preference, as ORT takes them: names ('cpu', 'cuda', 'dml') or objects
   * (`{ name: 'cuda', deviceId: 0 }`). Default ['cpu']. The npm package ships CPU binaries only; a CUDA build
   * of onnxruntime-node installed in its place is used by listing 'cuda' first.
   */
  executionProviders?: readonly ort.InferenceSession.ExecutionProviderConfig[];
  /** ORT's CPU memory arena: faster repeated runs, but it keeps its peak allocation. Default true (ORT's). */
  enableCpuMemArena?: boolean;
  /**
   * Whether idle intra-op threads spin (busy-wait) for work. ORT's own default is true; ours is false: on cores
   * shared with anything else (the server's event loop, the sampler's JS between UNet calls, another job) the
   * spinning threads steal their time. Measured on the 2-core dev machine under load: a batch-2 tiny-sd UNet
   * call took 23 ms spinning vs 11 ms not. On a dedicated idle machine spinning can win a few percent.
   * Sessions that alternate (DeepCache's two, a compute-all graph beside the gated one) never spin (see
   * prepareCachedUnet); even so, DeepCache gains far less in a spinning process, so leave this off for it.
   */
  intraOpSpinning?: boolean;
}

export const DEFAULT_SESSION_SETTINGS: Readonly<Required<Omit<SessionSettings, 'interOpNumThreads'>>> = Object.freeze({
  intraOpNumThreads: availableParallelism(),
  graphOptimizationLevel: 'all',
  executionProviders: Object.freeze(['cpu']),
  enableCpuMemArena: true,
  intraOpSpinning: false,
});

const LEVELS: readonly GraphOptimizationLevel[] = ['disabled', 'basic', 'extended', 'layout', 'all'];

/** Validates settings with messages that name the setting, and fills the defaults. */
export function resolveSessionSettings(settings: SessionSettings = {}): SessionSettings {
  const out: SessionSettings = { ...DEFAULT_SESSION_SETTINGS, ...dropUndefined(settings) };
  for (const key of ['intraOpNumThreads', 'interOpNumThreads'] as const) {
    const v = out[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
      throw new RangeError(`Session setting ${key} must be a whole number >= 0 (0 = ORT chooses); got ${v}`);
    }
  }
  if (!LEVELS.includes(out.graphOptimizationLevel!)) {
    throw new RangeError(`Session setting graphOptimizationLevel must be one of ${LEVELS.join(', ')}; got "${out.graphOptimizationLevel}"`);
  }
  if (!Array.isArray(out.executionProviders) || out.executionProviders.length === 0) {
    throw new RangeError('Session setting executionProviders must list at least one provider, e.g. ["cpu"]');
  }
  return out;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toOrtOptions(s: SessionSettings): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: s.executionProviders!,
    graphOptimizationLevel: s.graphOptimizationLevel!,
    enableCpuMemArena: s.enableCpuMemArena!,
    logSeverityLevel: 3, // errors only: ORT's warnings about unused initializers etc. are noise for users
  };
  if (s.intraOpNumThreads !== undefined) o.intraOpNumThreads = s.intraOpNumThreads;
  if (s.interOpNumThreads !== undefined) o.interOpNumThreads = s.interOpNumThreads;
  if (!s.intraOpSpinning) o.extra = { session: { intra_op: { allow_spinning: '0' } } };
  return o;
}

/** Thrown when ORT cannot open a file: the ORT message wrapped in a sentence that names the file. */
export class SessionOpenError extends Error {
  override name = 'SessionOpenError';
  constructor(readonly path: string, readonly ortMessage: string) {
    super(`onnxruntime could not load ${path}: ${ortMessage.trim()}. The file may be truncated or not an ONNX model; re-export or re-download it.`);
  }
}

/** A feed value: our float32 Tensor, or an ORT tensor for other dtypes (int64 timesteps, token ids). */
export type FeedValue = Tensor | ort.Tensor;

export function toOrtTensor(v: FeedValue): ort.Tensor {
  if ('dims' in v) return v; // already an ORT tensor
  return new ort.Tensor('float32', v.data, v.shape);
}

/** An ORT output to our float32 Tensor (no copy). Other dtypes are an error naming the output. */
export function fromOrtTensor(name: string, t: ort.OnnxValue): Tensor {
  if (!(t instanceof ort.Tensor)) throw new TypeError(`ONNX output "${name}" is not a tensor`);
  if (t.type !== 'float32') {
    throw new TypeError(`ONNX output "${name}" is ${t.type}; the engine works in float32 (float16 models are not supported on CPU yet)`);
  }
  return { data: t.data as Float32Array, shape: t.dims.map(Number) };
}

interface Entry {
  readonly key: string;
  readonly path: string;
  readonly options: ort.InferenceSession.SessionOptions;
  /** The resolved intraOpSpinning setting the options were made from. */
  readonly spinning: boolean;
  /** Sessions of one group hold the same weights (see the file comment): closed first when room is needed. */
  readonly group: string;
  readonly keepOpenWhenIdle: boolean;
  refs: number;
  opening: Promise<ort.InferenceSession> | undefined;
  running: Set<Promise<unknown>>;
  /** Order in which entries went idle (refs 0, session kept open); undefined while leased. */
  idleSince: number | undefined;
  /** The weights' bytes on disk (the model file and its external data), counted while the session is open. */
  bytes?: number;
}

/** How a lease shares memory with other sessions (see "Idle sessions" above). */
export interface LeaseOptions {
  /** Keep the session open when its last lease is released, until memory rules close it. Default false. */
  keepOpenWhenIdle?: boolean;
  /**
   * Files whose sessions hold the same weights share a group: by default the file itself. A graph derived from
   * a model (TGATE's gated UNet) names the model's file here.
   */
  weightsGroup?: string;
}

/** One reference to a (lazily opened, shared) session. */
export class SessionLease {
  #entry: Entry | undefined;
  readonly path: string;
  constructor(private readonly pool: SessionPool, entry: Entry) {
    this.#entry = entry;
    this.path = entry.path;
  }

  /** The pool this lease came from (derived graphs of a model open their sessions in the model's pool). */
  get sessionPool(): SessionPool {
    return this.pool;
  }

  get released(): boolean {
    return this.#entry === undefined;
  }

  /** Whether this lease's session lets idle intra-op threads spin (the pool's setting unless overridden). */
  get spinning(): boolean {
    const e = this.#entry;
    if (!e) throw this.#releasedError();
    return e.spinning;
  }

  /** The session, opened now if it is not open yet (or was closed by freeAll). */
  session(): Promise<ort.InferenceSession> {
    const e = this.#entry;
    if (!e) return Promise.reject(this.#releasedError());
    e.opening ??= this.pool.open(e);
    return e.opening;
  }

  /**
   * Runs the model. Float32 feeds may be our Tensors; outputs come back as ORT values (use fromOrtTensor).
   * `fetches` limits the outputs computed and returned (default: all of the model's outputs).
   */
  async run(feeds: Record<string, FeedValue>, fetches?: readonly string[]): Promise<Record<string, ort.OnnxValue>> {
    const e = this.#live();
    let opening = this.session();
    let session = await opening;
    // freeAll() may have closed it while we waited for it to open: take the reopened one
    while (e.opening !== opening) {
      opening = this.session();
      session = await opening;
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrtTensor(v);
    const p = fetches ? session.run(ortFeeds, [...fetches]) : session.run(ortFeeds);
    e.running.add(p);
    try {
      return await p;
    } finally {
      e.running.delete(p);
    }
  }

  /**
   * Closes the shared session now (after the runs in flight), like freeAll() for this file alone: every lease
   * on it stays valid and reopens it on next use. For callers that switch to another graph holding the same
   * weights (TGATE's gated UNet) and do not want two copies in memory meanwhile.
   */
  async close(): Promise<void> {
    const e = this.#entry;
    if (e) await this.pool.closeEntry(e);
  }

  /** Drops this reference; the last one disposes the session. Releasing twice is a no-op. */
  async release(): Promise<void> {
    const e = this.#entry;
    if (!e) return;
    this.#entry = undefined;
    await this.pool.unref(e);
  }

  #live(): Entry {
    if (!this.#entry) throw this.#releasedError();
    return this.#entry;
  }

  #releasedError(): Error {
    return new Error(`Session lease for ${this.path} was already released; acquire a new one from the pool`);
  }
}

export interface SessionPoolOptions {
  /** At most this many idle sessions stay open (default 2). */
  maxIdleSessions?: number;
  /** Bytes of weights the open sessions may hold (default: defaultSessionMemoryBudget()). */
  memoryBudgetBytes?: number;
  /** Told when sessions are closed to make room, or when one opens over the budget (a log line). */
  onNotice?: (message: string) => void;
}

/** The environment variable that sets the default pool's budget (a size: 12GB, 8000MB, or bytes). */
export const SESSION_MEMORY_ENV = 'GATEGRAPH_SESSION_MEMORY';

/**
 * The default budget for open sessions: GATEGRAPH_SESSION_MEMORY when set, else 60 % of the machine's RAM (the rest
 * for activations, the output cache and the process). SD-1.5's plain and gated UNets (3.4 GB each) fit on a 16 GB
 * machine; SDXL's (10.3 GB each) take turns below 35 GB.
 */
export function defaultSessionMemoryBudget(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[SESSION_MEMORY_ENV];
  if (text !== undefined && text !== '') return parseByteSize(text, SESSION_MEMORY_ENV);
  return Math.floor(totalmem() * 0.6);
}

/** "12GB", "800 MiB", "1.5g", "1048576": bytes. Throws a RangeError naming `what` for anything else. */
export function parseByteSize(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(text.trim());
  if (!match) throw new RangeError(`${what} must be a size like 12GB or 800MB (got ${JSON.stringify(text)})`);
  const unit = (match[2] ?? 'b').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
  return Math.floor(Number(match[1]) * factor);
}

const GB = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GB`;

export class SessionPool {
  readonly settings: SessionSettings;
  readonly #entries = new Map<string, Entry>();
  #idleCounter = 0;
  readonly #listeners = new Set<() => void>();
  /** Sessions opened over the pool's life (tests and diagnostics: proves sharing and laziness). */
  opened = 0;
  /** Sessions closed to stay within the memory budget (diagnostics and tests). */
  closedForRoom = 0;
  /** At most this many idle sessions stay open (least recently released closed first). */
  readonly maxIdleSessions: number;
  /** Bytes of weights the open sessions may hold (see "Memory budget" above). */
  memoryBudgetBytes: number;
  readonly #onNotice: ((message: string) => void) | undefined;
  /** Whether the pool was given its intra-op threads (else components may choose by size: model-folder.ts). */
  readonly explicitThreads: boolean;

  constructor(settings: SessionSettings = {}, options: SessionPoolOptions = {}) {
    this.settings = resolveSessionSettings(settings);
    this.explicitThreads = settings.intraOpNumThreads !== undefined;
    const maxIdle = options.maxIdleSessions ?? 2;
    if (!(Number.isInteger(maxIdle) && maxIdle >= 0)) {
      throw new RangeError(`maxIdleSessions must be a whole number >= 0 (0 = close on release); got ${maxIdle}`);
    }
    this.maxIdleSessions = maxIdle;
    const budget = options.memoryBudgetBytes ?? defaultSessionMemoryBudget();
    if (!(Number.isFinite(budget) && budget >= 0)) throw new RangeError(`memoryBudgetBytes must be a number of bytes >= 0; got ${budget}`);
    this.memoryBudgetBytes = budget;
    this.#onNotice = options.onNotice;
  }

  /**
   * A lease on the ONNX file at `path`. Nothing is opened yet. `overrides` change this pool's settings for
   * this file (e.g. fewer threads for a small VAE); leases with equal path and settings share a session.
   */
  acquire(path: string, overrides: SessionSettings = {}, leaseOptions: LeaseOptions = {}): SessionLease {
    const settings = Object.keys(overrides).length ? resolveSessionSettings({ ...this.settings, ...dropUndefined(overrides) }) : this.settings;
    // By real path: a model folder assembled from symlinked components (single-file checkpoints) shares the
    // sessions of every other folder that links the same component.
    const full = realPathOf(path);
    const options = toOrtOptions(settings);
    const key = `${full}\0${JSON.stringify(options)}`;
    let e = this.#entries.get(key);
    if (!e) {
      e = {
        key,
        path: full,
        options,
        spinning: settings.intraOpSpinning ?? false,
        // By real path too: a single-file model's UNet is a symlink, its derived graphs name the real file.
        group: realPathOf(leaseOptions.weightsGroup ?? path),
        keepOpenWhenIdle: leaseOptions.keepOpenWhenIdle ?? false,
        refs: 0,
        opening: undefined,
        running: new Set(),
        idleSince: undefined,
      };
      this.#entries.set(key, e);
    }
    e.refs++;
    e.idleSince = undefined;
    return new SessionLease(this, e);
  }

  /** Number of released sessions kept open for reuse. */
  get idleCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.idleSince !== undefined) n++;
    return n;
  }

  /** Number of sessions open right now. */
  get openCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.opening) n++;
    return n;
  }

  /**
   * Bytes the open sessions hold, estimated as their weights' size on disk (fp32 weights are loaded as they
   * are stored; activations come and go with each run and are not counted).
   */
  get openBytes(): number {
    let total = 0;
    for (const e of this.#entries.values()) if (e.opening && e.bytes !== undefined) total += e.bytes;
    return total;
  }

  /** Calls `listener` whenever a session opens or closes; the returned function stops it. */
  onOpenChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #openChanged(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Number of distinct (path, settings) entries with at least one lease. */
  get leasedCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.refs > 0) n++;
    return n;
  }

  /** @internal */
  open(e: Entry): Promise<ort.InferenceSession> {
    const bytes = weightFileBytes(e.path);
    const create = async (): Promise<ort.InferenceSession> => {
      await this.#makeRoom(e, bytes);
      try {
        return await ort.InferenceSession.create(e.path, e.options);
      } catch (error) {
        // Out of memory, maybe: what no run uses goes, and it is tried once more.
        if ((await this.#closeUnused(e)) === 0) throw error;
        this.#onNotice?.(`opening ${e.path} failed (${error instanceof Error ? error.message : String(error)}); closed the sessions no run was using and tried again`);
        return await ort.InferenceSession.create(e.path, e.options);
      }
    };
    const p = create().then(
      (s) => {
        this.opened++;
        e.bytes = bytes;
        this.#openChanged();
        return s;
      },
      (err: unknown) => {
        if (e.opening === p) e.opening = undefined; // let a later use retry (e.g. after the file was fixed)
        throw new SessionOpenError(e.path, err instanceof Error ? err.message : String(err));
      },
    );
    return p;
  }

  /**
   * Closes sessions until `bytes` more fit the budget: idle ones first (least recently released), then open ones
   * no run is using, those holding `e`'s weights before the others. A lease whose session was closed reopens it
   * on its next use.
   */
  async #makeRoom(e: Entry, bytes: number): Promise<void> {
    const over = () => this.openBytes + bytes - this.memoryBudgetBytes;
    if (over() <= 0) return;
    const closed: string[] = [];
    const idle = [...this.#entries.values()].filter((o) => o !== e && o.refs === 0 && o.idleSince !== undefined && o.opening).sort((a, b) => a.idleSince! - b.idleSince!);
    const unused = [...this.#entries.values()]
      .filter((o) => o !== e && o.refs > 0 && o.opening && o.running.size === 0)
      .sort((a, b) => Number(b.group === e.group) - Number(a.group === e.group));
    for (const o of [...idle, ...unused]) {
      if (over() <= 0) break;
      const freed = o.bytes ?? 0;
      if (o.refs === 0) this.#entries.delete(o.key);
      await this.#close(o);
      this.closedForRoom++;
      closed.push(`${o.path} (${GB(freed)})`);
    }
    const budget = `the session memory budget is ${GB(this.memoryBudgetBytes)} (${SESSION_MEMORY_ENV} / --session-memory)`;
    if (closed.length) this.#onNotice?.(`closed ${closed.join(', ')} to open ${e.path} (${GB(bytes)}): ${budget}`);
    if (over() > 0) this.#onNotice?.(`opening ${e.path} (${GB(bytes)}) with ${GB(this.openBytes)} already open in use goes over ${budget}`);
  }

  /** Closes every open session no run is using except `e`'s; returns how many. */
  async #closeUnused(e: Entry): Promise<number> {
    const chosen = [...this.#entries.values()].filter((o) => o !== e && o.opening && o.running.size === 0);
    for (const o of chosen) if (o.refs === 0) this.#entries.delete(o.key);
    await Promise.all(chosen.map((o) => this.#close(o)));
    return chosen.length;
  }

  /** @internal */
  async unref(e: Entry): Promise<void> {
    e.refs--;
    if (e.refs > 0) return;
    if (e.keepOpenWhenIdle && e.opening && this.maxIdleSessions > 0) {
      e.idleSince = ++this.#idleCounter;
      const idle = [...this.#entries.values()].filter((o) => o.idleSince !== undefined).sort((a, b) => a.idleSince! - b.idleSince!);
      const excess = new Set(idle.slice(0, Math.max(0, idle.length - this.maxIdleSessions)));
      await this.#closeIdle((o) => excess.has(o));
      return;
    }
    this.#entries.delete(e.key);
    // The model this group belongs to is gone: its idle derived sessions go with it.
    const derived = e.keepOpenWhenIdle ? Promise.resolve() : this.#closeIdle((o) => o.group === e.group);
    await Promise.all([this.#close(e), derived]);
  }

  /** Closes and forgets the idle entries that `which` selects (never one that was leased again meanwhile). */
  async #closeIdle(which: (e: Entry) => boolean): Promise<void> {
    const chosen = [...this.#entries.values()].filter((o) => o.refs === 0 && o.idleSince !== undefined && which(o));
    for (const o of chosen) this.#entries.delete(o.key);
    await Promise.all(chosen.map((o) => this.#close(o)));
  }

  /** @internal (SessionLease.close) */
  closeEntry(e: Entry): Promise<void> {
    return this.#close(e);
  }

  async #close(e: Entry): Promise<void> {
    const opening = e.opening;
    e.opening = undefined;
    // Counted again once it reopens (openBytes counts a session from its open, never while it is opening).
    e.bytes = undefined;
    if (!opening) return;
    await Promise.allSettled([...e.running]);
    const session = await opening.catch(() => undefined);
    await session?.release();
    if (session) this.#openChanged();
  }

  /** Closes every open session (the server's /free). Leases stay valid and reopen their file on next use. */
  async freeAll(): Promise<number> {
    const open = [...this.#entries.values()].filter((e) => e.opening);
    for (const e of open) if (e.refs === 0) this.#entries.delete(e.key); // idle: nobody will reopen it
    await Promise.all(open.map((e) => this.#close(e)));
    return open.length;
  }
}

/**
 * UNets and text encoders with less weight than this run on one intra-op thread, larger ones on all cores
 * (bench/engine-threads.ts, bench/README.md): they run every step on a small, fixed amount of work, and
 * splitting a small model's operators over threads costs more in synchronisation than it gains (the embedded
 * tiny-sd UNet, 14 MB, at batch 2: 0.84x on two threads), while a large model's convolutions and matrix products
 * split well (SD-1.5's UNet on 2 cores: 1.6x). A VAE keeps all cores: its work grows with the image, not its
 * weights (tiny-sd's 2 MB decoder at batch 2: 1.30x on two threads).
 */
export const SMALL_MODEL_BYTES = 100 * 1024 * 1024;

/** The intra-op threads the engine gives a model of `weightBytes` (SMALL_MODEL_BYTES), out of `cores`. */
export function intraOpThreadsFor(weightBytes: number, cores: number = availableParallelism(), kind: 'per-step' | 'per-image' = 'per-step'): number {
  return kind === 'per-step' && weightBytes < SMALL_MODEL_BYTES ? 1 : Math.max(1, cores);
}

/** The environment variable that fixes every session's intra-op threads (else chosen per model: intraOpThreadsFor). */
export const INTRA_OP_THREADS_ENV = 'GATEGRAPH_INTRA_OP_THREADS';

/**
 * A process-wide pool with default settings, for callers that do not manage their own. One per process, kept on
 * `globalThis` under a registered symbol (as the host's memory ledger): a pack that loads its own copy of this
 * package still shares it, so one budget covers every session the process opens.
 */
const DEFAULT_POOL = Symbol.for('@gategraph/diffusion/default-session-pool');
export function getDefaultSessionPool(): SessionPool {
  const global = globalThis as { [DEFAULT_POOL]?: SessionPool };
  const threads = process.env[INTRA_OP_THREADS_ENV];
  global[DEFAULT_POOL] ??= new SessionPool(threads ? { intraOpNumThreads: Number(threads) } : {}, { onNotice: (message) => console.warn(`sessions: ${message}`) });
  return global[DEFAULT_POOL];
}

/**
 * The settings a model file's session gets in `pool`: `settings` as given, with the intra-op threads chosen by
 * the model's size and kind (intraOpThreadsFor: UNets and text encoders run per step, VAEs per image) when
 * neither they nor the pool fix them.
 */
export function settingsForModel(pool: SessionPool, path: string, settings: SessionSettings = {}, kind: 'per-step' | 'per-image' = 'per-step'): SessionSettings {
  if (pool.explicitThreads || settings.intraOpNumThreads !== undefined) return settings;
  return { ...settings, intraOpNumThreads: intraOpThreadsFor(weightFileBytes(path), pool.settings.intraOpNumThreads, kind) };
}

/** `path` resolved through symlinks; as given (absolute) when it does not exist yet (the open then says so). */
function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}
