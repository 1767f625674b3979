/**
 * The adapter from an ExecutionPlan (planners/: one PlannedStep per step) to the sampling loop's StepPlanner,
 * over the variants of cached-unet.ts. It holds the caches:
 *
 * - attention: one tensor per module output (`attn2` / `attn1`), written on `compute_cache` steps (as is, or
 *   the mean of the [uncond, cond] halves for `cfg_mean`, the TGATE gate step) and fed as `cached::<output>`
 *   with the kind's switch off on `reuse` steps. On compute steps the switch is on and the cached inputs get a
 *   small dummy (the If graph declares them; ORT never reads an untaken branch), except that a full step
 *   computing every module runs the layout's compute-all graph when it has one (no switches, no dummies);
 * - DeepCache: the deep feature captured on `refresh` steps and fed to the shallow variant on `reuse` steps.
 *
 * A cache that is missing, or whose batch differs from the step's, is an error naming the step and module:
 * checkPlan() rules that out for planner output, and the check here makes a wrong image impossible even for a
 * hand-written plan.
 */
import * as ort from 'onnxruntime-node';
import { checkPlan, pruneUnreadCaches } from './planners/check.ts';
import { cfgBatchOf, type ExecutionPlan, type PlannedStep } from './planners/types.ts';
import type { CachedUnetNeeds, CacheLayout, VariantLayout } from './cached-unet.ts';
import type { CallPlanner, StepContext, StepOutcome, StepPlan, StepPlanner } from './sampling.ts';
import type { FeedValue } from './sessions.ts';
import { meanOfHalves, type Tensor } from './tensor.ts';

/** What the variants must provide for `plan` (prepareCachedUnet's argument). */
export function cacheNeedsOf(plan: ExecutionPlan): CachedUnetNeeds {
  const steps = plan.steps;
  return {
    attn2: steps.some((s) => s.crossAttn === 'reuse'),
    attn1: steps.some((s) => s.selfAttn === 'reuse'),
    ...(steps.some((s) => s.unet === 'shallow') && plan.deepCache ? { deepBranch: plan.deepCache.cacheBranchId } : {}),
  };
}

/** True when no step reuses anything (a gate past the end, DeepCache interval 1...): no derived graph is needed. */
export function isPlainPlan(plan: ExecutionPlan): boolean {
  const n = cacheNeedsOf(plan);
  return !n.attn1 && !n.attn2 && n.deepBranch === undefined;
}

const bool = (v: boolean) => new ort.Tensor('bool', [v], []);

/**
 * The StepPlanner running `plan` on `layout` (null for a plan of plain steps: it then runs the runner's
 * 'full' variant with the loop's default batch, exactly what sample() does without a planner).
 */
