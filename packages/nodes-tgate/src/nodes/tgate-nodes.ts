/**
 * The TGATE and DeepCache nodes (category sampling/tgate). Each returns a new MODEL with one more patch; the
 * KSampler fed that MODEL turns the patches into one step plan (tgate/register.ts). Chaining composes:
 * CacheCrossAttn + CacheSelfAttn share one GATE_SCHEDULE; CacheCrossAttn + DeepCache is T-GATE's official
 * combination (DeepCache's cache is reset at the gate step and the step after it).
 */
import { boolean, combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { TGATE_PRESETS } from '@gategraph/diffusion';
import { deepCachePatch, describeSchedule, tgatePatch, type GateScheduleValue } from '../tgate/schedule.ts';

const AFTER_GATE = ['uncond', 'cond'] as const;

export const GateSchedule = defineNode({
  id: 'GateSchedule',
  displayName: 'TGATE Gate Schedule',
  category: 'sampling/tgate',
  description:
    'When TGATE stops computing cross-attention. Diffusion first plans the layout from the text (early steps), then ' +
    'refines detail (later steps), where the cross-attention output hardly changes. From the gate on, the cross-attention ' +
    'output cached at the gate is reused, and the sampler runs one pass per step instead of the guided pair: ' +
    'with the defaults about 1.5x less UNet work at 25 steps (the paper reports 1.6-1.7x faster on SD and SDXL). Connect it to ' +
    'CacheCrossAttn (and CacheSelfAttn). Use GateAdvisor to pick the gate for a prompt.',
  inputs: {
    gate_step: int({
      default: 10,
      min: 0,
      max: 10000,
      tooltip:
        'Steps that run with guidance and compute cross-attention; the last of them (step gate_step - 1, counting from 0) ' +
        'fills the cache, every later step reuses it. 10 is the paper\'s default for 25 steps. A gate at or past the ' +
        'last step turns TGATE off (the plain image). 0 = use gate_fraction instead.',
    }),
    gate_fraction: float({
      default: 0.4,
      min: 0.01,
      max: 1.0,
      step: 0.01,
      round: 0.01,
      tooltip:
        'Only when gate_step is 0: the gate as a share of the sampler\'s steps (0.4 of 25 = step 10, rounded up). ' +
        'Like the ComfyUI_TGate port\'s start_at, but counted in steps, not noise levels. 1.0 = off.',
    }),
    sp_interval: int({
      default: 5,
      min: 1,
      max: 1000,
      tooltip: 'With CacheSelfAttn, before the gate: self-attention is recomputed and cached every sp_interval steps and reused in between (1 = always recompute).',
    }),
    fi_interval: int({
      default: 1,
      min: 1,
      max: 1000,
      tooltip: 'With CacheSelfAttn, after the gate: self-attention is recomputed every fi_interval steps (1 = always, the paper\'s default).',
    }),
    warm_up: int({
      default: 2,
      min: 0,
      max: 1000,
      tooltip: 'With CacheSelfAttn: the first warm_up steps always compute self-attention; must be below the gate step.',
    }),
    after_gate_branch: combo(AFTER_GATE, {
      default: 'uncond',
      tooltip:
        'Which conditioning the single pass after the gate gets. Cross-attention reads its cache there, so this only reaches ' +
        'the other conditioning inputs: uncond = the negative prompt (TGATE\'s official code), cond = the positive prompt (the ComfyUI port).',
    }),
  },
  outputs: [{ type: 'GATE_SCHEDULE', name: 'GATE_SCHEDULE', tooltip: 'Connect to CacheCrossAttn and CacheSelfAttn.' }],
  execute(inputs, ctx) {
    const schedule: GateScheduleValue = {
      ...(inputs.gate_step > 0 ? { gateStep: inputs.gate_step } : { gateFraction: inputs.gate_fraction }),
      spInterval: inputs.sp_interval,
      fiInterval: inputs.fi_interval,
      warmUp: inputs.warm_up,
      afterGateBranch: inputs.after_gate_branch,
      nodeId: ctx.nodeId,
      nodeClass: 'GateSchedule',
    };
    return [schedule];
  },
});

export const CacheCrossAttn = defineNode({
  id: 'CacheCrossAttn',
  displayName: 'TGATE Cache Cross-Attention',
  category: 'sampling/tgate',
  description:
    'TGATE: from the gate step on, reuse the cross-attention output cached at the gate (the mean of the negative and ' +
    'positive passes) and run one UNet pass per step without guidance. The text path of cross-attention is skipped. ' +
    'The returned MODEL goes to the KSampler; the original MODEL is unchanged.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to patch (may already carry CacheSelfAttn or DeepCache).' }),
    schedule: socket('GATE_SCHEDULE', { tooltip: 'When to gate: from a GateSchedule node.' }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with cross-attention caching; connect to KSampler.' }],
  execute({ model, schedule }, ctx) {
    return [model.withPatch(tgatePatch('cross', schedule, ctx.nodeId))];
  },
});

export const CacheSelfAttn = defineNode({
  id: 'CacheSelfAttn',
  displayName: 'TGATE Cache Self-Attention',
  category: 'sampling/tgate',
  description:
    'TGATE v2: also cache self-attention, recomputed every sp_interval steps before the gate (after warm_up steps) and every ' +
    'fi_interval steps after it, reused in between. Faster, but users of the ComfyUI port found it degrades images more than ' +
    'cross-attention caching alone: compare with and without. Use the same GateSchedule as CacheCrossAttn.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to patch (usually the output of CacheCrossAttn).' }),
    schedule: socket('GATE_SCHEDULE', { tooltip: 'The same GateSchedule as CacheCrossAttn: the two share one gate.' }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with self-attention caching; connect to KSampler.' }],
  execute({ model, schedule }, ctx) {
    return [model.withPatch(tgatePatch('self', schedule, ctx.nodeId))];
  },
});

