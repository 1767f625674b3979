/**
 * Running the VAE on overlapping tiles and blending them, as ComfyUI's tiled VAE does (comfy/utils.py
 * tiled_scale, comfy/sd.py decode_tiled_ / encode_tiled_):
 *
 * - tile positions along each axis: 0, tile - overlap, 2 (tile - overlap), ... while below size - overlap; the last
 *   tile is cut at the edge (shorter), an axis no longer than the tile is one tile;
 * - each tile's output is weighted by a feathered mask, ramping (t + 1) / feather over `overlap` cells (scaled to
 *   the output) at each of its four edges, and the image is the weighted sum divided by the sum of the weights;
 * - three tilings are averaged (square tiles, tiles half as wide and twice as high, and the transpose), so no
 *   seam sits at the same place in all three.
 *
 * Memory: the weights of a grid of tiles are separable (each tile's mask is a row profile times a column profile,
 * and the tiles are every row span with every column span), so their sum is the product of two 1-D sums. Each
 * tile's contribution is therefore divided by the sum as it is added, and nothing but the output and one tile is
 * ever held: ComfyUI's accumulator and weight planes (each image-sized) are not needed.
 *
 * Geometry is in latent cells (the VAE's blocks of `f` pixels), so every tile's pixel size is a multiple of `f`,
 * which the VAE requires.
 */

/** One tile's extent along an axis, in latent cells. */
export interface Span {
  start: number;
  length: number;
}

/** A grid of tiles (every row span with every column span) and its share of the average. */
export interface Tiling {
  rows: Span[];
  cols: Span[];
  weight: number;
}

/** ComfyUI's tile positions along an axis of `size` cells (tiled_scale_multidim's `positions` and `narrow`). */
export function tileSpans(size: number, tile: number, overlap: number): Span[] {
  if (size <= tile) return [{ start: 0, length: size }];
  const step = tile - overlap;
  if (step <= 0) throw new RangeError(`tile ${tile} must be larger than overlap ${overlap}`);
  const spans: Span[] = [];
  for (let start = 0; start < size - overlap; start += step) spans.push({ start, length: Math.min(tile, size - start) });
  return spans;
}

/**
 * The mask along one axis of a tile `length` output units long: 1, times (t + 1) / feather at distance t from each
 * end, for t < feather. As in ComfyUI both ramps multiply where they meet, and an axis not longer than the
 * feather is not feathered.
 */
export function featherProfile(length: number, feather: number): Float64Array {
  const mask = new Float64Array(length).fill(1);
  if (feather >= length) return mask;
  for (let t = 0; t < feather; t++) {
    const a = (t + 1) / feather;
    mask[t]! *= a;
    mask[length - 1 - t]! *= a;
  }
  return mask;
}

/**
 * ComfyUI's three tilings of an h x w latent for a square tile of `tile` cells: (tile / 2 wide, tile * 2 high),
 * (tile * 2 wide, tile / 2 high) and (tile, tile), each a third of the result. Tilings that come out the same
 * (a latent smaller than the tiles is one tile in all three) are run once with their weights added.
 */
export function comfyTilings(h: number, w: number, tile: number, overlap: number): Tiling[] {
  const half = Math.floor(tile / 2);
  const shapes: Array<[number, number]> = [
    [tile * 2, half],
    [half, tile * 2],
    [tile, tile],
  ];
  const tilings = new Map<string, Tiling>();
  for (const [tileH, tileW] of shapes) {
    const rows = tileSpans(h, tileH, overlap);
    const cols = tileSpans(w, tileW, overlap);
    const key = JSON.stringify([rows, cols]);
    const seen = tilings.get(key);
    if (seen) seen.weight += 1 / shapes.length;
    else tilings.set(key, { rows, cols, weight: 1 / shapes.length });
  }
  return [...tilings.values()];
}

