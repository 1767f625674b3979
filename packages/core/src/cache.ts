/**
 * The output cache: node outputs kept across runs, keyed by the node's input signature (`signature.ts`), so
 * a re-queued prompt only runs what changed and identical sub-graphs share results.
 *
 * Modes (as ComfyUI's `--cache-classic`, `--cache-lru N`, `--cache-none`, `--cache-ram GB`):
 * - `classic`: when a run starts, drop every entry the new prompt does not use; keep the rest.
 * - `lru`: keep entries from earlier prompts too, least recently used evicted first.
 * - `none`: keep nothing across runs (the executor still holds outputs within a run until consumers ran).
 * - `ram`: keep everything while the machine has memory to spare; when its available memory falls below
 *   `ramHeadroomBytes`, the largest entries go first until their estimated size covers the shortfall.
 * Every mode also honours `maxEntries` and `maxBytes`. Entries the running prompt needs are pinned and never
 * evicted while it runs, so the bounds may be exceeded during a run; they hold again once it ends.
 */
import { freemem } from 'node:os';
import type { UiOutput } from './node-definition.ts';
import { hostMemoryLedger, type MemoryLedger } from './memory-ledger.ts';

export type CacheMode = 'classic' | 'lru' | 'none' | 'ram';
export const CACHE_MODES: readonly CacheMode[] = ['classic', 'lru', 'none', 'ram'];

export interface OutputCacheOptions {
  /** Default `classic`. */
  mode?: CacheMode;
  /** Most entries kept between runs. Default: unbounded. */
  maxEntries?: number;
  /** Most estimated bytes kept between runs (see `estimateByteSize`). Default: unbounded. */
  maxBytes?: number;
  /** `ram` mode: the available memory to keep free (ComfyUI's `--cache-ram`, default 4 GB). */
  ramHeadroomBytes?: number;
  /** `ram` mode: the machine's available memory now (default: `os.freemem()`, MemAvailable on Linux). */
  availableMemory?: () => number;
  /**
   * Who holds the models' memory (default: the host's ledger). In `ram` mode the cache makes room whenever
   * that changes (a model opened), and `stats().modelBytes` reports it.
   */
  ledger?: MemoryLedger;
}

/** ComfyUI's default headroom for `--cache-ram` without a value. */
export const DEFAULT_RAM_HEADROOM_BYTES = 4 * 1024 ** 3;

/** What one node produced: every output slot as a list (see list mapping in `executor.ts`), and its UI output. */
export interface CacheEntry {
  outputs: unknown[][];
  ui?: UiOutput;
}

export interface CacheStats {
  mode: CacheMode;
  entries: number;
  /** Estimated bytes held (`estimateByteSize` of the outputs and UI output). */
  bytes: number;
  /** Lookups that found an entry / found none, since the cache was made. */
  hits: number;
  misses: number;
  /** Entries removed to respect the mode or the bounds, since the cache was made. */
  evictions: number;
  maxEntries: number;
  maxBytes: number;
  /** What the loaded models hold, as the memory ledger says (`memory-ledger.ts`). */
  modelBytes: number;
}

/**
 * A heavy value (a model handle holding native sessions) can report its own size, since its memory is not
 * visible to JavaScript: `[BYTE_SIZE]() { return this.weightsBytes; }`.
 */
export const BYTE_SIZE: unique symbol = Symbol.for('gategraph.byteSize');

interface StoredEntry {
  entry: CacheEntry;
  bytes: number;
}