export const DeepCache = defineNode({
  id: 'DeepCache',
  displayName: 'DeepCache',
  category: 'sampling/tgate',
  description:
    'DeepCache: run the full UNet only every cache_interval steps and keep its deep features; the steps in between run only ' +
    'the shallow outer layers on the kept features (DeepCache reports about 2.3x faster on SD-1.5 at interval 3, branch 0). Combines with CacheCrossAttn ' +
    '(T-GATE\'s combination: the full UNet also runs at the gate step and the step after). Not for ControlNet.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to patch.' }),
    cache_interval: int({
      default: 3,
      min: 1,
      max: 1000,
      tooltip: 'The full UNet runs every cache_interval steps (3 is the usual choice; 5 is faster and rougher; 1 turns DeepCache off).',
    }),
    cache_branch_id: int({
      default: 0,
      min: 0,
      max: 32,
      tooltip:
        'How deep the recomputed shallow branch reaches: 0 is the shallowest and fastest; higher is slower and closer to the ' +
        'full UNet. At most 3 x (down blocks) - 1: 11 for SD-1.5/2.1, 8 for SDXL.',
    }),
    schedule: combo(['uniform', 'non_uniform'] as const, {
      default: 'uniform',
      tooltip: 'uniform: full steps at 0, N, 2N, ... non_uniform: the same number of full steps, crowded around the centre step (DeepCache\'s experimental schedule).',
    }),
    centre: int({ default: 15, min: 0, max: 10000, tooltip: 'non_uniform only: the step the full UNet steps crowd around.' }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with DeepCache; connect to KSampler.' }],
  execute({ model, cache_interval, cache_branch_id, schedule, centre }, ctx) {
    return [
      model.withPatch(
        deepCachePatch(
          { cacheInterval: cache_interval, cacheBranchId: cache_branch_id, schedule, ...(schedule === 'non_uniform' ? { centre } : {}) },
          ctx.nodeId,
        ),
      ),
    ];
  },
});

const PRESET_FAMILIES = ['SD-1.5', 'SD-2.1', 'SDXL', 'LCM'] as const;
type Family = (typeof PRESET_FAMILIES)[number];

/** The paper's shipped settings per family (TGATE_PRESETS), as a GATE_SCHEDULE. */
export function presetSchedule(family: Family, withDeepCache: boolean, nodeId: string | undefined): GateScheduleValue {
  const key = withDeepCache ? 'with-deepcache' : family === 'LCM' ? 'lcm' : family === 'SDXL' ? 'sdxl' : family === 'SD-2.1' ? 'sd2.1' : 'sd1.5';
  const p = TGATE_PRESETS[key];
  return {
    gateStep: p.gateStep,
    spInterval: p.spInterval,
    fiInterval: p.fiInterval,
    warmUp: p.warmUp,
    afterGateBranch: 'uncond',
    ...(family === 'LCM' ? { lcm: true } : {}),
    ...(nodeId !== undefined ? { nodeId } : {}),
    nodeClass: 'TGatePreset',
  };
}

export const TGatePreset = defineNode({
  id: 'TGatePreset',
  displayName: 'TGATE Preset',
  category: 'sampling/tgate',
  description:
    'TGATE with the paper\'s settings for a model family, in one node. SD-1.5 / SD-2.1 / SDXL: gate at step 10 (of 25), ' +
    'cross- and self-attention cached (sp_interval 5, fi_interval 1, warm_up 2). LCM: gate at step 1, no guidance (4 steps). ' +
    'With DeepCache: cross-attention cached at step 10, no self-attention caching, DeepCache interval 3 branch 0 (T-GATE\'s ' +
    'combination). The gate is a step number: with many more or fewer than 25 steps, use GateSchedule instead.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to patch.' }),
    model_family: combo(PRESET_FAMILIES, { default: 'SD-1.5', tooltip: 'The family the checkpoint belongs to; picks the paper\'s settings for it.' }),
    with_deepcache: boolean({ default: false, tooltip: 'Also apply DeepCache (interval 3, branch 0) as in T-GATE\'s combination.' }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with TGATE (and DeepCache); connect to KSampler.' }],
  execute({ model, model_family, with_deepcache }, ctx) {
    if (with_deepcache && model_family === 'LCM') {
      throw new NodeInputError('with_deepcache: T-GATE ships no DeepCache combination for LCM (4 steps leave nothing to skip); turn it off.', 'with_deepcache');
    }
    const schedule = presetSchedule(model_family, with_deepcache, ctx.nodeId);
    ctx.log.info(`TGATE preset ${model_family}${with_deepcache ? ' + DeepCache' : ''}: ${describeSchedule(schedule)}`);
    let out = model.withPatch(tgatePatch('cross', schedule, ctx.nodeId));
    if (with_deepcache) out = out.withPatch(deepCachePatch({ cacheInterval: 3, cacheBranchId: 0, schedule: 'uniform' }, ctx.nodeId));
    else out = out.withPatch(tgatePatch('self', schedule, ctx.nodeId));
    return [out];
  },
});
