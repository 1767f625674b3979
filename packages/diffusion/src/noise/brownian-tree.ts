/**
 * ComfyUI's step noise for the SDE samplers (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde and their variants),
 * reproduced bit for bit as ComfyUI computes it on the CPU for a float32 latent.
 *
 * What ComfyUI does (comfy/k_diffusion/sampling.py): the sampler builds
 * `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=True)` with sigma_min = the smallest
 * non-zero sigma of the schedule, sigma_max = the largest, and seed = the KSampler's noise seed (one integer,
 * also for batch > 1: a single tree over the whole [B, C, H, W] latent; a list of seeds, one tree per batch
 * item, is supported by BatchedBrownianTree but not passed by ComfyUI's own samplers). Time is sigma itself
 * (the transform is the identity), as float32. A query (sigma, sigmaNext) returns
 * `sign * W(lo, hi) / sqrt(|sigmaNext - sigma|)`, W the Brownian increment over the sorted pair and sign -1
 * when sigmaNext < sigma (always, as sigmas decrease).
 *
 * W comes from torchsde's `BrownianTree(t0, w0, t1, entropy=seed)`, i.e. a `BrownianInterval` with
 * `halfway_tree=True, tol=1e-6, pool_size=24, levy_area_approximation='none'` and a 45-entry cache
 * (torchsde/_brownian/brownian_interval.py, derived.py):
 * - Every time point is rounded with Python's round(t, 6) (tol = 1e-6), including the tree's own ends.
 * - The root holds W(t0, t1) = randn(seed_W) * sqrt(t1 - t0) (unrounded t0, t1), seed_W the first word of
 *   numpy's `SeedSequence(entropy=seed, pool_size=24).generate_state(3)`.
 * - A node is split only at its rounded halfway point, so the tree is the same dyadic tree whatever the query
 *   order; a query [a, b] is the sum of the canonical nodes covering it (left to right). A node's W is a
 *   Brownian bridge draw from its parent's: with the parent's [s, m, e] and fresh noise
 *   z = randn(parent's seed_W), left = (m - s) * W / (e - s) + sqrt((m - s)(e - m) / (e - s)) * z and
 *   right = W - left. The parent's seed_W is the first word of
 *   `SeedSequence(entropy=seed, spawn_key=(key, depth), pool_size=24).generate_state(4)`, key = 2 * parent's
 *   key + (0 left | 1 right), root key 0 at depth 0.
 * - randn(s) is `torch.randn(shape, generator=torch.Generator().manual_seed(s))` in float32 (noise/torch-cpu.ts),
 *   the arithmetic is torch's float32 tensor-by-Python-float arithmetic (the float rounded to float32 first).
 * torchsde's cache (and where it starts each search) only saves recomputation: an evicted node is recomputed
 * from its parent with the same operations, so neither changes a value. Ours is sized for the work instead
 * (see MAX_CACHE_ENTRIES) and keeps both children of each draw, as they come from the same noise.
 *
 * One deliberate difference: two query times that round to the same point but are not equal as floats
 * (sigmas closer than ~1e-6) make torchsde either return zeros or recurse until Python's RecursionError,
 * depending on how the last halfway point rounds. We reproduce the zeros and return zeros where torchsde
 * would crash (the increment over an interval shorter than its resolution).
 *
 * Everything here is our own code, written from the algorithms described above.
 */
import { sizeOf, type Tensor } from '../tensor.ts';
import { normalizeSeed } from '../noise.ts';
import { TorchCpuNormal } from './torch-cpu.ts';
import type { NoiseSampler } from '../k-samplers/types.ts';

const f = Math.fround;

// ---------------------------------------------------------------------------------------------------------
// Python's round(x, ndigits) for a float
// ---------------------------------------------------------------------------------------------------------

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

/**
 * Python's `round(x, ndigits)` on a float: the decimal with `ndigits` places nearest to the exact binary value
 * of x (ties, which happen for dyadic values such as 0.0078125, go to the even last digit), read back as the
 * nearest double. Exact BigInt arithmetic, so no intermediate rounding can move a value across a boundary.
 */
