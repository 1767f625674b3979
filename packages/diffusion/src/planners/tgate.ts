// TGATE step planner: the schedule of TGATE's v2 code (HaozheLiu-ST/T-GATE `tgate_scheduler` and the pipeline
// loops in tgate/SD.py, SDXL.py; paper v3), restated as data. Steps are counted from 0.
//
//   i <  gateStep - 1  semantics-planning: CFG batch; cross-attention computed;
//                      self-attention: i < warmUp compute, i == warmUp compute+cache,
//                      i % spInterval == 0 compute+cache, otherwise reuse
//   i == gateStep - 1  the gate step: last CFG step; cross- and self-attention computed and cached as the
//                      mean of the uncond and cond halves (as is for guidance-free models)
//   i >= gateStep      fidelity-improving: one pass, no guidance mix; cross-attention reused;
//                      self-attention compute+cache when i % fiInterval == 0, otherwise reuse
//
// One deliberate difference: a gate at or after the last step (gateStep >= steps) turns TGATE off entirely,
// so the run is the plain run byte for byte. The official code would still reuse self-attention in its
// semantics-planning phase there; we never do, so "gate past the end" is an exact no-op a user can rely on.

import { PlanError, type ExecutionPlan, type PlannedStep, type TgateSettings } from './types.ts';
import { describe, requireWholeNumber } from './validate.ts';

export interface TgateOptions {
  /** Number of denoising steps. */
  steps: number;
  /**
   * Number of steps that run with CFG and compute cross-attention (the official `gate_step`, default 10);
   * step `gateStep - 1` is the gate step, steps from `gateStep` on reuse the cache.
   * Give this or `gateFraction`, not both.
   */
  gateStep?: number;
  /** The gate as a fraction of the schedule, like ComfyUI_TGate's `start_at`; see `gateStepFromFraction`. */
  gateFraction?: number;
  /** Self-attention caching interval before the gate (`sp_interval`, default 5). */
  spInterval?: number;
  /** Self-attention caching interval after the gate (`fi_interval`, default 1 = recompute every step). */
  fiInterval?: number;
  /** Steps that always compute self-attention before the first cache (`warm_up`, default 2). */
  warmUp?: number;
  /** Guidance-free model (LCM): one pass everywhere, caches kept as is (default false). */
  lcm?: boolean;
  /** Conditioning of the single pass after the gate (default 'uncond', as the official code). */
  afterGateBranch?: 'uncond' | 'cond';
  /** Cache and reuse cross-attention (the `CacheCrossAttn` node; default true). */
  cacheCrossAttn?: boolean;
  /** Cache and reuse self-attention (the `CacheSelfAttn` node; default true, as TGATE v2). */
  cacheSelfAttn?: boolean;
}

/** Shipped settings per model family (T-GATE README / paper; DeepCache combo as in its SDXL_DeepCache loader). */
export const TGATE_PRESETS = {
  'sd1.5': { steps: 25, gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 },
  'sd2.1': { steps: 25, gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 },
  sdxl: { steps: 25, gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 },
  pixart: { steps: 25, gateStep: 15, spInterval: 3, fiInterval: 1, warmUp: 2 },
  lcm: { steps: 4, gateStep: 1, spInterval: 1, fiInterval: 1, warmUp: 0, lcm: true },
  'with-deepcache': { steps: 25, gateStep: 10, spInterval: 1, fiInterval: 1, warmUp: 0 },
} as const satisfies Record<string, TgateOptions>;

const FRACTION_EPSILON = 1e-9;

/**
 * The gate step for a fraction of the schedule: the first step whose start lies at or after `fraction` of the
 * steps reuses the cache, i.e. `gateStep = ceil(fraction * steps)` (with a 1e-9 tolerance so 0.4 * 25 is 10,
 * not 11), and at least 1. 1.0 gives `gateStep = steps`: TGATE off, as ComfyUI_TGate's default `start_at`.
 * Note ComfyUI_TGate compares the fraction on the model's sigma scale; we count steps, so the plan does not
 * depend on the scheduler (for evenly spaced schedules the two agree closely).
 */
export function gateStepFromFraction(fraction: number, steps: number): number {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction <= 0 || fraction > 1) {
    throw new PlanError(
      `gateFraction must be a number above 0 and at most 1 (got ${describe(fraction)}): it is the share of the ` +
        'schedule that runs before cross-attention is reused (1 turns TGATE off).',
      'gateFraction',
    );
  }
  return Math.max(1, Math.ceil(fraction * steps - FRACTION_EPSILON));
}

