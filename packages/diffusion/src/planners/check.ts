// What a plan asks of the caches the sampling loop keeps, checked by simulating them; and the pass that drops
// cache writes nobody reads (fewer captured outputs, same image).
//
// Cache model (what the loop implements): one cache per attention module. A step writes the caches of the
// modules that run in it (all of them on a full UNet step, only the shallow branch's on a shallow step) and a
// reuse step reads the caches of the modules that run in it. A cache holds batch 2 when written 'as_is' by a
// CFG step, batch 1 when written 'cfg_mean' or by a single step; a reuse step needs its own batch size there.
// So modules fall in two groups: 'shallow' (run on every step) and 'deep' (run on full steps only).

import { PlanError, type ExecutionPlan, type PlannedStep } from './types.ts';

type Kind = 'crossAttn' | 'selfAttn';
type Group = 'shallow' | 'deep';
interface Write {
  step: number;
  batch: 1 | 2;
}

function batchSize(s: PlannedStep): 1 | 2 {
  return s.batch === 'cfg' ? 2 : 1;
}

function groupsOf(s: PlannedStep): Group[] {
  return s.unet === 'full' ? ['shallow', 'deep'] : ['shallow'];
}

/** For every cache write (step, kind), whether some later step reads it. Throws PlanError on a bad read. */
function simulate(plan: ExecutionPlan): { readWrites: Set<string>; readRefreshes: Set<number> } {
  const readWrites = new Set<string>();
  const readRefreshes = new Set<number>();
  const last: Record<Kind, Partial<Record<Group, Write>>> = { crossAttn: {}, selfAttn: {} };
  let lastRefresh: Write | undefined;
  plan.steps.forEach((s, index) => {
    const where = `step ${s.step}`;
    if (s.step !== index) throw new PlanError(`Plan step ${index} is numbered ${s.step}.`);
    if ((s.batch === 'single') !== (s.singleBranch !== undefined)) {
      throw new PlanError(`${where}: singleBranch must be given exactly when the batch is single.`);
    }
    if (s.cacheMode === 'cfg_mean' && s.batch !== 'cfg') {
      throw new PlanError(`${where}: a cfg_mean cache needs the CFG batch to average.`);
    }
    // DeepCache: a shallow step reads the deep feature of the last refresh, at the same batch size.
    if (s.unet === 'shallow') {
      if (s.deepCache !== 'reuse') throw new PlanError(`${where}: a shallow UNet step must reuse the deep feature.`);
      if (!lastRefresh) throw new PlanError(`${where}: shallow step with no earlier full step to take the deep feature from.`);
      if (lastRefresh.batch !== batchSize(s)) {
        throw new PlanError(
          `${where}: the deep feature was captured at step ${lastRefresh.step} with batch ${lastRefresh.batch}, this step runs batch ${batchSize(s)}.`,
        );
      }
      readRefreshes.add(lastRefresh.step);
    } else if (s.deepCache === 'reuse') {
      throw new PlanError(`${where}: a full UNet step cannot reuse the deep feature.`);
    }
    for (const kind of ['crossAttn', 'selfAttn'] as const) {
      const mode = s[kind];
      if (mode === 'reuse') {
        for (const group of groupsOf(s)) {
          const w = last[kind][group];
          if (!w) {
            throw new PlanError(`${where}: ${kind} is reused but no earlier step cached it for the ${group} blocks.`);
          }
          if (w.batch !== batchSize(s)) {
            throw new PlanError(
              `${where}: ${kind} cached at step ${w.step} holds batch ${w.batch}, this step runs batch ${batchSize(s)}.`,
            );
          }
          readWrites.add(`${w.step}:${kind}`);
        }
      } else if (mode === 'compute_cache') {
        const batch = s.cacheMode === 'cfg_mean' ? 1 : batchSize(s);
        for (const group of groupsOf(s)) last[kind][group] = { step: s.step, batch };
      }
    }
    if (s.deepCache === 'refresh') lastRefresh = { step: s.step, batch: batchSize(s) };
  });
  return { readWrites, readRefreshes };
}

/**
 * Throws a PlanError unless every reuse in the plan reads a cache an earlier step wrote for the same modules
 * and batch size, and the step fields agree with each other. For plans built by hand or by other planners.
 */
export function checkPlan(plan: ExecutionPlan): void {
  if (plan.steps.length !== plan.stepCount) {
    throw new PlanError(`The plan lists ${plan.steps.length} steps but says it has ${plan.stepCount}.`);
  }
  simulate(plan);
}

/**
 * The same plan with cache writes nobody reads turned into plain computes ('compute_cache' -> 'compute',
 * 'refresh' -> 'none'). The image is unchanged; the loop captures fewer outputs. For example TGATE's default
 * fiInterval 1 caches self-attention on every step after the gate and never reads it back.
 */
export function pruneUnreadCaches(plan: ExecutionPlan): ExecutionPlan {
  const { readWrites, readRefreshes } = simulate(plan);
  const steps = plan.steps.map((s): PlannedStep => {
    const crossAttn = s.crossAttn === 'compute_cache' && !readWrites.has(`${s.step}:crossAttn`) ? 'compute' : s.crossAttn;
    const selfAttn = s.selfAttn === 'compute_cache' && !readWrites.has(`${s.step}:selfAttn`) ? 'compute' : s.selfAttn;
    const caches = crossAttn === 'compute_cache' || selfAttn === 'compute_cache';
    return {
      ...s,
      crossAttn,
      selfAttn,
      cacheMode: caches ? s.cacheMode : 'as_is',
      deepCache: s.deepCache === 'refresh' && !readRefreshes.has(s.step) ? 'none' : s.deepCache,
    };
  });
  return { ...plan, steps, notes: [...plan.notes] };
}