export function roundLikePython(x: number, ndigits: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  f64[0] = x;
  const bits = u64[0]!;
  const negative = bits >> 63n === 1n;
  const biasedExponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // x = mantissa * 2^exponent exactly.
  const mantissa = biasedExponent === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (biasedExponent === 0 ? 1 : biasedExponent) - 1075;
  const scaled = mantissa * 10n ** BigInt(ndigits);
  let digits: bigint;
  if (exponent >= 0) {
    digits = scaled << BigInt(exponent);
  } else {
    const denominator = 1n << BigInt(-exponent);
    digits = scaled / denominator;
    const twiceRemainder = 2n * (scaled % denominator);
    if (twiceRemainder > denominator || (twiceRemainder === denominator && (digits & 1n) === 1n)) digits += 1n;
  }
  // JavaScript's string-to-number conversion is correctly rounded, as Python's is.
  const magnitude = Number(`${digits}e-${ndigits}`);
  return negative ? -magnitude : magnitude;
}

// ---------------------------------------------------------------------------------------------------------
// numpy.random.SeedSequence
// ---------------------------------------------------------------------------------------------------------

// numpy/random/bit_generator.pyx constants (Melissa O'Neill's seed_seq hash).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const MIN_POOL_SIZE = 4;

/** A non-negative integer as numpy's SeedSequence reads it: 32-bit words, least significant first; 0 is [0]. */
function uint32Words(value: bigint): number[] {
  if (value < 0n) throw new RangeError(`SeedSequence entropy must be non-negative, got ${value}`);
  if (value === 0n) return [0];
  const words: number[] = [];
  for (let rest = value; rest > 0n; rest >>= 32n) words.push(Number(rest & 0xffffffffn));
  return words;
}

/**
 * `numpy.random.SeedSequence(entropy, spawn_key=spawnKey, pool_size=poolSize).generate_state(words)` for an
 * integer entropy and integer spawn-key entries, as uint32 words. Word i of the output depends only on the pool
 * and i, so asking for fewer words gives a prefix of the longer answer.
 */