/** The distinct tile sizes (cells, [h, w]) of some tilings: what the VAE will be run on. */
export function tileShapes(tilings: readonly Tiling[]): Array<[number, number]> {
  const shapes = new Map<string, [number, number]>();
  for (const { rows, cols } of tilings) {
    for (const r of rows) for (const c of cols) shapes.set(`${r.length}x${c.length}`, [r.length, c.length]);
  }
  return [...shapes.values()];
}

/** How many tiles the tilings run (for progress). */
export function tileCount(tilings: readonly Tiling[]): number {
  return tilings.reduce((n, t) => n + t.rows.length * t.cols.length, 0);
}

/** Where the blended result goes: one batch item, channels interleaved (an IMAGE) or planar (a LATENT). */
export interface BlendTarget {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
  /** HWC (an IMAGE's layout) when true, CHW (a LATENT's) when false. Tiles come in the same layout. */
  interleaved: boolean;
}

export interface BlendOptions {
  tilings: readonly Tiling[];
  /** Output units per latent cell: the VAE's factor when decoding, 1 when encoding. */
  scale: number;
  /** The overlap in cells: the feather is this many cells, in output units. */
  overlap: number;
  target: BlendTarget;
  /**
   * Runs the VAE on the tile at rows x cols (cells) and returns its output, `rows.length * scale` high and
   * `cols.length * scale` wide, in the target's layout.
   */
  run(rows: Span, cols: Span): Promise<Float32Array>;
  /** Called after each tile (progress, interruption). */
  onTile?(): void;
}

/** Sum over spans of each span's feather profile, per output coordinate: one factor of the separable weight sum. */
function weightSums(spans: readonly Span[], size: number, scale: number, feather: number): Float64Array {
  const sums = new Float64Array(size);
  for (const s of spans) {
    const profile = featherProfile(s.length * scale, feather);
    for (let i = 0; i < profile.length; i++) sums[s.start * scale + i]! += profile[i]!;
  }
  return sums;
}

/** A span's share at each of its output coordinates: its profile over the sum of all profiles there. */
function shares(span: Span, sums: Float64Array, scale: number, feather: number): Float64Array {
  const profile = featherProfile(span.length * scale, feather);
  for (let i = 0; i < profile.length; i++) profile[i]! /= sums[span.start * scale + i]!;
  return profile;
}

/** Runs every tile of every tiling and adds its blended share into `target` (which must start at zero). */
export async function blendTiles(options: BlendOptions): Promise<void> {
  const { tilings, scale, target } = options;
  const feather = options.overlap * scale;
  const { height, width, channels, interleaved } = target;
  // Strides of (channel, row, column) in the target; a tile has the same layout at its own size.
  const stride = (h: number, w: number) => (interleaved ? { c: 1, y: w * channels, x: channels } : { c: h * w, y: w, x: 1 });
  const out = stride(height, width);
  for (const tiling of tilings) {
    const rowSums = weightSums(tiling.rows, height, scale, feather);
    const colSums = weightSums(tiling.cols, width, scale, feather);
    for (const rows of tiling.rows) {
      const rowShare = shares(rows, rowSums, scale, feather);
      for (const cols of tiling.cols) {
        const colShare = shares(cols, colSums, scale, feather);
        const tile = await options.run(rows, cols);
        const th = rows.length * scale;
        const tw = cols.length * scale;
        if (tile.length !== th * tw * channels) {
          throw new RangeError(`a tile of ${tw}x${th} came back with ${tile.length} values, expected ${th * tw * channels}`);
        }
        const t = stride(th, tw);
        const y0 = rows.start * scale;
        const x0 = cols.start * scale;
        for (let y = 0; y < th; y++) {
          const wy = rowShare[y]! * tiling.weight;
          for (let x = 0; x < tw; x++) {
            const w = wy * colShare[x]!;
            const src = y * t.y + x * t.x;
            const dst = (y0 + y) * out.y + (x0 + x) * out.x;
            for (let c = 0; c < channels; c++) target.data[dst + c * out.c]! += tile[src + c * t.c]! * w;
          }
        }
        options.onTile?.();
      }
    }
  }
}