function resolveSettings(options: TgateOptions): { steps: number; settings: TgateSettings; notes: string[] } {
  const notes: string[] = [];
  const steps = requireWholeNumber('steps', options.steps, 1, 'the number of denoising steps');

  let gateStep: number;
  if (options.gateStep !== undefined && options.gateFraction !== undefined) {
    throw new PlanError(
      `Give the TGATE gate either as gateStep (${options.gateStep}) or as gateFraction (${options.gateFraction}), not both.`,
      'gateStep',
    );
  }
  if (options.gateFraction !== undefined) {
    gateStep = gateStepFromFraction(options.gateFraction, steps);
    notes.push(`gateFraction ${options.gateFraction} of ${steps} steps gives gate step ${gateStep} (ceil(fraction x steps)).`);
  } else {
    gateStep = requireWholeNumber(
      'gateStep',
      options.gateStep ?? 10,
      1,
      'it counts the steps that compute cross-attention before it is cached, and at least one step must fill the cache',
    );
  }
  const spInterval = requireWholeNumber(
    'spInterval',
    options.spInterval ?? 5,
    1,
    'self-attention is cached every spInterval steps before the gate (1 = recompute every step)',
  );
  const fiInterval = requireWholeNumber(
    'fiInterval',
    options.fiInterval ?? 1,
    1,
    'self-attention is cached every fiInterval steps after the gate (1 = recompute every step)',
  );
  const warmUp = requireWholeNumber(
    'warmUp',
    options.warmUp ?? 2,
    0,
    'the number of first steps that always compute self-attention',
  );
  const afterGateBranch = options.afterGateBranch ?? 'uncond';
  if (afterGateBranch !== 'uncond' && afterGateBranch !== 'cond') {
    throw new PlanError(
      `afterGateBranch must be 'uncond' (the negative text, as TGATE's code) or 'cond' (the prompt, as the ComfyUI port); got ${describe(afterGateBranch)}.`,
      'afterGateBranch',
    );
  }
  const lcm = options.lcm ?? false;
  const cacheCrossAttn = options.cacheCrossAttn ?? true;
  const cacheSelfAttn = options.cacheSelfAttn ?? true;

  let effective = true;
  if (!cacheCrossAttn && !cacheSelfAttn) {
    effective = false;
    notes.push('TGATE has no effect: both cross-attention and self-attention caching are off; every step runs plain.');
  } else if (gateStep >= steps) {
    effective = false;
    notes.push(
      `TGATE has no effect: the gate (gateStep ${gateStep}) is at or after the last step of ${steps}, so no step ` +
        'reuses cross-attention; every step runs plain. Lower gateStep (or gateFraction) to enable it.',
    );
  }
  if (effective && cacheSelfAttn && warmUp >= gateStep) {
    throw new PlanError(
      `warmUp (${warmUp}) is past the gate: with gateStep ${gateStep} the semantics-planning phase is steps ` +
        `0..${gateStep - 2}, so the warm-up can be at most ${gateStep - 1} steps. Lower warmUp, or raise gateStep.`,
      'warmUp',
    );
  }
  return {
    steps,
    notes,
    settings: { gateStep, spInterval, fiInterval, warmUp, lcm, afterGateBranch, cacheCrossAttn, cacheSelfAttn, effective },
  };
}

/** A plain step (no TGATE, no DeepCache). */
export function plainStep(step: number, lcm: boolean): PlannedStep {
  return {
    step,
    batch: lcm ? 'single' : 'cfg',
    ...(lcm ? { singleBranch: 'cond' as const } : {}),
    crossAttn: 'compute',
    selfAttn: 'compute',
    cacheMode: 'as_is',
    unet: 'full',
    deepCache: 'none',
  };
}

function tgateStep(i: number, s: TgateSettings): PlannedStep {
  const gateIndex = s.gateStep - 1;
  // The batch shrinks after the gate only when cross-attention is cached: the cached CFG mean is what stands
  // in for the text there. Caching self-attention alone keeps the guided batch.
  const shrinks = !s.lcm && s.cacheCrossAttn;
  const single = s.lcm || (shrinks && i > gateIndex);

  let crossAttn: PlannedStep['crossAttn'] = 'compute';
  if (s.cacheCrossAttn) crossAttn = i < gateIndex ? 'compute' : i === gateIndex ? 'compute_cache' : 'reuse';

  let selfAttn: PlannedStep['selfAttn'] = 'compute';
  if (s.cacheSelfAttn) {
    if (i < gateIndex) {
      if (i < s.warmUp) selfAttn = 'compute';
      else if (i === s.warmUp || i % s.spInterval === 0) selfAttn = 'compute_cache';
      else selfAttn = 'reuse';
    } else if (i === gateIndex) {
      selfAttn = 'compute_cache';
    } else {
      selfAttn = i % s.fiInterval === 0 ? 'compute_cache' : 'reuse';
    }
  }

  return {
    step: i,
    batch: single ? 'single' : 'cfg',
    ...(single ? { singleBranch: s.lcm ? ('cond' as const) : s.afterGateBranch } : {}),
    crossAttn,
    selfAttn,
    cacheMode: i === gateIndex && shrinks ? 'cfg_mean' : 'as_is',
    unet: 'full',
    deepCache: 'none',
  };
}

/** The TGATE plan for `options.steps` steps. Throws PlanError for settings it cannot use. */
export function planTgate(options: TgateOptions): ExecutionPlan {
  const { steps, settings, notes } = resolveSettings(options);
  const plan: PlannedStep[] = [];
  for (let i = 0; i < steps; i++) {
    plan.push(settings.effective ? tgateStep(i, settings) : plainStep(i, settings.lcm));
  }
  return {
    kind: settings.effective ? 'tgate' : 'plain',
    stepCount: steps,
    guidance: settings.lcm ? 'none' : 'cfg',
    steps: plan,
    tgate: settings,
    notes,
  };
}
