/**
 * Several conditionings per prompt side, evaluated as ComfyUI's calc_cond_batch does (comfy/samplers.py):
 *
 * - each entry has a weight map: its mask (times mask strength) or ones, times its strength; an entry limited to
 *   an area without a mask gets its edges feathered over 8 latent cells where they lie inside the latent;
 * - an entry with a timestep range is used only while the call's sigma lies in it;
 * - each active entry's prediction (on its area's crop of the sample) is added into the full-size sum with its
 *   weights, the weights are summed too, and the side's prediction is sum / weights;
 * - where no entry has weight ComfyUI's estimate of the clean latent is 0 (its sums start at zero and the
 *   weights at 1e-37): the caller supplies that prediction.
 *
 * Predictions are combined in the model's units (eps or v): both are affine in the clean-latent estimate with
 * the same coefficients for every entry, so the weighted mean is the same as ComfyUI's mean of estimates.
 *
 * Entries whose crops have the same size and whose token lengths can share a call run as one UNet call of
 * several B-row blocks, negative and positive alike (ComfyUI batches them the same way).
 */
import type { AddedConditioning } from './sampling.ts';
import { canShareCall } from './cross-attn-batch.ts';
import type { Tensor } from './tensor.ts';

/** A rectangle of the latent, in latent cells. */
export interface LatentArea {
  readonly height: number;
  readonly width: number;
  readonly y: number;
  readonly x: number;
}

/** One conditioning entry, resolved to the latent's size. */
export interface RegionalEntry {
  /** encoder_hidden_states [1 or B, L, D]. */
  readonly context: Tensor;
  /** SDXL's text_embeds / time_ids for this entry, when the UNet takes them. */
  readonly added?: AddedConditioning;
  /** Where the entry applies; absent: the whole latent. Clipped to the latent when sampling. */
  readonly area?: LatentArea;
  /** Weights at the latent's size, [1 or B, 1, h, w] (already times the mask strength). */
  readonly mask?: Tensor;
  /** ComfyUI's `strength` (ConditioningSetArea's): the weight of the entry beside the others. Default 1. */
  readonly strength?: number;
  /** Used only while end <= sigma <= start (ComfyUI's timestep_start / timestep_end, as sigmas). */
  readonly sigmaRange?: { readonly start: number; readonly end: number };
}

export interface RegionalConditioning {
  readonly positive: readonly RegionalEntry[];
  /** Needed when cfg != 1. */
  readonly negative?: readonly RegionalEntry[];
  /**
   * ComfyUI's DualCFGGuider: a second prompt between the negative and the positive, and how the three mix
   * (sampling.ts dualGuidance). The sampler's cfg is then unused.
   */
  readonly dual?: DualGuidance;
}

/** DualCFGGuider's settings: `middle` is its cond2. */
export interface DualGuidance {
  readonly middle: readonly RegionalEntry[];
  /** Guidance of the positive (cond1) against the middle (cfg_conds). */
  readonly cfgConds: number;
  /** Guidance of the middle against the negative (cfg_cond2_negative). */
  readonly cfgCond2Negative: number;
  /** ComfyUI's style "nested" (else "regular"). */
  readonly nested: boolean;
}

/**
 * DualCFGGuider's mix of the three predictions, ComfyUI's formulas:
 * regular: neg + cfg2 (mid - neg) + cfg1 (pos - mid); nested: neg + cfg2 ((mid + cfg1 (pos - mid)) - neg).
 */
export function dualGuidance(negative: Tensor, middle: Tensor, positive: Tensor, dual: DualGuidance): Tensor {
  const out = new Float32Array(positive.data.length);
  const [c1, c2] = [dual.cfgConds, dual.cfgCond2Negative];
  for (let k = 0; k < out.length; k++) {
    const [n, m, p] = [negative.data[k]!, middle.data[k]!, positive.data[k]!];
    out[k] = dual.nested ? n + c2 * (m + c1 * (p - m) - n) : n + c2 * (m - n) + c1 * (p - m);
  }
  return { data: out, shape: [...positive.shape] };
}

/** Which side an entry belongs to: ComfyUI's cond_or_uncond (0 = positive, 1 = negative), and DualCFGGuider's middle. */
export type Side = 'positive' | 'negative' | 'middle';

export interface ActiveEntry {
  readonly side: Side;
  readonly entry: RegionalEntry;
  /** The entry's area clipped to the latent (the whole latent when it has none). */
  readonly area: LatentArea;
}

/** The entries of the sides that take part at sigma, with their clipped areas. */
export function activeEntries(conditioning: RegionalConditioning, sides: readonly Side[], sigma: number, h: number, w: number): ActiveEntry[] {
  const out: ActiveEntry[] = [];
  for (const side of sides) {
    const entries = side === 'positive' ? conditioning.positive : side === 'negative' ? conditioning.negative : conditioning.dual?.middle;
    for (const entry of entries ?? []) {
      const range = entry.sigmaRange;
      if (range && (sigma > range.start || sigma < range.end)) continue;
      out.push({ side, entry, area: clipArea(entry.area, h, w) });
    }
  }
  return out;
}

/** ComfyUI's narrowing: an area's offset is kept and its size shrunk to fit the latent. */
export function clipArea(area: LatentArea | undefined, h: number, w: number): LatentArea {
  if (!area) return { height: h, width: w, y: 0, x: 0 };
  const y = Math.min(Math.max(0, area.y), h - 1);
  const x = Math.min(Math.max(0, area.x), w - 1);
  return { height: Math.max(1, Math.min(area.height, h - y)), width: Math.max(1, Math.min(area.width, w - x)), y, x };
}