export function seedSequenceState(entropy: bigint, spawnKey: readonly bigint[], poolSize: number, words: number): Uint32Array {
  if (!Number.isInteger(poolSize) || poolSize < MIN_POOL_SIZE) throw new RangeError(`SeedSequence pool size must be an integer >= ${MIN_POOL_SIZE}, got ${poolSize}`);
  // Assemble the entropy: the run entropy, zero-padded to the pool size when there is a spawn key (numpy >= 1.19,
  // so that spawned sequences cannot collide with unspawned ones), then each spawn-key entry's words.
  const runEntropy = uint32Words(entropy);
  const spawnEntropy = spawnKey.flatMap(uint32Words);
  if (spawnEntropy.length > 0) while (runEntropy.length < poolSize) runEntropy.push(0);
  const assembled = [...runEntropy, ...spawnEntropy];

  // The hash multiplier evolves with every use, so it is state threaded through all the mixing below.
  let hashConst = INIT_A;
  const hashmix = (input: number): number => {
    let value = (input ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> XSHIFT)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> XSHIFT)) >>> 0;
  };

  const pool = new Uint32Array(poolSize);
  for (let i = 0; i < poolSize; i++) pool[i] = hashmix(i < assembled.length ? assembled[i]! : 0);
  // Mix every word into every other so late entropy affects early words.
  for (let src = 0; src < poolSize; src++) {
    for (let dst = 0; dst < poolSize; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  // Entropy beyond the pool size is folded into every pool word.
  for (let src = poolSize; src < assembled.length; src++) {
    for (let dst = 0; dst < poolSize; dst++) pool[dst] = mix(pool[dst]!, hashmix(assembled[src]!));
  }

  const state = new Uint32Array(words);
  let outConst = INIT_B;
  for (let i = 0; i < words; i++) {
    let value = (pool[i % poolSize]! ^ outConst) >>> 0;
    outConst = Math.imul(outConst, MULT_B) >>> 0;
    value = Math.imul(value, outConst) >>> 0;
    state[i] = (value ^ (value >>> XSHIFT)) >>> 0;
  }
  return state;
}

// ---------------------------------------------------------------------------------------------------------
// torchsde's BrownianInterval (halfway tree, no Levy area)
// ---------------------------------------------------------------------------------------------------------

/** torchsde's BrownianTree defaults, which ComfyUI keeps. */
const TREE_TOL_DIGITS = 6; // tol = 1e-6: ndigits = -int(log10(tol))
const TREE_POOL_SIZE = 24;
/**
 * Cached node increments: torchsde keeps 45; a query needs the nodes along the paths to both of its ends (about
 * 2 x 24 levels on SD's sigma range at 1e-6) and the next query shares one end, so we keep up to 128 while they
 * fit in 32 MiB. The cache never changes a value (an evicted node is recomputed identically), only the work.
 */
const TORCHSDE_CACHE_ENTRIES = 45;
const MAX_CACHE_ENTRIES = 128;
const CACHE_BUDGET_BYTES = 32 * 1024 * 1024;

function torchRandn(seed: number, size: number): Float32Array {
  const out = new Float32Array(size);
  new TorchCpuNormal(BigInt(seed)).fill(out);
  return out;
}

/** Thrown (and caught in `increment`) where torchsde's split would recurse forever on a sub-tolerance query. */
class UnresolvableQuery extends Error {}

class TreeNode {
  /** Rounded halfway point once the node has children. */
  midway: number | undefined;
  left: TreeNode | undefined;
  right: TreeNode | undefined;
  /** Seed of the noise that splits this node's increment between its children (computed on first use). */
  private splitSeed: number | undefined;
  readonly spawnKey: bigint;
  readonly depth: number;

  constructor(
    readonly start: number,
    readonly end: number,
    readonly parent: TreeNode | undefined,
    readonly isLeft: boolean,
  ) {
    this.spawnKey = parent === undefined ? 0n : 2n * parent.spawnKey + (isLeft ? 0n : 1n);
    this.depth = parent === undefined ? 0 : parent.depth + 1;
  }

  seedOfSplit(entropy: bigint): number {
    this.splitSeed ??= seedSequenceState(entropy, [this.spawnKey, BigInt(this.depth)], TREE_POOL_SIZE, 1)[0]!;
    return this.splitSeed;
  }
}

/**
 * torchsde's `BrownianTree` (a `BrownianInterval` with `halfway_tree=True`) for one seed and one sample shape,
 * float32 on the CPU. `increment(ta, tb)` is `tree(ta, tb)`: the Brownian increment over [ta, tb].
 */
export class BrownianTree {
  readonly shape: readonly number[];
  private readonly size: number;
  private readonly entropy: bigint;
  private readonly root: TreeNode;
  private readonly rootIncrement: Float32Array;
  /** Least recently used first (Map keeps insertion order; reads and writes re-append). */
  private readonly cache = new Map<TreeNode, Float32Array>();
  private readonly cacheEntries: number;
  /** Where the next search starts (torchsde's _last_interval); it never changes the result, only the work. */
  private lastNode: TreeNode;

  constructor(options: { seed: number | bigint | string; shape: readonly number[]; t0: number; t1: number }) {
    const { t0, t1 } = options;
    if (!Number.isFinite(t0) || !Number.isFinite(t1)) throw new RangeError(`Brownian tree times must be finite, got t0=${t0}, t1=${t1}`);
    if (t0 > t1) throw new RangeError(`Initial time ${t0} should be less than terminal time ${t1}`);
    this.shape = [...options.shape];
    this.size = sizeOf(this.shape);
    this.cacheEntries = Math.max(TORCHSDE_CACHE_ENTRIES, Math.min(MAX_CACHE_ENTRIES, Math.floor(CACHE_BUDGET_BYTES / (4 * Math.max(1, this.size)))));
    this.entropy = normalizeSeed(options.seed);
    this.root = new TreeNode(round(t0), round(t1), undefined, true);
    this.lastNode = this.root;
    const rootSeed = seedSequenceState(this.entropy, [], TREE_POOL_SIZE, 1)[0]!;
    const scale = f(Math.sqrt(t1 - t0));
    const w = torchRandn(rootSeed, this.size);
    for (let i = 0; i < w.length; i++) w[i] = f(w[i]! * scale);
    this.rootIncrement = w;
  }

  /** W(tb) - W(ta) for ta <= tb (clamped to the tree's range as torchsde does, after its warning). A new array. */
  increment(ta: number, tb: number): Float32Array {
    const { start, end } = this.root;
    if (ta < start) ta = start;
    if (tb < start) tb = start;
    if (ta > end) ta = end;
    if (tb > end) tb = end;
    // NaN passes every comparison above and would never be located in the tree.
    if (Number.isNaN(ta) || Number.isNaN(tb)) throw new RangeError(`Brownian tree query times must be numbers, got ta=${ta}, tb=${tb}`);
    if (ta > tb) throw new RangeError(`Query times ta=${ta} and tb=${tb} must respect ta <= tb`);
    if (ta === tb) return new Float32Array(this.size);
    let nodes: TreeNode[];
    try {
      nodes = this.locate(round(ta), round(tb));
    } catch (error) {
      if (error instanceof UnresolvableQuery) return new Float32Array(this.size);
      throw error;
    }
    this.lastNode = nodes[nodes.length - 1]!;
    const sum = this.nodeIncrement(nodes[0]!).slice();
    for (let k = 1; k < nodes.length; k++) {
      const part = this.nodeIncrement(nodes[k]!);
      for (let i = 0; i < sum.length; i++) sum[i] = f(sum[i]! + part[i]!);
    }
    return sum;
  }

  /**
   * The canonical nodes whose union is [ta, tb], left to right, splitting nodes where needed (torchsde's
   * _loc_inner, with its tail calls as a loop and its one real call, left part before right part, as a stack).
   */
  private locate(ta: number, tb: number): TreeNode[] {
    const found: TreeNode[] = [];
    const pending: [TreeNode, number, number][] = [[this.lastNode, ta, tb]];
    while (pending.length > 0) {
      let [node, a, b] = pending.pop()!;
      for (;;) {
        if (a < node.start || b > node.end) {
          node = node.parent!; // the root covers every clamped query, so only non-root nodes get here
          continue;
        }
        if (a === node.start && b === node.end) {
          found.push(node);
          break;
        }
        if (node.midway === undefined) {
          if (a === node.start) {
            this.split(node, b);
            node = node.left!;
          } else {
            this.split(node, a);
            node = node.right!;
          }
          continue;
        }
        if (b <= node.midway) node = node.left!;
        else if (a >= node.midway) node = node.right!;
        else {
          pending.push([node.right!, node.midway, b]);
          b = node.midway;
          node = node.left!;
        }
      }
    }
    return found;
  }

  /** torchsde's halfway-tree _split: halve at the rounded midpoint, then keep halving towards `point`. */
  private split(node: TreeNode, point: number): void {
    for (;;) {
      const halfway = 0.5 * (node.end + node.start);
      const midway = round(halfway);
      node.midway = midway;
      node.left = new TreeNode(node.start, round(halfway), node, true);
      node.right = new TreeNode(round(halfway), node.end, node, false);
      let next: TreeNode;
      if (point > midway) next = node.right;
      else if (point < midway) next = node.left;
      else return;
      // A 1e-6-wide node whose halfway point rounds onto its start has a child equal to itself: torchsde
      // recurses on it until RecursionError. Only a query finer than the tolerance gets here.
      if (next.start === node.start && next.end === node.end) throw new UnresolvableQuery();
      node = next;
    }
  }

  /** A node's increment: from the cache, or as Brownian bridge draws down from the nearest known ancestor. */
  private nodeIncrement(node: TreeNode): Float32Array {
    const cached = this.knownIncrement(node);
    if (cached !== undefined) return cached;
    // Climb to the nearest ancestor whose increment is known (the root's always is) ...
    const path: TreeNode[] = [node];
    let known = this.knownIncrement(node.parent!);
    while (known === undefined) {
      const ancestor = path[path.length - 1]!.parent!;
      path.push(ancestor);
      known = this.knownIncrement(ancestor.parent!);
    }
    // ... then come back down. Both children of a parent come from the parent's one noise draw, so we keep both:
    // the sibling is often the next piece a query needs, and the draw (torch.randn) is most of the cost.
    for (let k = path.length - 1; k >= 0; k--) {
      const child = path[k]!;
      const parent = child.parent!;
      const [left, right] = this.splitIncrement(parent, known);
      const sibling = child.isLeft ? parent.right! : parent.left!;
      this.remember(sibling, child.isLeft ? right : left);
      known = child.isLeft ? left : right;
      this.remember(child, known);
    }
    return known;
  }

  private knownIncrement(node: TreeNode): Float32Array | undefined {
    if (node === this.root) return this.rootIncrement;
    const value = this.cache.get(node);
    if (value !== undefined) {
      // Least recently used goes first: re-append on every read.
      this.cache.delete(node);
      this.cache.set(node, value);
    }
    return value;
  }

  /** The increments of a split node's two children, given its own (torchsde's _increment_and_space_time_levy_area). */
  private splitIncrement(parent: TreeNode, parentIncrement: Float32Array): [Float32Array, Float32Array] {
    const midway = parent.midway!;
    // Python floats (double), then each rounded to float32 where it meets the float32 tensor.
    const reciprocalLength = 1 / (parent.end - parent.start);
    const leftLength = midway - parent.start;
    const rightLength = parent.end - midway;
    const variance = leftLength * rightLength * reciprocalLength;
    const leftF = f(leftLength);
    const reciprocalF = f(reciprocalLength);
    const stdF = f(Math.sqrt(variance));
    const left = torchRandn(parent.seedOfSplit(this.entropy), this.size); // overwritten by the left increment
    const right = new Float32Array(this.size);
    for (let i = 0; i < left.length; i++) {
      const w = parentIncrement[i]!;
      const mean = f(f(w * leftF) * reciprocalF); // left_diff * W * h_reciprocal, left to right
      const leftW = f(mean + f(stdF * left[i]!));
      left[i] = leftW;
      right[i] = f(w - leftW);
    }
    return [left, right];
  }

  private remember(node: TreeNode, value: Float32Array): void {
    this.cache.delete(node);
    if (this.cache.size >= this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(node, value);
  }
}

function round(t: number): number {
  return roundLikePython(t, TREE_TOL_DIGITS);
}

// ---------------------------------------------------------------------------------------------------------
// ComfyUI's BrownianTreeNoiseSampler (with BatchedBrownianTree)
// ---------------------------------------------------------------------------------------------------------

export interface BrownianTreeNoiseSamplerOptions {
  /**
   * ComfyUI's noise seed (0..2^64-1; a bigint or decimal string above 2^53). One seed drives one tree over the
   * whole latent, batch included, as ComfyUI's samplers do. A list gives one tree per batch item (its length must
   * be the batch size), as BatchedBrownianTree does when handed a list.
   */
  seed: number | bigint | string | readonly (number | bigint | string)[];
  /** Shape of the latent, e.g. [B, C, H, W]. */
  shape: readonly number[];
  /** Smallest non-zero and largest sigma of the schedule (ComfyUI: sigmas[sigmas > 0].min(), sigmas.max()). */
  sigmaMin: number;
  sigmaMax: number;
}

/**
 * ComfyUI's `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=True)`: unit Gaussian noise for
 * the move from sigma to sigmaNext, the same float32 values ComfyUI draws for the same seed, shape and sigmas.
 * Sigmas are taken as float32, as ComfyUI holds them. The draws depend only on (seed, shape, range, sigma,
 * sigmaNext), never on the order of the calls.
 */
export function createBrownianTreeNoiseSampler(options: BrownianTreeNoiseSamplerOptions): NoiseSampler {
  const shape = [...options.shape];
  const size = sizeOf(shape);
  // BatchedBrownianTree.sort: the tree runs forwards in time; `treeSign` undoes a reversed range.
  const [t0, t1, treeSign] = sortTimes(f(options.sigmaMin), f(options.sigmaMax));
  const seeds = options.seed;
  let trees: BrownianTree[];
  if (Array.isArray(seeds)) {
    if (seeds.length !== shape[0]) {
      throw new RangeError(`A list of ${seeds.length} seeds needs a batch of ${seeds.length}, but the shape is [${shape.join(', ')}]`);
    }
    const itemShape = shape.slice(1);
    trees = seeds.map((seed) => new BrownianTree({ seed, shape: itemShape, t0, t1 }));
  } else {
    trees = [new BrownianTree({ seed: seeds as number | bigint | string, shape, t0, t1 })];
  }
  return (sigma: number, sigmaNext: number): Tensor => {
    const from = f(sigma);
    const to = f(sigmaNext);
    const [ta, tb, querySign] = sortTimes(from, to);
    const sign = treeSign * querySign;
    const scale = f(Math.sqrt(Math.abs(f(to - from))));
    const data = new Float32Array(size);
    let offset = 0;
    for (const tree of trees) {
      // Several trees stack along the batch dimension, in seed order.
      const w = tree.increment(ta, tb);
      for (let i = 0; i < w.length; i++) data[offset + i] = f((w[i]! * sign) / scale);
      offset += w.length;
    }
    return { data, shape: [...shape] };
  };
}

/** ComfyUI's `sort(a, b)`: (a, b, 1) if a < b else (b, a, -1); equal times count as reversed. */
function sortTimes(a: number, b: number): [number, number, number] {
  return a < b ? [a, b, 1] : [b, a, -1];
}
