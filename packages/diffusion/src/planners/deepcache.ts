// DeepCache step planner (horseee/DeepCache). On full steps the whole UNet runs and the deep feature (the input
// of the up-path at the chosen branch) is kept; on the other steps only the shallow branch runs, fed that
// feature. Which steps are full:
//   uniform      every `cacheInterval` steps from step 0 (`range(0, steps, interval)` in its pipelines);
//   non_uniform  `sample_from_quad_center` of its experimental SD/SDXL/DDPM pipelines: ceil(steps / interval)
//                full steps, spaced by a power law so they crowd around a centre step (ported exactly below).
// Branch `cacheBranchId = k` means cache_block_id = k // 3 and cache_layer_id = k % 3, as its helper.

import { PlanError, type DeepCacheSettings, type ExecutionPlan, type PlannedStep } from './types.ts';
import { describe, requireWholeNumber } from './validate.ts';

export interface DeepCacheOptions {
  steps: number;
  /** A full UNet step every `cacheInterval` steps (default 3; 1 = DeepCache off). */
  cacheInterval?: number;
  /** Which skip branch is cached (default 0, the shallowest and fastest). */
  cacheBranchId?: number;
  /** Highest branch id the model has (3 x its number of down blocks - 1); checked when given. */
  maxBranchId?: number;
  /** Default 'uniform'. */
  schedule?: 'uniform' | 'non_uniform';
  /** Non-uniform: the step full steps crowd around (required there; DeepCache's code has no default). */
  centre?: number;
  /** Non-uniform: starting power of the spacing (default 1.2, the code's default; must be above 1). */
  power?: number;
  /** Guidance-free model: one pass per step with the prompt (default false). */
  lcm?: boolean;
}

/** `cacheBranchId` limit for a UNet with `downBlocks` down blocks (SD 1.5/2.1: 4 -> 11, SDXL: 3 -> 8). */
export function deepCacheMaxBranchId(downBlocks: number): number {
  return 3 * downBlocks - 1;
}

/**
 * DeepCache's `sample_from_quad_center(total, nSamples, centre, power)`, with numpy's arithmetic reproduced:
 * Python evaluates `(-centre) ** (1 / power)` as a complex number, numpy's linspace runs between that and
 * `(total - centre) ** (1 / power)`, each point is raised to `power` (complex power: exp(p log z)), the real
 * part is truncated to an integer, and the distinct values without the smallest and the largest, shifted by
 * `centre`, follow a leading 0. While that does not give `nSamples` steps the power drops by 0.02; at or
 * below 1 there is no answer. Returns the steps in order and the power that produced them.
 *
 * Checked against numpy 1.24 (test/fixtures/make_deepcache_refs.py). Where a point lands exactly on a whole
 * number (the first point always does: it is -centre) the truncation hinges on the last bit of the C
 * library's exp/log/cos for non-integer powers, so on rare inputs (under 1 % of steps 2..100, intervals 2..7)
 * the result can differ from a numpy run by one step; V8's own maths make ours the same on every platform.
 */
export function quadCentreSchedule(
  total: number,
  nSamples: number,
  centre: number,
  power: number,
): { steps: number[]; powerUsed: number } | undefined {
  let p = power;
  while (p > 1) {
    const indices = quadCentreOnce(total, nSamples, centre, p);
    if (indices.length === nSamples) return { steps: indices, powerUsed: p };
    p -= 0.02;
  }
  return undefined;
}

function quadCentreOnce(total: number, nSamples: number, centre: number, p: number): number[] {
  const e = 1 / p;
  // Python: a negative int to a fractional power is complex: |a|^e * (cos(pi e), sin(pi e)).
  let startRe: number;
  let startIm: number;
  if (centre === 0) {
    startRe = 0;
    startIm = 0;
  } else {
    const len = Math.pow(centre, e);
    startRe = len * Math.cos(Math.PI * e);
    startIm = len * Math.sin(Math.PI * e);
  }
  const complex = centre !== 0;
  // total - centre >= 0 here (validated), so the stop is real.
  const stop = Math.pow(total - centre, e);
  const num = nSamples + 1;
  // numpy divides a complex by the int (num - 1) as a complex division, which multiplies by its reciprocal;
  // a real linspace divides directly. Kept apart so the truncation below sees numpy's exact values.
  const div = num - 1;
  const stepRe = complex ? (stop - startRe) * (1 / div) : (stop - startRe) / div;
  const stepIm = complex ? (0 - startIm) * (1 / div) : 0;
  const values: number[] = [];
  for (let i = 0; i < num; i++) {
    // numpy linspace: i * step + start, with the last point set to stop exactly.
    const last = i === num - 1 && num > 1;
    const re = last ? stop : i * stepRe + startRe;
    const im = last ? 0 : i * stepIm + startIm;
    values.push(Math.trunc(realPartOfPower(re, im, p))); // np.int32: real part, toward zero
  }
  const unique = [...new Set(values)].sort((a, b) => a - b);
  return [0, ...unique.slice(1, -1).map((v) => v + centre)];
}

/** Re((re + i im) ** p), as numpy computes it: repeated products for whole p, exp(p log z) otherwise. */
function realPartOfPower(re: number, im: number, p: number): number {
  if (Number.isInteger(p) && p > 0 && p < 100) {
    let accRe = 1;
    let accIm = 0;
    let baseRe = re;
    let baseIm = im;
    for (let n = p; n > 0; n >>= 1) {
      if (n & 1) [accRe, accIm] = [accRe * baseRe - accIm * baseIm, accRe * baseIm + accIm * baseRe];
      if (n > 1) [baseRe, baseIm] = [baseRe * baseRe - baseIm * baseIm, baseRe * baseIm + baseIm * baseRe];
    }
    return accRe;
  }
  if (im === 0 && re >= 0) return Math.pow(re, p);
  if (re === 0 && im === 0) return 0;
  return Math.exp(p * Math.log(Math.hypot(re, im))) * Math.cos(p * Math.atan2(im, re));
}

