// Plans as text (logs, the CLI) and as a JSON-friendly summary (the editor's timeline, run metadata).

import type { AttnMode, ExecutionPlan, PlannedStep } from './types.ts';

const ATTN_SYMBOL: Record<AttnMode, string> = { compute: '.', compute_cache: 'K', reuse: 'R' };

function batchSymbol(s: PlannedStep): string {
  if (s.batch === 'cfg') return 'C';
  return s.singleBranch === 'uncond' ? 'N' : 'P';
}

function attnSymbol(s: PlannedStep, mode: AttnMode): string {
  return mode === 'compute_cache' && s.cacheMode === 'cfg_mean' ? 'M' : ATTN_SYMBOL[mode];
}

const DEEP_SYMBOL: Record<PlannedStep['deepCache'], string> = { none: '.', refresh: 'K', reuse: 'R' };

/** Legend of the symbols `renderPlan` uses. */
export const PLAN_LEGEND =
  'batch C=CFG pair, N=one pass with the negative text, P=one pass with the prompt; ' +
  'attention .=compute, K=compute+cache, M=compute+cache the CFG mean, R=reuse; ' +
  'unet F=full, S=shallow; deep K=capture the deep feature, R=reuse it';

/**
 * A compact grid, one column per step:
 * ```
 * step   0  1  2  3 ...
 * batch  C  C  C  C ...
 * cross  .  .  .  . ...
 * self   .  .  K  R ...
 * unet   F  F  F  F ...
 * deep   .  .  .  . ...
 * ```
 * followed by the legend and the plan's notes.
 */
export function renderPlan(plan: ExecutionPlan, options: { legend?: boolean } = {}): string {
  const width = String(Math.max(0, plan.stepCount - 1)).length + 1;
  const row = (label: string, cells: string[]): string =>
    (label.padEnd(6) + cells.map((c) => c.padStart(width)).join('')).trimEnd();
  const lines = [
    `${plan.kind} plan, ${plan.stepCount} steps`,
    row('step', plan.steps.map((s) => String(s.step))),
    row('batch', plan.steps.map(batchSymbol)),
    row('cross', plan.steps.map((s) => attnSymbol(s, s.crossAttn))),
    row('self', plan.steps.map((s) => attnSymbol(s, s.selfAttn))),
    row('unet', plan.steps.map((s) => (s.unet === 'full' ? 'F' : 'S'))),
    row('deep', plan.steps.map((s) => DEEP_SYMBOL[s.deepCache])),
  ];
  if (options.legend ?? true) lines.push(PLAN_LEGEND);
  for (const note of plan.notes) lines.push(`note: ${note}`);
  return lines.join('\n');
}

export interface PlanSummary {
  kind: ExecutionPlan['kind'];
  steps: number;
  guidance: ExecutionPlan['guidance'];
  /** The gate step index (last CFG step that fills the caches), or null when TGATE is off. */
  gateStepIndex: number | null;
  cfgSteps: number;
  singleSteps: number;
  fullSteps: number;
  shallowSteps: number;
  crossReuseSteps: number;
  crossCacheSteps: number;
  selfReuseSteps: number;
  selfCacheSteps: number;
  deepCacheRefreshSteps: number;
  /**
   * Step indices per category, for a timeline. `single` lists the steps that drop the CFG batch (TGATE after
   * its gate); it is empty for guidance-free models, which never had one.
   */
  timeline: {
    crossReuse: number[];
    selfReuse: number[];
    shallow: number[];
    single: number[];
  };
  notes: string[];
}

export function summarizePlan(plan: ExecutionPlan): PlanSummary {
  const where = (pred: (s: PlannedStep) => boolean): number[] => plan.steps.filter(pred).map((s) => s.step);
  const crossReuse = where((s) => s.crossAttn === 'reuse');
  const selfReuse = where((s) => s.selfAttn === 'reuse');
  const shallow = where((s) => s.unet === 'shallow');
  const single = where((s) => s.batch === 'single' && plan.guidance === 'cfg');
  return {
    kind: plan.kind,
    steps: plan.stepCount,
    guidance: plan.guidance,
    gateStepIndex: plan.tgate?.effective ? plan.tgate.gateStep - 1 : null,
    cfgSteps: where((s) => s.batch === 'cfg').length,
    singleSteps: where((s) => s.batch === 'single').length,
    fullSteps: plan.stepCount - shallow.length,
    shallowSteps: shallow.length,
    crossReuseSteps: crossReuse.length,
    crossCacheSteps: where((s) => s.crossAttn === 'compute_cache').length,
    selfReuseSteps: selfReuse.length,
    selfCacheSteps: where((s) => s.selfAttn === 'compute_cache').length,
    deepCacheRefreshSteps: where((s) => s.deepCache === 'refresh').length,
    timeline: { crossReuse, selfReuse, shallow, single },
    notes: [...plan.notes],
  };
}