export class OutputCache {
  readonly mode: CacheMode;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly ramHeadroomBytes: number;
  readonly #availableMemory: () => number;
  readonly #ledger: MemoryLedger;
  /** Insertion order is recency order: a hit moves the entry to the end. */
  readonly #entries = new Map<string, StoredEntry>();
  #pinned = new Set<string>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(options: OutputCacheOptions = {}) {
    this.mode = options.mode ?? 'classic';
    if (!CACHE_MODES.includes(this.mode)) {
      throw new Error(`Unknown cache mode "${String(this.mode)}": use ${CACHE_MODES.map((m) => `"${m}"`).join(', ')}`);
    }
    this.maxEntries = checkBound('maxEntries', options.maxEntries);
    this.maxBytes = checkBound('maxBytes', options.maxBytes);
    this.ramHeadroomBytes = this.mode === 'ram' ? checkBound('ramHeadroomBytes', options.ramHeadroomBytes ?? DEFAULT_RAM_HEADROOM_BYTES) : 0;
    this.#availableMemory = options.availableMemory ?? freemem;
    this.#ledger = options.ledger ?? hostMemoryLedger();
    if (this.mode === 'ram') {
      // Held weakly: a cache nobody uses any more must not be kept alive by the ledger.
      const self = new WeakRef(this);
      const stop = this.#ledger.onChange(() => {
        const cache = self.deref();
        if (cache) cache.#relieveMemoryPressure();
        else stop();
      });
    }
  }

  /** Looks an entry up, counting a hit or a miss and marking it recently used. */
  get(signature: string): CacheEntry | undefined {
    const stored = this.#entries.get(signature);
    if (!stored) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#entries.delete(signature);
    this.#entries.set(signature, stored);
    return stored.entry;
  }

  /** Looks an entry up without counting or touching it. */
  peek(signature: string): CacheEntry | undefined {
    return this.#entries.get(signature)?.entry;
  }

  has(signature: string): boolean {
    return this.#entries.has(signature);
  }

  /** Stores a node's result (nothing in `none` mode), then evicts unpinned entries beyond the bounds. */
  set(signature: string, entry: CacheEntry): void {
    if (this.mode === 'none') return;
    this.delete(signature);
    const bytes = estimateByteSize(entry.outputs) + (entry.ui ? estimateByteSize(entry.ui) : 0);
    this.#entries.set(signature, { entry, bytes });
    this.#bytes += bytes;
    this.#enforceBounds();
  }

  delete(signature: string): boolean {
    const stored = this.#entries.get(signature);
    if (!stored) return false;
    this.#entries.delete(signature);
    this.#bytes -= stored.bytes;
    return true;
  }

  /**
   * Called when a run starts with the signatures of every node it may need: they are pinned until `endRun`.
   * In `classic` mode every other entry is dropped now, which frees the previous prompt's memory before the
   * new one allocates its own.
   */
  beginRun(signatures: Iterable<string>): void {
    this.#pinned = new Set(signatures);
    if (this.mode === 'classic') {
      for (const key of [...this.#entries.keys()]) if (!this.#pinned.has(key)) this.#evict(key);
    }
    this.#enforceBounds();
  }

  /** Unpins the run's entries and brings the cache back within its bounds. */
  endRun(): void {
    this.#pinned = new Set();
    this.#enforceBounds();
  }

  /** Removes every entry (a running prompt keeps the values it already holds). Counters are kept. */
  clear(): void {
    this.#evictions += this.#entries.size;
    this.#entries.clear();
    this.#bytes = 0;
  }

  stats(): CacheStats {
    return {
      mode: this.mode,
      entries: this.#entries.size,
      bytes: this.#bytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      maxEntries: this.maxEntries,
      maxBytes: this.maxBytes,
      modelBytes: this.#ledger.heldBytes(),
    };
  }

  #enforceBounds(): void {
    if (this.mode === 'ram') this.#relieveMemoryPressure();
    if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) return;
    // Oldest first; pinned entries are skipped, so the loop may end above the bounds during a run.
    for (const key of [...this.#entries.keys()]) {
      if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) return;
      if (!this.#pinned.has(key)) this.#evict(key);
    }
  }

  /**
   * `ram` mode: when available memory is below the headroom, the largest unpinned entries go until their
   * estimated bytes cover the shortfall (freed memory returns to the system only after garbage collection, so
   * the estimate is counted rather than memory measured again).
   */
  #relieveMemoryPressure(): void {
    let shortfall = this.ramHeadroomBytes - this.#availableMemory();
    if (shortfall <= 0) return;
    const largest = [...this.#entries].filter(([key]) => !this.#pinned.has(key)).sort((a, b) => b[1].bytes - a[1].bytes);
    for (const [key, stored] of largest) {
      if (shortfall <= 0) return;
      this.#evict(key);
      shortfall -= stored.bytes;
    }
  }

  #evict(key: string): void {
    if (this.delete(key)) this.#evictions++;
  }
}

function checkBound(name: string, value: number | undefined): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new Error(`Cache option ${name} must be a number >= 0 (or left out for no limit); got ${String(value)}`);
  }
  return value;
}

/** Bytes charged per object or array on top of its contents (headers, hidden classes): a rough figure. */
const OBJECT_OVERHEAD = 16;
/** Deeper structures are not walked further; node outputs are shallow in practice. */
const MAX_DEPTH = 32;

/**
 * A rough estimate of the memory a value holds, for the cache's byte budget: typed arrays and buffers count
 * their `byteLength`, strings 2 bytes per code unit, numbers 8, arrays / plain objects / Maps / Sets their
 * contents recursively (each object once, so shared and cyclic structures are safe), and any object with a
 * `[Symbol.for('gategraph.byteSize')]()` method what that method returns (native memory JavaScript cannot see).
 * A handle shared by several entries is counted in each: the budget errs on the side of evicting.
 */
export function estimateByteSize(value: unknown): number {
  return sizeOf(value, new Set(), 0);
}

function sizeOf(value: unknown, seen: Set<object>, depth: number): number {
  switch (typeof value) {
    case 'string':
      return 2 * value.length;
    case 'number':
    case 'bigint':
      return 8;
    case 'boolean':
      return 4;
    case 'object':
      break;
    default:
      return 0; // undefined, functions, symbols
  }
  if (value === null) return 0;
  if (seen.has(value)) return 0;
  seen.add(value);

  const own = (value as { [BYTE_SIZE]?: unknown })[BYTE_SIZE];
  if (typeof own === 'function') {
    const reported = Number((own as () => unknown).call(value));
    return Number.isFinite(reported) && reported > 0 ? reported : 0;
  }
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer)) {
    return value.byteLength;
  }
  if (depth >= MAX_DEPTH) return OBJECT_OVERHEAD;

  let total = OBJECT_OVERHEAD;
  if (Array.isArray(value)) {
    for (const item of value) total += 8 + sizeOf(item, seen, depth + 1);
  } else if (value instanceof Map) {
    for (const [k, v] of value) total += sizeOf(k, seen, depth + 1) + sizeOf(v, seen, depth + 1);
  } else if (value instanceof Set) {
    for (const item of value) total += 8 + sizeOf(item, seen, depth + 1);
  } else {
    // Plain objects and class instances alike: a tensor class holding a Float32Array counts its data.
    for (const key of Object.keys(value)) {
      total += 2 * key.length + 8 + sizeOf((value as Record<string, unknown>)[key], seen, depth + 1);
    }
  }
  return total;
}
