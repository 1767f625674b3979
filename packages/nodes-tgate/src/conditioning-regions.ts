/**
 * From CONDITIONING lists to the sampler's regional conditioning (@gategraph/diffusion regional-conditioning.ts),
 * as ComfyUI's resolve_areas_and_cond_masks and calculate_start_end_timesteps prepare them: areas in latent
 * cells, masks resized to the latent (bilinear) with "mask bounds" turned into an area, timestep ranges into
 * sigmas of the model's schedule.
 *
 * A sampler input of one plain entry (no area, mask, strength or range) keeps the ordinary path, so ordinary
 * graphs run exactly as before; anything else runs every entry at every step.
 */
import { NodeInputError } from '@gategraph/core';
import {
  lastTimestep,
  resizeBilinear,
  timestepToSigma,
  type DiffusionModel,
  type LatentArea,
  type NoiseLevels,
  type RegionalConditioning,
  type RegionalEntry,
  type Tensor,
} from '@gategraph/diffusion';
import { addedConditioningForEntry, checkConditioningEntry } from './latent.ts';
import type { Conditioning, ConditioningEntry } from './types.ts';

/** True when the entry needs more than the ordinary path: an area, a mask, a strength or a timestep range. */
function isRegional(entry: ConditioningEntry): boolean {
  return entry.area !== undefined || entry.mask !== undefined || (entry.strength ?? 1) !== 1 || entry.timestepRange !== undefined;
}

/** True when a sampler's inputs need regional conditioning (several entries, or one with an area, mask, ...). */
export function needsRegions(...sides: (Conditioning | undefined)[]): boolean {
  return sides.some((side) => side !== undefined && (side.length > 1 || side.some(isRegional)));
}

/**
 * ComfyUI's ModelSamplingDiscrete.percent_to_sigma: 0 is "from the start" (a sigma above any), 1 is "to the
 * end" (0), in between the sigma at timestep (1 - percent) * 999 of the model's schedule.
 */
export function percentToSigma(levels: NoiseLevels, percent: number): number {
  if (percent <= 0) return 999999999.9;
  if (percent >= 1) return 0;
  return timestepToSigma(levels, (1 - percent) * lastTimestep(levels));
}

/** The pixel or fraction area of an entry in latent cells (ComfyUI: pixels // 8; fractions rounded, size at least 1). */
function areaInCells(entry: ConditioningEntry, factor: number, h: number, w: number): LatentArea | undefined {
  const area = entry.area;
  if (!area) return undefined;
  if (area.unit === 'pixels') {
    return { height: Math.floor(area.height / factor), width: Math.floor(area.width / factor), y: Math.floor(area.y / factor), x: Math.floor(area.x / factor) };
  }
  return { height: Math.max(1, Math.round(area.height * h)), width: Math.max(1, Math.round(area.width * w)), y: Math.round(area.y * h), x: Math.round(area.x * w) };
}

/** The mask as [B, 1, h, w] at the latent's size, times mask strength. */
function maskAtLatent(mask: Tensor, strength: number, h: number, w: number): Tensor {
  const shape = mask.shape.length === 2 ? [1, 1, mask.shape[0]!, mask.shape[1]!] : [mask.shape[0]!, 1, mask.shape[1]!, mask.shape[2]!];
  const resized = resizeBilinear({ data: mask.data, shape }, h, w);
  if (strength === 1) return resized;
  return { data: resized.data.map((v) => v * strength), shape: resized.shape };
}

/**
 * ComfyUI's "mask bounds": the bounding box of the cells where any item's mask is not 0, at least 8 x 8 cells;
 * an empty mask gives an 8 x 8 area at the corner (its weights are 0 anyway).
 */
function maskBounds(mask: Tensor): LatentArea {
  const [B, , h, w] = mask.shape as [number, number, number, number];
  let [y0, x0, y1, x1] = [h, w, -1, -1];
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (mask.data[(b * h + y) * w + x] === 0) continue;
        y0 = Math.min(y0, y);
        x0 = Math.min(x0, x);
        y1 = Math.max(y1, y);
        x1 = Math.max(x1, x);
      }
    }
  }
  if (y1 < 0) return { height: 8, width: 8, y: 0, x: 0 };
  return { height: Math.max(8, y1 - y0 + 1), width: Math.max(8, x1 - x0 + 1), y: y0, x: x0 };
}

function regionalEntry(entry: ConditioningEntry, model: DiffusionModel, input: string, latentShape: readonly number[], levels: NoiseLevels): RegionalEntry {
  checkConditioningEntry(entry, model, input);
  const [, , h, w] = latentShape as [number, number, number, number];
  const factor = model.io.vae.scaleFactor;
  const mask = entry.mask ? maskAtLatent(entry.mask, entry.maskStrength ?? 1, h, w) : undefined;
  const area = entry.setAreaToBounds && mask ? maskBounds(mask) : areaInCells(entry, factor, h, w);
  if (area && (area.width < 1 || area.height < 1)) {
    throw new NodeInputError(`${input}: a conditioning area of ${area.width}x${area.height} latent cells is empty; make it at least ${factor} pixels wide and high`, input);
  }
  const fixed = model.io.unet.fixedLatentSize;
  if (fixed && area && (area.height < h - area.y || area.width < w - area.x || area.y > 0 || area.x > 0)) {
    throw new NodeInputError(
      `${input}: a conditioning area (ConditioningSetArea, a mask's bounds) runs the UNet on part of the latent, and ${model.name}'s UNet was exported ` +
        `for ${fixed[1] * factor}x${fixed[0] * factor} images only: use a model exported with dynamic sizes, or a mask with set_cond_area "default"`,
      input,
    );
  }
  const added = addedConditioningForEntry(entry, model, input, latentShape);
  const range = entry.timestepRange;
  return {
    context: entry.hiddenStates,
    ...(added ? { added } : {}),
    ...(area ? { area } : {}),
    ...(mask ? { mask } : {}),
    ...(entry.strength !== undefined ? { strength: entry.strength } : {}),
    ...(range ? { sigmaRange: { start: percentToSigma(levels, range.start), end: percentToSigma(levels, range.end) } } : {}),
  };
}

/** The regional conditioning of a sampler's inputs (call when needsRegions says so). */
export function regionsFor(
  positive: Conditioning,
  negative: Conditioning | undefined,
  model: DiffusionModel,
  latentShape: readonly number[],
  /** The noise levels the run samples with (the MODEL's, see sampler-choice.ts levelsOf): timestep ranges become sigmas of them. */
  levels: NoiseLevels,
): RegionalConditioning {
  const side = (conditioning: Conditioning, input: string) => {
    if (!Array.isArray(conditioning) || conditioning.length === 0) throw new NodeInputError(`${input} is an empty CONDITIONING; connect a CLIPTextEncode`, input);
    return conditioning.map((entry) => regionalEntry(entry, model, input, latentShape, levels));
  };
  return { positive: side(positive, 'positive'), ...(negative ? { negative: side(negative, 'negative') } : {}) };
}
