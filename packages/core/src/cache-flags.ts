/**
 * ComfyUI's cache flags, shared by `gategraph run` and `pnpm serve`: one of `--cache-classic`, `--cache-lru N`,
 * `--cache-none`, `--cache-ram [GB]` (ComfyUI's mutually exclusive group; `--cache-ram` alone keeps 4 GB free).
 */
import { DEFAULT_RAM_HEADROOM_BYTES, type OutputCacheOptions } from './cache.ts';

export interface CacheFlags {
  classic?: boolean;
  /** `--cache-lru N`: at most N node results (0: no limit, as ComfyUI's default of the flag). */
  lru?: string | number;
  none?: boolean;
  /** `--cache-ram [GB]`: the headroom in GB, or true for the default. */
  ram?: string | number | true;
}

export const CACHE_FLAGS_USAGE =
  '--cache-classic (default: keep the last prompt\'s results), --cache-lru <n> (keep the n most recently used), ' +
  '--cache-none (keep nothing between prompts), --cache-ram [gb] (keep everything while more than gb GB of memory is free, default 4)';

/** The output cache the flags ask for, undefined for none given; throws an Error meant for the user. */
export function cacheOptionsFromFlags(flags: CacheFlags): OutputCacheOptions | undefined {
  const given = (['classic', 'lru', 'none', 'ram'] as const).filter((k) => flags[k] !== undefined && flags[k] !== false);
  if (given.length > 1) throw new Error(`use one cache flag at a time (got ${given.map((k) => `--cache-${k}`).join(', ')})`);
  if (flags.classic) return { mode: 'classic' };
  if (flags.none) return { mode: 'none' };
  if (flags.lru !== undefined) {
    const n = Number(flags.lru);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--cache-lru takes a whole number of node results, got "${flags.lru}"`);
    return { mode: 'lru', ...(n > 0 ? { maxEntries: n } : {}) };
  }
  if (flags.ram !== undefined) {
    const gb = flags.ram === true ? DEFAULT_RAM_HEADROOM_BYTES / 1024 ** 3 : Number(flags.ram);
    if (!Number.isFinite(gb) || gb < 0) throw new Error(`--cache-ram takes the memory to keep free in GB, got "${String(flags.ram)}"`);
    return { mode: 'ram', ramHeadroomBytes: Math.round(gb * 1024 ** 3) };
  }
  return undefined;
}