function resolve(options: DeepCacheOptions): { steps: number; settings: DeepCacheSettings; notes: string[] } {
  const notes: string[] = [];
  const steps = requireWholeNumber('steps', options.steps, 1, 'the number of denoising steps');
  const cacheInterval = requireWholeNumber(
    'cacheInterval',
    options.cacheInterval ?? 3,
    1,
    'the full UNet runs once every cacheInterval steps (1 = every step, DeepCache off)',
  );
  const cacheBranchId = requireWholeNumber(
    'cacheBranchId',
    options.cacheBranchId ?? 0,
    0,
    'the skip branch whose deep feature is cached (0 = shallowest, fastest)',
  );
  if (options.maxBranchId !== undefined) {
    const max = requireWholeNumber('maxBranchId', options.maxBranchId, 0, "the model's highest DeepCache branch id");
    if (cacheBranchId > max) {
      throw new PlanError(
        `cacheBranchId ${cacheBranchId} is out of range for this model: its UNet has branches 0..${max} ` +
          `(branch k caches block k // 3, layer k % 3; block ${Math.floor(cacheBranchId / 3)} does not exist). ` +
          'Use a smaller cacheBranchId; 0 is the usual choice.',
        'cacheBranchId',
      );
    }
  }
  const schedule = options.schedule ?? 'uniform';
  if (schedule !== 'uniform' && schedule !== 'non_uniform') {
    throw new PlanError(`schedule must be 'uniform' or 'non_uniform' (got ${describe(schedule)}).`, 'schedule');
  }
  const base = {
    cacheInterval,
    cacheBranchId,
    cacheBlockId: Math.floor(cacheBranchId / 3),
    cacheLayerId: cacheBranchId % 3,
    schedule,
  };

  let full: number[];
  let extra: Partial<DeepCacheSettings> = {};
  if (schedule === 'non_uniform') {
    if (options.centre === undefined) {
      throw new PlanError(
        'A non-uniform DeepCache schedule needs a centre step (the step full UNet steps crowd around); ' +
          `give centre between 0 and ${steps - 1}.`,
        'centre',
      );
    }
    const centre = requireWholeNumber('centre', options.centre, 0, 'the step full UNet steps crowd around');
    if (centre >= steps) {
      throw new PlanError(`centre (${centre}) must be a step of the schedule: 0..${steps - 1}.`, 'centre');
    }
    const power = options.power ?? 1.2;
    if (typeof power !== 'number' || !Number.isFinite(power) || power <= 1) {
      throw new PlanError(
        `power must be a number above 1 (got ${describe(power)}): it sets how strongly full steps crowd around the centre.`,
        'power',
      );
    }
    extra = { centre, power };
    if (cacheInterval === 1) {
      full = range(steps);
    } else {
      const count = Math.ceil(steps / cacheInterval);
      const found = quadCentreSchedule(steps, count, centre, power);
      if (!found) {
        throw new PlanError(
          `No non-uniform DeepCache schedule of ${count} full steps in ${steps} around centre ${centre}: no power ` +
            `from ${power} down to 1 spaces them apart. Move the centre away from the middle or change cacheInterval.`,
          'centre',
        );
      }
      full = [...new Set(found.steps)].sort((a, b) => a - b);
      extra.powerUsed = found.powerUsed;
      if (found.powerUsed !== power) {
        notes.push(`Non-uniform DeepCache: power lowered from ${power} to ${round(found.powerUsed)} to fit ${count} full steps.`);
      }
    }
  } else {
    full = [];
    for (let i = 0; i < steps; i += cacheInterval) full.push(i);
  }

  const effective = cacheInterval > 1 && full.length < steps;
  if (cacheInterval === 1) notes.push('DeepCache has no effect: cacheInterval 1 runs the full UNet at every step.');
  const fullSet = new Set(full);
  return {
    steps,
    notes,
    settings: {
      ...base,
      ...extra,
      fullSteps: full,
      shallowSteps: range(steps).filter((i) => !fullSet.has(i)),
      effective,
    },
  };
}

/** The DeepCache plan for `options.steps` steps. Throws PlanError for settings it cannot use. */
export function planDeepCache(options: DeepCacheOptions): ExecutionPlan {
  const { steps, settings, notes } = resolve(options);
  const lcm = options.lcm ?? false;
  const fullSet = new Set(settings.fullSteps);
  const plan: PlannedStep[] = range(steps).map((i) => {
    const full = fullSet.has(i);
    return {
      step: i,
      batch: lcm ? 'single' : 'cfg',
      ...(lcm ? { singleBranch: 'cond' as const } : {}),
      crossAttn: 'compute',
      selfAttn: 'compute',
      cacheMode: 'as_is',
      unet: full ? 'full' : 'shallow',
      deepCache: !settings.effective ? 'none' : full ? 'refresh' : 'reuse',
    };
  });
  return {
    kind: settings.effective ? 'deepcache' : 'plain',
    stepCount: steps,
    guidance: lcm ? 'none' : 'cfg',
    steps: plan,
    deepCache: settings,
    notes,
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