/**
 * Groups entries into UNet calls: same crop size and token lengths that can share a call (cross-attn-batch.ts),
 * at most `maxBlocks` B-row blocks per call (a UNet exported for a fixed batch takes one block).
 */
export function groupCalls(entries: readonly ActiveEntry[], maxBlocks = Infinity): ActiveEntry[][] {
  const groups: ActiveEntry[][] = [];
  for (const item of entries) {
    const group = groups.find(
      (g) =>
        g.length < maxBlocks &&
        g[0]!.area.height === item.area.height &&
        g[0]!.area.width === item.area.width &&
        g.every((other) => canShareCall(other.entry.context.shape, item.entry.context.shape)) &&
        (g[0]!.entry.added === undefined) === (item.entry.added === undefined),
    );
    if (group) group.push(item);
    else groups.push([item]);
  }
  return groups;
}

/** The area's crop of [B, C, h, w] (a copy). */
export function cropArea(t: Tensor, area: LatentArea): Tensor {
  const [B, C, h, w] = t.shape as [number, number, number, number];
  if (area.y === 0 && area.x === 0 && area.height === h && area.width === w) return t;
  const out = new Float32Array(B * C * area.height * area.width);
  let o = 0;
  for (let bc = 0; bc < B * C; bc++) {
    for (let y = 0; y < area.height; y++) {
      const row = bc * h * w + (area.y + y) * w + area.x;
      out.set(t.data.subarray(row, row + area.width), o);
      o += area.width;
    }
  }
  return { data: out, shape: [B, C, area.height, area.width] };
}

/**
 * The entry's weights on its crop, [B, 1, ah, aw]: mask (cropped) or ones, times strength; without a mask, an
 * area's inner edges fade in over 8 cells (ComfyUI's rr = 8: row t from the edge is multiplied by (t + 1) / 8).
 */
export function entryWeights(item: ActiveEntry, batch: number, h: number, w: number): Tensor {
  const { area, entry } = item;
  const plane = area.height * area.width;
  const out = new Float32Array(batch * plane);
  const strength = entry.strength ?? 1;
  if (entry.mask) {
    const mb = entry.mask.shape[0]!;
    for (let b = 0; b < batch; b++) {
      const base = (b % mb) * h * w;
      for (let y = 0; y < area.height; y++) {
        for (let x = 0; x < area.width; x++) out[b * plane + y * area.width + x] = entry.mask.data[base + (area.y + y) * w + area.x + x]! * strength;
      }
    }
    return { data: out, shape: [batch, 1, area.height, area.width] };
  }
  out.fill(strength);
  if (entry.area) {
    const FEATHER = 8;
    const fade = (index: (t: number) => number, count: number, isRow: boolean) => {
      for (let t = 0; t < FEATHER; t++) {
        const k = index(t);
        if (k < 0 || k >= count) continue;
        const factor = (t + 1) / FEATHER;
        for (let b = 0; b < batch; b++) {
          if (isRow) for (let x = 0; x < area.width; x++) out[b * plane + k * area.width + x]! *= factor;
          else for (let y = 0; y < area.height; y++) out[b * plane + y * area.width + k]! *= factor;
        }
      }
    };
    if (area.y !== 0) fade((t) => t, area.height, true);
    if (area.y + area.height < h) fade((t) => area.height - 1 - t, area.height, true);
    if (area.x !== 0) fade((t) => t, area.width, false);
    if (area.x + area.width < w) fade((t) => area.width - 1 - t, area.width, false);
  }
  return { data: out, shape: [batch, 1, area.height, area.width] };
}

/** Running sums of one side: weighted predictions and weights, at the latent's size. */
export class WeightedSum {
  readonly sum: Float32Array;
  readonly weight: Float32Array;
  constructor(readonly shape: readonly [number, number, number, number]) {
    const [B, C, h, w] = shape;
    this.sum = new Float32Array(B * C * h * w);
    this.weight = new Float32Array(B * h * w);
  }

  /** Adds a crop's prediction [B, C, ah, aw] with its weights [B, 1, ah, aw] at the area. */
  add(prediction: Tensor, weights: Tensor, area: LatentArea): void {
    const [B, C, h, w] = this.shape;
    const plane = area.height * area.width;
    for (let b = 0; b < B; b++) {
      for (let y = 0; y < area.height; y++) {
        for (let x = 0; x < area.width; x++) {
          const m = weights.data[b * plane + y * area.width + x]!;
          const at = (area.y + y) * w + area.x + x;
          this.weight[b * h * w + at]! += m;
          for (let c = 0; c < C; c++) this.sum[(b * C + c) * h * w + at]! += prediction.data[(b * C + c) * plane + y * area.width + x]! * m;
        }
      }
    }
  }

  /** sum / weights; where nothing has weight, the value of `uncovered` (computed only if needed). */
  mean(uncovered: () => Tensor): Tensor {
    const [B, C, h, w] = this.shape;
    const out = new Float32Array(this.sum.length);
    let fallback: Tensor | undefined;
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < h * w; p++) {
        const m = this.weight[b * h * w + p]!;
        for (let c = 0; c < C; c++) {
          const k = (b * C + c) * h * w + p;
          if (m > 0) out[k] = this.sum[k]! / m;
          else out[k] = (fallback ??= uncovered()).data[k]!;
        }
      }
    }
    return { data: out, shape: [...this.shape] };
  }
}
