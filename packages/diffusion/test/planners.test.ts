import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  cfgBatchOf,
  checkPlan,
  combinePlans,
  deepCacheMaxBranchId,
  estimateRelativeCost,
  gateStepFromFraction,
  PlanError,
  planDeepCache,
  plainStep,
  planTgate,
  pruneUnreadCaches,
  renderPlan,
  summarizePlan,
  TGATE_PRESETS,
  type ExecutionPlan,
  type PlannedStep,
} from '../src/index.ts';

/** Full-step schedules computed with numpy by test/fixtures/make_deepcache_refs.py (DeepCache's formula). */
const deepCacheRefs = JSON.parse(readFileSync(new URL('./fixtures/deepcache_refs.json', import.meta.url), 'utf8')) as {
  cases: { steps: number; interval: number; centre: number; power: number; full: number[] | null; power_used: number | null }[];
};

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const stepsWhere = (plan: ExecutionPlan, pred: (s: PlannedStep) => boolean): number[] =>
  plan.steps.filter(pred).map((s) => s.step);

/** Node's assert.ok without a message re-parses the (transpiled) source to build one: slow; always pass one. */
function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual}, expected ${expected}`);
}

function assertPlanError(fn: () => unknown, setting: string | undefined, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PlanError, `expected a PlanError, got ${String(err)}`);
    assert.equal(err.setting, setting);
    assert.match(err.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------- TGATE

test('TGATE, SDXL defaults (25 steps, gate 10, sp 5, warm 2): the reference worked schedule', () => {
  const plan = planTgate({ steps: 25, gateStep: 10 });
  assert.equal(plan.kind, 'tgate');
  assert.equal(plan.steps.length, 25);
  assert.deepEqual(stepsWhere(plan, (s) => s.selfAttn === 'reuse'), [3, 4, 6, 7, 8]);
  assert.deepEqual(stepsWhere(plan, (s) => s.selfAttn === 'compute'), [0, 1]);
  assert.deepEqual(stepsWhere(plan, (s) => s.selfAttn === 'compute_cache'), [2, 5, ...range(9, 25)]);
  assert.deepEqual(stepsWhere(plan, (s) => s.crossAttn === 'reuse'), range(10, 25));
  assert.deepEqual(stepsWhere(plan, (s) => s.crossAttn === 'compute_cache'), [9]);
  assert.deepEqual(stepsWhere(plan, (s) => s.batch === 'single'), range(10, 25));
  assert.deepEqual(stepsWhere(plan, (s) => s.cacheMode === 'cfg_mean'), [9]);
  const gate = plan.steps[9]!;
  assert.deepEqual(gate, {
    step: 9,
    batch: 'cfg',
    crossAttn: 'compute_cache',
    selfAttn: 'compute_cache',
    cacheMode: 'cfg_mean',
    unet: 'full',
    deepCache: 'none',
  });
  // After the gate: one pass with the negative text, as the official code.
  for (const s of plan.steps.slice(10)) {
    assert.equal(s.singleBranch, 'uncond');
    assert.equal(cfgBatchOf(s), 'uncond');
  }
  for (const s of plan.steps.slice(0, 10)) assert.equal(s.singleBranch, undefined);
  assert.deepEqual(plan.notes, []);
  checkPlan(plan);
});

test('TGATE fiInterval 2: after the gate self-attention is cached on even steps and reused on odd ones', () => {
  const plan = planTgate({ steps: 20, gateStep: 9, fiInterval: 2 });
  const after = plan.steps.slice(9);
  assert.deepEqual(
    after.map((s) => s.selfAttn),
    range(9, 20).map((i) => (i % 2 === 0 ? 'compute_cache' : 'reuse')),
  );
  // Step 9 reuses the gate step's (8) CFG-mean cache, which has the single batch it runs with.
  assert.equal(plan.steps[8]!.cacheMode, 'cfg_mean');
  checkPlan(plan);
});

test('TGATE lcm: one pass with the prompt on every step, caches kept as they are', () => {
  const plan = planTgate({ ...TGATE_PRESETS.lcm, gateStep: 2 });
  assert.equal(plan.guidance, 'none');
  assert.deepEqual(plan.steps.map(cfgBatchOf), ['cond', 'cond', 'cond', 'cond']);
  assert.deepEqual(plan.steps.map((s) => s.cacheMode), ['as_is', 'as_is', 'as_is', 'as_is']);
  assert.deepEqual(
    plan.steps.map((s) => s.crossAttn),
    ['compute', 'compute_cache', 'reuse', 'reuse'],
  );
  checkPlan(plan);
});

test('TGATE: a gate at or past the last step is the plain run, with a note', () => {
  for (const gateStep of [25, 26, 100]) {
    const plan = planTgate({ steps: 25, gateStep });
    assert.equal(plan.kind, 'plain');
    assert.equal(plan.tgate?.effective, false);
    assert.deepEqual(plan.steps, range(0, 25).map((i) => plainStep(i, false)));
    assert.match(plan.notes.join('\n'), /TGATE has no effect/);
  }
  // One step before the end still gates: the gate step is 23, step 24 reuses.
  const last = planTgate({ steps: 25, gateStep: 24 });
  assert.equal(last.kind, 'tgate');
  assert.deepEqual(stepsWhere(last, (s) => s.crossAttn === 'reuse'), [24]);
  // Guidance-free plain steps stay single.
  assert.deepEqual(planTgate({ steps: 4, gateStep: 4, lcm: true }).steps.map(cfgBatchOf), ['cond', 'cond', 'cond', 'cond']);
});

test('TGATE afterGateBranch cond: the single pass gets the prompt (ComfyUI port)', () => {
  const plan = planTgate({ steps: 12, gateStep: 5, afterGateBranch: 'cond' });
  assert.deepEqual(
    plan.steps.map(cfgBatchOf),
    [...Array(5).fill('cfg'), ...Array(7).fill('cond')],
  );
});

test('TGATE cache flags: CacheCrossAttn and CacheSelfAttn compose on one gate schedule', () => {
  const both = planTgate({ steps: 25, gateStep: 10 });
  const crossOnly = planTgate({ steps: 25, gateStep: 10, cacheSelfAttn: false });
  assert.deepEqual(stepsWhere(crossOnly, (s) => s.selfAttn !== 'compute'), []);
  assert.deepEqual(crossOnly.steps.map((s) => [s.batch, s.crossAttn, s.cacheMode]), both.steps.map((s) => [s.batch, s.crossAttn, s.cacheMode]));
  // Warm-up is irrelevant without self-attention caching.
  assert.doesNotThrow(() => planTgate({ steps: 25, gateStep: 3, warmUp: 5, cacheSelfAttn: false }));

  const selfOnly = planTgate({ steps: 25, gateStep: 10, cacheCrossAttn: false });
  assert.deepEqual(stepsWhere(selfOnly, (s) => s.crossAttn !== 'compute' || s.batch !== 'cfg' || s.cacheMode !== 'as_is'), []);
  assert.deepEqual(selfOnly.steps.map((s) => s.selfAttn), both.steps.map((s) => s.selfAttn));
  checkPlan(selfOnly);

  const neither = planTgate({ steps: 25, gateStep: 10, cacheCrossAttn: false, cacheSelfAttn: false });
  assert.equal(neither.kind, 'plain');
  assert.match(neither.notes.join(), /both cross-attention and self-attention caching are off/);
});

test('TGATE gate as a fraction of the schedule: ceil(fraction x steps), at least 1', () => {
  assert.equal(gateStepFromFraction(0.4, 25), 10);
  assert.equal(gateStepFromFraction(0.35, 20), 7);
  assert.equal(gateStepFromFraction(0.41, 25), 11);
  assert.equal(gateStepFromFraction(0.01, 25), 1);
  assert.equal(gateStepFromFraction(1, 25), 25);
  const plan = planTgate({ steps: 25, gateFraction: 0.4 });
  assert.equal(plan.tgate?.gateStep, 10);
  assert.match(plan.notes.join(), /gateFraction 0.4 of 25 steps gives gate step 10/);
  assert.equal(planTgate({ steps: 25, gateFraction: 1 }).kind, 'plain');
  assertPlanError(() => planTgate({ steps: 25, gateFraction: 0 }), 'gateFraction', /above 0 and at most 1/);
  assertPlanError(() => planTgate({ steps: 25, gateFraction: 1.5 }), 'gateFraction', /got 1.5/);
  assertPlanError(() => planTgate({ steps: 25, gateStep: 10, gateFraction: 0.4 }), 'gateStep', /not both/);
});

test('TGATE settings it cannot use are PlanErrors that say what to do', () => {
  assertPlanError(() => planTgate({ steps: 0 }), 'steps', /steps must be at least 1 \(got 0\)/);
  assertPlanError(() => planTgate({ steps: 2.5 }), 'steps', /whole number \(got 2.5\)/);
  assertPlanError(() => planTgate({ steps: 25, gateStep: 0 }), 'gateStep', /at least 1 \(got 0\).*fill the cache/);
  assertPlanError(() => planTgate({ steps: 25, spInterval: 0 }), 'spInterval', /at least 1 \(got 0\)/);
  assertPlanError(() => planTgate({ steps: 25, fiInterval: -2 }), 'fiInterval', /at least 1 \(got -2\)/);
  assertPlanError(() => planTgate({ steps: 25, warmUp: -1 }), 'warmUp', /at least 0/);
  assertPlanError(() => planTgate({ steps: 25, gateStep: 10, warmUp: 10 }), 'warmUp', /past the gate.*at most 9/);
  assert.doesNotThrow(() => planTgate({ steps: 25, gateStep: 10, warmUp: 9 }));
  assertPlanError(
    () => planTgate({ steps: 25, afterGateBranch: 'negative' as 'uncond' }),
    'afterGateBranch',
    /'uncond'.*'cond'/,
  );
});

// ---------------------------------------------------------------- DeepCache

test('DeepCache uniform interval 3: full UNet at 0, 3, 6, ..., shallow in between', () => {
  const plan = planDeepCache({ steps: 25, cacheInterval: 3 });
  assert.equal(plan.kind, 'deepcache');
  const full = range(0, 25).filter((i) => i % 3 === 0);
  assert.deepEqual(plan.deepCache?.fullSteps, full);
  assert.deepEqual(stepsWhere(plan, (s) => s.unet === 'full'), full);
  assert.deepEqual(stepsWhere(plan, (s) => s.deepCache === 'refresh'), full);
  assert.deepEqual(stepsWhere(plan, (s) => s.deepCache === 'reuse'), plan.deepCache?.shallowSteps);
  assert.deepEqual(stepsWhere(plan, (s) => s.batch !== 'cfg' || s.crossAttn !== 'compute' || s.selfAttn !== 'compute'), []);
  assert.equal(plan.deepCache?.cacheBlockId, 0);
  assert.equal(plan.deepCache?.cacheLayerId, 0);
  checkPlan(plan);
});

test('DeepCache branch id k caches block k // 3, layer k % 3, within the model', () => {
  const plan = planDeepCache({ steps: 10, cacheBranchId: 5, maxBranchId: deepCacheMaxBranchId(3) });
  assert.equal(plan.deepCache?.cacheBlockId, 1);
  assert.equal(plan.deepCache?.cacheLayerId, 2);
  assert.equal(deepCacheMaxBranchId(4), 11); // SD 1.5 / 2.1
  assert.equal(deepCacheMaxBranchId(3), 8); // SDXL
  assertPlanError(
    () => planDeepCache({ steps: 10, cacheBranchId: 9, maxBranchId: 8 }),
    'cacheBranchId',
    /cacheBranchId 9 is out of range for this model: its UNet has branches 0\.\.8/,
  );
  assertPlanError(() => planDeepCache({ steps: 10, cacheBranchId: -1 }), 'cacheBranchId', /at least 0/);
});

test('DeepCache non-uniform: the full steps of DeepCache\'s quadratic schedule (numpy reference)', () => {
  let solvable = 0;
  for (const c of deepCacheRefs.cases) {
    const options = { steps: c.steps, cacheInterval: c.interval, schedule: 'non_uniform', centre: c.centre, power: c.power } as const;
    const what = `steps ${c.steps} interval ${c.interval} centre ${c.centre} power ${c.power}`;
    if (c.full === null) {
      assertPlanError(() => planDeepCache(options), 'centre', /No non-uniform DeepCache schedule/);
      continue;
    }
    solvable++;
    const plan = planDeepCache(options);
    assert.deepEqual(plan.deepCache?.fullSteps, c.full, what);
    assert.equal(plan.deepCache?.powerUsed, c.power_used, what);
    assert.equal(plan.deepCache?.fullSteps.length, Math.ceil(c.steps / c.interval), what);
    assert.deepEqual(stepsWhere(plan, (s) => s.unet === 'full'), c.full, what);
    checkPlan(plan);
  }
  assert.ok(solvable > 100, 'the fixture should mostly hold solvable cases');
  // One case worked by hand from the formula: 50 steps, interval 5 -> 10 full steps around step 15.
  assert.deepEqual(
    planDeepCache({ steps: 50, cacheInterval: 5, schedule: 'non_uniform', centre: 15 }).deepCache?.fullSteps,
    [0, 5, 10, 14, 18, 22, 27, 32, 38, 44],
  );
});

test('DeepCache settings: interval 1 is a no-op with a note; bad values are PlanErrors', () => {
  const off = planDeepCache({ steps: 8, cacheInterval: 1 });
  assert.equal(off.kind, 'plain');
  assert.deepEqual(stepsWhere(off, (s) => s.unet !== 'full' || s.deepCache !== 'none'), []);
  assert.match(off.notes.join(), /DeepCache has no effect: cacheInterval 1/);
  assertPlanError(() => planDeepCache({ steps: 8, cacheInterval: 0 }), 'cacheInterval', /at least 1 \(got 0\)/);
  assertPlanError(() => planDeepCache({ steps: 0 }), 'steps', /at least 1/);
  assertPlanError(() => planDeepCache({ steps: 8, schedule: 'non_uniform' }), 'centre', /needs a centre step/);
  assertPlanError(() => planDeepCache({ steps: 8, schedule: 'non_uniform', centre: 8 }), 'centre', /0\.\.7/);
  assertPlanError(() => planDeepCache({ steps: 8, schedule: 'non_uniform', centre: 3, power: 1 }), 'power', /above 1/);
  assertPlanError(() => planDeepCache({ steps: 8, schedule: 'sparse' as 'uniform' }), 'schedule', /'uniform' or 'non_uniform'/);
});

// ---------------------------------------------------------------- TGATE + DeepCache

test('TGATE + DeepCache (official combo): cache reset at the gate step and the one after, interval restarts', () => {
  const tgate = planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 25, gateStep: 10 });
  const deep = planDeepCache({ steps: 25, cacheInterval: 3 });
  const plan = combinePlans(tgate, deep);
  assert.equal(plan.kind, 'tgate+deepcache');
  assert.deepEqual(stepsWhere(plan, (s) => s.unet === 'full'), [0, 3, 6, 9, 10, 13, 16, 19, 22]);
  // The TGATE side is unchanged; self-attention is never reused (sp 1, warm 0).
  assert.deepEqual(plan.steps.map((s) => [s.batch, s.crossAttn, s.selfAttn, s.cacheMode]), tgate.steps.map((s) => [s.batch, s.crossAttn, s.selfAttn, s.cacheMode]));
  assert.equal(stepsWhere(plan, (s) => s.selfAttn === 'reuse').length, 0);
  checkPlan(plan);

  // A gate step that is not on the interval: reset makes 7 and 8 full, then 11, 14, ...
  const off = combinePlans(planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 20, gateStep: 8 }), planDeepCache({ steps: 20 }));
  assert.deepEqual(stepsWhere(off, (s) => s.unet === 'full'), [0, 3, 6, 7, 8, 11, 14, 17]);
  checkPlan(off);
});

test('TGATE + DeepCache: either side off leaves the other alone; mismatched plans are PlanErrors', () => {
  const deep = planDeepCache({ steps: 25 });
  const noGate = combinePlans(planTgate({ steps: 25, gateStep: 25 }), deep);
  assert.deepEqual(noGate.steps, deep.steps);
  assert.match(noGate.notes.join('\n'), /TGATE is off here/);
  const tgate = planTgate({ steps: 25 });
  const noDeep = combinePlans(tgate, planDeepCache({ steps: 25, cacheInterval: 1 }));
  assert.deepEqual(noDeep.steps, tgate.steps);
  assertPlanError(() => combinePlans(planTgate({ steps: 20 }), deep), 'steps', /20 steps and the DeepCache plan 25/);
  assertPlanError(() => combinePlans(planTgate({ steps: 25, lcm: true, gateStep: 2, warmUp: 0 }), deep), 'lcm', /guidance-free/);
  assertPlanError(() => combinePlans(deep, deep), undefined, /first plan must come from planTgate/);
});

test('TGATE + DeepCache non-uniform: its full steps plus the gate step and the one after', () => {
  const deep = planDeepCache({ steps: 25, cacheInterval: 3, schedule: 'non_uniform', centre: 12 });
  const plan = combinePlans(planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 25, gateStep: 8 }), deep);
  const expected = [...new Set([...(deep.deepCache?.fullSteps ?? []), 7, 8])].sort((a, b) => a - b);
  assert.deepEqual(stepsWhere(plan, (s) => s.unet === 'full'), expected);
  checkPlan(plan);
});

test('TGATE + DeepCache with self-attention reuse: a full step without a full self-attention cache computes it', () => {
  const plan = combinePlans(planTgate({ steps: 25, gateStep: 10 }), planDeepCache({ steps: 25 }));
  // Step 2 (warm-up cache) is shallow, so step 3 (full) has no deep-block cache to reuse.
  assert.equal(plan.steps[2]!.unet, 'shallow');
  assert.equal(plan.steps[3]!.selfAttn, 'compute_cache');
  assert.equal(plan.steps[4]!.selfAttn, 'reuse');
  assert.match(plan.notes.join('\n'), /Step 3 runs the full UNet/);
  assert.match(plan.notes.join('\n'), /official combination turns that off/);
  checkPlan(plan);
});

// ---------------------------------------------------------------- consistency over many settings

test('every plan the planners make passes checkPlan, before and after pruning unread caches', () => {
  let count = 0;
  for (const steps of [1, 2, 3, 4, 7, 10, 25, 30]) {
    for (const gateStep of [1, 2, 3, 5, 10, 29]) {
      for (const [spInterval, warmUp] of [[5, 2], [1, 0], [3, 0], [2, 1]] as const) {
        for (const fiInterval of [1, 2, 3]) {
          for (const lcm of [false, true]) {
            if (warmUp >= gateStep && gateStep < steps) continue; // a PlanError, tested above
            const tgate = planTgate({ steps, gateStep, spInterval, fiInterval, warmUp, lcm });
            for (const cacheInterval of [1, 2, 3, 5]) {
              const deep = planDeepCache({ steps, cacheInterval, lcm });
              for (const plan of [tgate, deep, combinePlans(tgate, deep)]) {
                checkPlan(plan);
                const pruned = pruneUnreadCaches(plan);
                checkPlan(pruned);
                assert.deepEqual(
                  pruned.steps.map((s) => [s.batch, s.singleBranch, s.unet]),
                  plan.steps.map((s) => [s.batch, s.singleBranch, s.unet]),
                );
                count++;
              }
            }
          }
        }
      }
    }
  }
  assert.ok(count > 10000, `only ${count} plans checked`);
});

test('checkPlan rejects a plan that reuses what nobody cached, or at the wrong batch', () => {
  const plan = planTgate({ steps: 12, gateStep: 5, cacheSelfAttn: false });
  const noCache: ExecutionPlan = {
    ...plan,
    steps: plan.steps.map((s) => (s.step === 4 ? { ...s, crossAttn: 'compute' } : s)),
  };
  assertPlanError(() => checkPlan(noCache), undefined, /step 5: crossAttn is reused but no earlier step cached it/);
  const wrongBatch: ExecutionPlan = {
    ...plan,
    steps: plan.steps.map((s) => (s.step === 4 ? { ...s, cacheMode: 'as_is' } : s)),
  };
  assertPlanError(() => checkPlan(wrongBatch), undefined, /cached at step 4 holds batch 2, this step runs batch 1/);
  const shallowFirst = planDeepCache({ steps: 6 });
  const broken: ExecutionPlan = { ...shallowFirst, steps: shallowFirst.steps.map((s) => (s.step === 0 ? { ...s, unet: 'shallow', deepCache: 'reuse' } : s)) };
  assertPlanError(() => checkPlan(broken), undefined, /step 0: shallow step with no earlier full step/);
});

test('pruneUnreadCaches drops the cache writes no later step reads', () => {
  const pruned = pruneUnreadCaches(planTgate({ steps: 25, gateStep: 10 }));
  // fiInterval 1 never reuses self-attention after the gate: those writes, and the gate's, go.
  assert.deepEqual(stepsWhere(pruned, (s) => s.selfAttn === 'compute_cache'), [2, 5]);
  assert.deepEqual(stepsWhere(pruned, (s) => s.selfAttn === 'reuse'), [3, 4, 6, 7, 8]);
  // The gate still caches cross-attention as the CFG mean.
  assert.equal(pruned.steps[9]!.crossAttn, 'compute_cache');
  assert.equal(pruned.steps[9]!.cacheMode, 'cfg_mean');
  // DeepCache: a capture followed by another full step (the combo's gate step) or by nothing is dropped.
  const combo = pruneUnreadCaches(
    combinePlans(planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 25, gateStep: 10 }), planDeepCache({ steps: 25 })),
  );
  assert.deepEqual(stepsWhere(combo, (s) => s.deepCache === 'refresh'), [0, 3, 6, 10, 13, 16, 19, 22]);
  assert.equal(combo.steps[9]!.deepCache, 'none');
  assert.equal(pruneUnreadCaches(planDeepCache({ steps: 25 })).steps[24]!.deepCache, 'none');
});

// ---------------------------------------------------------------- rendering, summary, cost

test('renderPlan draws one column per step; summarizePlan counts them', () => {
  const plan = planTgate({ steps: 4, gateStep: 2, lcm: true, spInterval: 1, warmUp: 0 });
  assert.equal(
    renderPlan(plan, { legend: false }),
    [
      'tgate plan, 4 steps',
      'step   0 1 2 3',
      'batch  P P P P',
      'cross  . K R R',
      'self   K K K K',
      'unet   F F F F',
      'deep   . . . .',
    ].join('\n'),
  );
  const sdxl = renderPlan(planTgate({ steps: 25, gateStep: 10 }));
  assert.match(sdxl, /^self {4}\. {2}\. {2}K {2}R {2}R {2}K {2}R {2}R {2}R {2}M {2}K/m);
  assert.match(sdxl, /^batch {3}C( {2}C){9}( {2}N){15}$/m);
  assert.match(sdxl, /M=compute\+cache the CFG mean/);

  const combo = combinePlans(planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 25, gateStep: 10 }), planDeepCache({ steps: 25 }));
  const summary = summarizePlan(combo);
  assert.deepEqual(
    { ...summary, timeline: undefined, notes: undefined },
    {
      kind: 'tgate+deepcache',
      steps: 25,
      guidance: 'cfg',
      gateStepIndex: 9,
      cfgSteps: 10,
      singleSteps: 15,
      fullSteps: 9,
      shallowSteps: 16,
      crossReuseSteps: 15,
      crossCacheSteps: 1,
      selfReuseSteps: 0,
      selfCacheSteps: 25,
      deepCacheRefreshSteps: 9,
      timeline: undefined,
      notes: undefined,
    },
  );
  assert.deepEqual(summary.timeline.single, range(10, 25));
  assert.deepEqual(JSON.parse(JSON.stringify(summary)), summary);
  assert.equal(summarizePlan(planTgate({ steps: 25, gateStep: 30 })).gateStepIndex, null);
});

test('estimateRelativeCost weighs each step by batch, UNet part and reused attention', () => {
  const weights = { crossAttn: 0.1, selfAttn: 0.2, shallow: 0.3 };
  // SP: 5 self-reuse steps at 2 x 0.8, 4 plain CFG steps at 2, gate at 2; FI: 15 single steps at 0.9.
  const tgate = estimateRelativeCost(planTgate({ steps: 25, gateStep: 10 }), weights);
  assert.equal(tgate.plain, 50);
  close(tgate.relative, (5 * 1.6 + 5 * 2 + 15 * 0.9) / 50, 'TGATE relative cost');
  close(tgate.speedup, 1 / tgate.relative, 'TGATE speedup');
  // DeepCache alone: 9 full CFG steps, 16 shallow CFG steps.
  const deep = estimateRelativeCost(planDeepCache({ steps: 25 }), weights);
  close(deep.relative, (9 * 2 + 16 * 2 * 0.3) / 50, 'DeepCache relative cost');
  // Combo: before the gate 10 CFG steps (4 full incl. the gate, 6 shallow); after it 15 single steps with
  // cross-attention reused (5 full at 1 - 0.1, 10 shallow at 0.3 - 0.1 x 0.3).
  const combo = estimateRelativeCost(
    combinePlans(planTgate({ ...TGATE_PRESETS['with-deepcache'], steps: 25, gateStep: 10 }), planDeepCache({ steps: 25 })),
    weights,
  );
  close(combo.relative, (4 * 2 + 6 * 2 * 0.3 + 5 * 0.9 + 10 * 0.27) / 50, 'combined relative cost');
  assert.ok(combo.relative < deep.relative && deep.relative < tgate.relative, 'combined < DeepCache < TGATE');
  // Guidance-free plain run costs one pass a step.
  assert.equal(estimateRelativeCost(planTgate({ steps: 4, gateStep: 9, lcm: true }), weights).relative, 1);
  assertPlanError(() => estimateRelativeCost(planDeepCache({ steps: 25 }), { crossAttn: 0.1, selfAttn: 0.2 }), 'shallow', /shallow branch share/);
  assertPlanError(() => estimateRelativeCost(planTgate({ steps: 25 }), { crossAttn: 1.2, selfAttn: 0 }), 'crossAttn', /between 0 and 1/);
  assertPlanError(() => estimateRelativeCost(planTgate({ steps: 25 }), { crossAttn: 0.6, selfAttn: 0.6 }), undefined, /more than the whole UNet/);
});