export function planStepper(plan: ExecutionPlan, layout: CacheLayout | null): StepPlanner {
  checkPlan(plan);
  const lean = pruneUnreadCaches(plan);
  const attention = new Map<string, Tensor>();
  let deep: Tensor | undefined;
  const dummies = new Map<string, ort.Tensor>();
  const dummyFor = (name: string, dims: Array<number | string>) => {
    let d = dummies.get(name);
    if (!d) {
      const shape = dims.map((x) => (typeof x === 'number' ? x : 1));
      d = new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
      dummies.set(name, d);
    }
    return d;
  };
  const stepOf = (i: number): PlannedStep => {
    const s = lean.steps[i];
    if (!s) throw new Error(`The TGATE/DeepCache plan has ${lean.stepCount} steps, but the sampler runs step ${i + 1}: plan for the scheduler's step count`);
    return s;
  };
  const rowsOf = (batch: StepPlan['batch'], ctx: StepContext) => (batch === 'cfg' ? 2 : 1) * ctx.batchSize;
  const where = (i: number, total: number) => `Sampling step ${i + 1} of ${total}`;

  /**
   * The variant, switches, cached inputs and captures of planned step `s` for a call of `rows` rows, from the
   * caches given. `fallback`: when a cache the step reuses is missing, compute instead (a call group that was
   * not there when the caches were filled) rather than fail.
   */
  const callFeeds = (
    s: PlannedStep,
    rows: number,
    caches: { attention: Map<string, Tensor>; deep?: Tensor },
    at: string,
    fallback: boolean,
  ): { variant: VariantLayout; extraInputs: Record<string, FeedValue>; captureOutputs: string[] } => {
    const l = layout!;
    const missing = (kind: 'attn1' | 'attn2') => l.full.gates.some((g) => g.kind === kind && caches.attention.get(g.output)?.shape[0] !== rows);
    let crossAttn = s.crossAttn;
    let selfAttn = s.selfAttn;
    let unet = s.unet;
    if (fallback) {
      if (crossAttn === 'reuse' && missing('attn2')) crossAttn = 'compute';
      if (selfAttn === 'reuse' && missing('attn1')) selfAttn = 'compute';
      if (unet === 'shallow' && caches.deep?.shape[0] !== rows) unet = 'full';
    }
    // A full step that computes every module runs on the If-free graph when there is one.
    const computesAll = crossAttn !== 'reuse' && selfAttn !== 'reuse';
    const variant: VariantLayout | undefined = unet === 'shallow' ? l.shallow : computesAll && l.computeAll ? l.computeAll : l.full;
    if (!variant) throw new Error(`${at}: the plan runs DeepCache's shallow branch, but no shallow UNet variant was prepared`);
    const extraInputs: Record<string, FeedValue> = {};
    const captureOutputs: string[] = [];
    for (const kind of ['attn2', 'attn1'] as const) {
      const mode = kind === 'attn2' ? crossAttn : selfAttn;
      const condition = variant.conditions[kind];
      if (mode === 'reuse' && !condition) {
        // A shallow variant whose branch holds no module of this kind has no switch for it: nothing to feed.
        if (!l.full.conditions[kind]) {
          throw new Error(`${at}: the plan reuses ${kind}, but UNet variant "${variant.key}" cannot take cached ${kind} outputs`);
        }
        continue;
      }
      // The compute-all variant has no switches: its modules always run and it takes no cached inputs.
      if (condition) extraInputs[condition] = bool(mode !== 'reuse');
      for (const gate of variant.gates.filter((g) => g.kind === kind)) {
        if (mode === 'reuse') {
          const cached = caches.attention.get(gate.output);
          if (!cached) throw new Error(`${at}: ${kind} output "${gate.output}" is reused but no earlier step cached it`);
          if (cached.shape[0] !== rows) {
            throw new Error(`${at}: the cached ${kind} output "${gate.output}" has ${cached.shape[0]} rows but this call runs ${rows}`);
          }
          extraInputs[gate.cachedInput] = cached;
        } else {
          if (condition) extraInputs[gate.cachedInput] = dummyFor(gate.cachedInput, gate.dims);
          if (mode === 'compute_cache') captureOutputs.push(gate.output);
        }
      }
    }
    if (unet === 'shallow') {
      if (!caches.deep || !variant.deepFeature) throw new Error(`${at}: a shallow DeepCache step, but no earlier full step kept the deep feature`);
      if (caches.deep.shape[0] !== rows) throw new Error(`${at}: the cached deep feature has ${caches.deep.shape[0]} rows but this call runs ${rows}`);
      extraInputs[variant.deepFeature] = caches.deep;
    } else if (s.deepCache === 'refresh' && variant.deepFeature) {
      captureOutputs.push(variant.deepFeature);
    }
    return { variant, extraInputs, captureOutputs };
  };

  return {
    callPlanner(key: string): CallPlanner {
      const caches: { attention: Map<string, Tensor>; deep?: Tensor } = { attention: new Map() };
      return {
        planCall(i, rows, total) {
          const s = stepOf(i);
          if (layout === null) return { variant: 'full', extraInputs: {}, captureOutputs: [] };
          const { variant, extraInputs, captureOutputs } = callFeeds(s, rows, caches, `${where(i, total)} (conditioning call ${key})`, true);
          return { variant: variant.key, extraInputs, captureOutputs };
        },
        afterCall(i, outputs) {
          if (layout === null) return;
          const s = stepOf(i);
          for (const [name, tensor] of Object.entries(outputs)) {
            // Every row keeps its own cache: the mean of the CFG halves is the single-branch pass's, which
            // calls with several conditionings do not take.
            if (name === layout.full.deepFeature) {
              if (s.unet === 'full') caches.deep = tensor;
            } else caches.attention.set(name, tensor);
          }
        },
      };
    },
    planStep(i, ctx) {
      const s = stepOf(i);
      if (layout === null) {
        if (s.crossAttn === 'reuse' || s.selfAttn === 'reuse' || s.unet !== 'full') {
          throw new Error(`${where(i, ctx.totalSteps)}: the plan caches, but no cached UNet variants were prepared for it`);
        }
        // A plain guided step is what sample() runs without a planner (its default batch); a guidance-free
        // plan (LCM) runs its one pass.
        return { variant: 'full', batch: s.batch === 'cfg' ? ctx.defaultBatch : cfgBatchOf(s) };
      }
      const batch = cfgBatchOf(s);
      if (batch === 'cfg' && ctx.defaultBatch !== 'cfg') {
        throw new Error(`${where(i, ctx.totalSteps)}: the plan runs a guided [uncond, cond] pair but the sampler has cfg ${ctx.cfg} (no guidance): plan it as guidance-free (lcm)`);
      }
      const rows = rowsOf(batch, ctx);
      const { variant, extraInputs, captureOutputs } = callFeeds(s, rows, { attention, ...(deep ? { deep } : {}) }, where(i, ctx.totalSteps), false);
      return { variant: variant.key, batch, extraInputs, captureOutputs };
    },
    afterStep(i: number, outcome: StepOutcome) {
      if (layout === null) return;
      const s = stepOf(i);
      const deepName = layout.full.deepFeature;
      for (const [name, tensor] of Object.entries(outcome.outputs)) {
        if (name === deepName && s.unet === 'full') {
          deep = tensor;
          continue;
        }
        attention.set(name, s.cacheMode === 'cfg_mean' && outcome.plan.batch === 'cfg' ? meanOfHalves(tensor) : tensor);
      }
    },
  };
}

