// Estimated cost of a plan relative to the plain run, from per-component shares of the UNet's MACs (e.g. from
// a MAC count of the ONNX graph). The benchmark compares it with measured speed.

import { PlanError, type ExecutionPlan, type PlannedStep } from './types.ts';
import { describe } from './validate.ts';

/** Shares of one full UNet pass (batch 1), each between 0 and 1. */
export interface CostWeights {
  /** All cross-attention (`attn2`) modules: to_q, to_k/to_v on the text, softmax, to_out. */
  crossAttn: number;
  /** All self-attention (`attn1`) modules. */
  selfAttn: number;
  /** DeepCache's shallow branch for the chosen cacheBranchId (needed only for plans with shallow steps). */
  shallow?: number;
  /** Cross-attention inside the shallow branch (default crossAttn x shallow, i.e. spread evenly). */
  shallowCrossAttn?: number;
  /** Self-attention inside the shallow branch (default selfAttn x shallow). */
  shallowSelfAttn?: number;
}

export interface PlanCost {
  /** Plan cost / plain cost (plain = the full UNet every step, same guidance). */
  relative: number;
  /** 1 / relative. */
  speedup: number;
  /** Cost of each step, in full batch-1 UNet passes. */
  perStep: number[];
  /** Cost of the plain run, in the same unit. */
  plain: number;
}

function share(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new PlanError(`Cost weight ${name} must be a share of the UNet between 0 and 1 (got ${describe(value)}).`, name);
  }
  return value;
}

export function estimateRelativeCost(plan: ExecutionPlan, weights: CostWeights): PlanCost {
  const cross = share('crossAttn', weights.crossAttn);
  const self = share('selfAttn', weights.selfAttn);
  if (cross + self > 1) {
    throw new PlanError(`Cost weights crossAttn (${cross}) and selfAttn (${self}) add up to more than the whole UNet.`);
  }
  const needsShallow = plan.steps.some((s) => s.unet === 'shallow');
  if (needsShallow && weights.shallow === undefined) {
    throw new PlanError('This plan has shallow DeepCache steps: give the shallow branch share (weights.shallow).', 'shallow');
  }
  const shallow = weights.shallow === undefined ? 1 : share('shallow', weights.shallow);
  const shallowCross =
    weights.shallowCrossAttn === undefined ? cross * shallow : share('shallowCrossAttn', weights.shallowCrossAttn);
  const shallowSelf =
    weights.shallowSelfAttn === undefined ? self * shallow : share('shallowSelfAttn', weights.shallowSelfAttn);

  const stepCost = (s: PlannedStep): number => {
    const isFull = s.unet === 'full';
    let cost = isFull ? 1 : shallow;
    if (s.crossAttn === 'reuse') cost -= isFull ? cross : shallowCross;
    if (s.selfAttn === 'reuse') cost -= isFull ? self : shallowSelf;
    return (s.batch === 'cfg' ? 2 : 1) * Math.max(0, cost);
  };
  const perStep = plan.steps.map(stepCost);
  const total = perStep.reduce((a, b) => a + b, 0);
  const plain = plan.stepCount * (plan.guidance === 'cfg' ? 2 : 1);
  const relative = total / plain;
  return { relative, speedup: relative > 0 ? 1 / relative : Number.POSITIVE_INFINITY, perStep, plain };
}
