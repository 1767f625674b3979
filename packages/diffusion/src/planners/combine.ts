// TGATE + DeepCache, as T-GATE's own combination (tgate/SDXL_DeepCache.py, SD_DeepCache.py): DeepCache's
// helper is reset (disable + enable) at the gate step and at the step after it, so both run the full UNet:
// the gate step must fill every cross-attention cache (deep blocks included), and after it the batch shrinks
// from 2 to 1, so a deep feature captured with the CFG batch cannot be reused. The helper counts its interval
// from the step it was last reset at, so after the gate the uniform schedule restarts: full at g-1, g, g+N,
// g+2N, ... (N = cacheInterval, g = gateStep). Its combination loader ships sp_interval 1, warm_up 0 (no
// self-attention reuse; TGATE_PRESETS['with-deepcache']); other TGATE settings are kept as given.

import { PlanError, type ExecutionPlan, type PlannedStep } from './types.ts';

export function combinePlans(tgate: ExecutionPlan, deepCache: ExecutionPlan): ExecutionPlan {
  const t = tgate.tgate;
  const d = deepCache.deepCache;
  if (!t) throw new PlanError('combinePlans: the first plan must come from planTgate (it has no TGATE settings).');
  if (!d) throw new PlanError('combinePlans: the second plan must come from planDeepCache (it has no DeepCache settings).');
  if (tgate.stepCount !== deepCache.stepCount) {
    throw new PlanError(
      `combinePlans: the TGATE plan has ${tgate.stepCount} steps and the DeepCache plan ${deepCache.stepCount}; ` +
        'plan both for the same number of steps.',
      'steps',
    );
  }
  if (tgate.guidance !== deepCache.guidance) {
    throw new PlanError(
      'combinePlans: one plan is for a guidance-free (LCM) model and the other is not; give both the same lcm setting.',
      'lcm',
    );
  }
  const notes = [...tgate.notes, ...deepCache.notes];
  const base = { stepCount: tgate.stepCount, guidance: tgate.guidance, tgate: t, deepCache: d };

  if (!t.effective) {
    notes.push('TGATE is off here, so the plan is DeepCache alone (no cache resets).');
    return { ...base, kind: deepCache.kind, steps: deepCache.steps.map((s) => ({ ...s })), notes };
  }
  if (!d.effective) {
    notes.push('DeepCache is off here, so the plan is TGATE alone.');
    return { ...base, kind: tgate.kind, steps: tgate.steps.map((s) => ({ ...s })), notes };
  }

  const g = t.gateStep;
  const full = new Set<number>();
  if (d.schedule === 'uniform') {
    for (let i = 0; i < tgate.stepCount; i++) {
      const sinceReset = i < g - 1 ? i : i === g - 1 ? 0 : i - g;
      if (sinceReset % d.cacheInterval === 0) full.add(i);
    }
  } else {
    for (const i of d.fullSteps) full.add(i);
    full.add(g - 1);
    full.add(g);
    notes.push(
      "T-GATE's combination uses DeepCache's uniform schedule; with this non-uniform one its full steps are kept " +
        `and the gate step ${g - 1} and step ${g} are made full.`,
    );
  }

  // Self-attention reuse on a full step needs caches for the deep blocks too, i.e. an earlier full step that
  // cached self-attention. TGATE's code falls back per module (computing without caching where a module has
  // no cache); a static graph keeps one cache set, so such a step computes and caches instead.
  const promoted: number[] = [];
  let fullSelfFill = false;
  const steps: PlannedStep[] = tgate.steps.map((s) => {
    const unet = full.has(s.step) ? 'full' : 'shallow';
    let selfAttn = s.selfAttn;
    if (selfAttn === 'reuse' && unet === 'full' && !fullSelfFill) {
      selfAttn = 'compute_cache';
      promoted.push(s.step);
    }
    if (selfAttn === 'compute_cache' && unet === 'full') fullSelfFill = true;
    return { ...s, selfAttn, unet, deepCache: unet === 'full' ? 'refresh' : 'reuse' };
  });

  if (steps.some((s) => s.selfAttn === 'reuse')) {
    notes.push(
      'Self-attention is reused alongside DeepCache; the official combination turns that off (spInterval 1, warmUp 0).',
    );
  }
  if (promoted.length > 0) {
    notes.push(
      `${promoted.length === 1 ? 'Step' : 'Steps'} ${promoted.join(', ')} ${promoted.length === 1 ? 'runs' : 'run'} ` +
        'the full UNet after no full step has cached self-attention, so self-attention is computed and cached ' +
        'there instead of reused.',
    );
  }
  return { ...base, kind: 'tgate+deepcache', steps, notes };
}