/**
 * A StepPlanner that runs every step as the plain loop would (same batch, every module computed) on the gated
 * variant and hands each step's attention outputs of `kind` to `onOutputs` (GateAdvisor's probe). The noise
 * predictions are those of the plain UNet, so the run is the plain run.
 */
export function captureAttentionStepper(
  layout: CacheLayout,
  kind: 'attn1' | 'attn2',
  onOutputs: (step: number, outputs: Readonly<Record<string, Tensor>>) => void,
): StepPlanner {
  if (!layout.full.conditions[kind]) throw new Error(`captureAttentionStepper: the UNet variant "${layout.full.key}" does not gate ${kind}`);
  const variant = layout.computeAll ?? layout.full;
  const extraInputs: Record<string, FeedValue> = {};
  for (const c of Object.values(variant.conditions)) extraInputs[c] = bool(true);
  // The gated graph declares the cached inputs even when every switch is on; the compute-all graph has none.
  for (const gate of variant === layout.full ? variant.gates : []) {
    const shape = gate.dims.map((x) => (typeof x === 'number' ? x : 1));
    extraInputs[gate.cachedInput] = new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  }
  const captureOutputs = variant.gates.filter((g) => g.kind === kind).map((g) => g.output);
  return {
    planStep: (_i, ctx) => ({ variant: variant.key, batch: ctx.defaultBatch, extraInputs, captureOutputs }),
    afterStep: (i, outcome) => onOutputs(i, outcome.outputs),
  };
}
