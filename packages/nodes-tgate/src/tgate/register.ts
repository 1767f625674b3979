/**
 * How KSampler runs MODELs patched by CacheCrossAttn / CacheSelfAttn ('tgate') and DeepCache ('deepcache'):
 * one sampling extension handles both kinds, because their combination is its own schedule. The patches become
 * one ExecutionPlan (planTgate, planDeepCache, combinePlans: TGATE + DeepCache resets DeepCache at the gate step
 * and the step after, as T-GATE's own combination), the plan's notes go to the sampler's log, and a `sample`
 * wrapper runs the engine's adapter (planStepper) on the cached UNet variants for the length of the run.
 * Wrappers of other kinds (a pack's CFG rescale, a step recorder) chain with it at the other points.
 *
 * A plan whose steps are all plain (gate at or past the last step, DeepCache interval 1) builds nothing and
 * runs the plain UNet exactly as an unpatched KSampler does.
 */
import {
  CachedUnetError,
  PlanError,
  cacheNeedsOf,
  combinePlans,
  deepCacheMaxBranchId,
  isPlainPlan,
  planDeepCache,
  planStepper,
  planTgate,
  prepareCachedUnet,
  samplingExtensions,
  type DiffusionModel,
  type ExecutionPlan,
  type SamplingExtension,
  type SamplingRun,
  type SamplingWrappers,
  type StepPlanner,
  type UnetRunner,
} from '@gategraph/diffusion';
import { PatchError, type ModelPatch } from '../patches.ts';
import {
  DEEPCACHE_INPUTS,
  DEEPCACHE_PATCH,
  SCHEDULE_INPUTS,
  TGATE_PATCH,
  type DeepCachePatchSettings,
  type GateScheduleValue,
  type TgatePatchSettings,
} from './schedule.ts';

const nodeName = (cls: string, id: string | undefined) => `the ${cls} node${id !== undefined ? ` #${id}` : ''}`;

/** The engine speaks of gateStep, spInterval...: say the node inputs' names (gate_step, sp_interval...) instead. */
export function withInputNames(text: string): string {
  const names: Record<string, string> = { ...SCHEDULE_INPUTS, ...DEEPCACHE_INPUTS };
  return text.replace(/\b(gateStep|gateFraction|spInterval|fiInterval|warmUp|afterGateBranch|cacheInterval|cacheBranchId)\b/g, (m) => names[m] ?? m);
}

/** A PlanError as a message naming the node and the input the setting comes from. */
function planErrorFrom(error: unknown, cls: string, id: string | undefined, inputs: Record<string, string>): never {
  if (error instanceof PlanError) {
    const input = error.setting ? inputs[error.setting] : undefined;
    throw new PatchError(`${nodeName(cls, id)}${input ? `, input "${input}"` : ''}: ${withInputNames(error.message)}`);
  }
  throw error;
}

/** The TGATE plan for the 'tgate' patches: one schedule, cross- and/or self-attention caching. */
export function tgatePlanFor(patches: readonly ModelPatch[], steps: number, cfg: number, notes: string[]): ExecutionPlan {
  const own = patches.filter((p) => p.kind === TGATE_PATCH);
  const settings = own.map((p) => p.settings as unknown as TgatePatchSettings);
  const first = settings[0]!;
  const key = (s: GateScheduleValue) => JSON.stringify({ ...s, nodeId: undefined, nodeClass: undefined });
  const other = settings.findIndex((s) => key(s.schedule) !== key(first.schedule));
  if (other >= 0) {
    const a = first.schedule;
    const b = settings[other]!.schedule;
    throw new PatchError(
      `nodes #${own[0]!.nodeId ?? '?'} and #${own[other]!.nodeId ?? '?'} cache attention on different ` +
        `gate schedules (from ${nodeName(a.nodeClass, a.nodeId)} and ${nodeName(b.nodeClass, b.nodeId)}): cross- and self-attention ` +
        'caching share one gate. Connect both nodes to the same GateSchedule.',
    );
  }
  const s = first.schedule;
  const lcm = s.lcm === true || cfg === 1;
  if (s.lcm && cfg !== 1) notes.push(`The schedule is for a guidance-free (LCM) model: every step runs one pass with the prompt, and cfg ${cfg} is not applied.`);
  if (!s.lcm && cfg === 1) notes.push('cfg is 1 (no guidance): TGATE runs guidance-free, caching the attention outputs as they are.');
  try {
    const plan = planTgate({
      steps,
      ...(s.gateStep !== undefined ? { gateStep: s.gateStep } : { gateFraction: s.gateFraction ?? 1 }),
      spInterval: s.spInterval,
      fiInterval: s.fiInterval,
      warmUp: s.warmUp,
      lcm,
      afterGateBranch: s.afterGateBranch,
      cacheCrossAttn: settings.some((x) => x.part === 'cross'),
      cacheSelfAttn: settings.some((x) => x.part === 'self'),
    });
    return plan;
  } catch (error) {
    return planErrorFrom(error, s.nodeClass, s.nodeId, SCHEDULE_INPUTS);
  }
}

/** Down blocks of the UNet from its config.json, when the folder has one (bounds cache_branch_id). */
function downBlocks(model: DiffusionModel): number | undefined {
  // The component's config is its folder's config.json: model.unet.path may be a derived graph elsewhere.
  const types = model.unet.config.down_block_types;
  return Array.isArray(types) ? types.length : undefined;
}

export function deepCachePlanFor(patches: readonly ModelPatch[], model: DiffusionModel, steps: number, lcm: boolean): ExecutionPlan {
  const own = patches.filter((p) => p.kind === DEEPCACHE_PATCH);
  if (own.length > 1) {
    throw new PatchError(
      `the MODEL passed through ${own.length} DeepCache nodes (#${own.map((p) => p.nodeId ?? '?').join(', #')}): DeepCache can be applied once. Remove all but one.`,
    );
  }
  const patch = own[0]!;
  const s = patch.settings as unknown as DeepCachePatchSettings;
  const blocks = downBlocks(model);
  try {
    return planDeepCache({
      steps,
      cacheInterval: s.cacheInterval,
      cacheBranchId: s.cacheBranchId,
      ...(blocks !== undefined ? { maxBranchId: deepCacheMaxBranchId(blocks) } : {}),
      schedule: s.schedule,
      ...(s.schedule === 'non_uniform' && s.centre !== undefined ? { centre: s.centre } : {}),
      lcm,
    });
  } catch (error) {
    if (error instanceof PlanError && error.setting === 'cacheBranchId' && blocks !== undefined) {
      throw new PatchError(
        `${nodeName('DeepCache', patch.nodeId)}, input "cache_branch_id": ${withInputNames(error.message)} This UNet has ${blocks} down blocks, so branches 0..${deepCacheMaxBranchId(blocks)} exist.`,
      );
    }
    return planErrorFrom(error, 'DeepCache', patch.nodeId, DEEPCACHE_INPUTS);
  }
}

/** The plan for any mix of 'tgate' and 'deepcache' patches. */
export function planForPatches(patches: readonly ModelPatch[], model: DiffusionModel, steps: number, cfg: number): { plan: ExecutionPlan; notes: string[] } {
  const notes: string[] = [];
  const hasTgate = patches.some((p) => p.kind === TGATE_PATCH);
  const hasDeep = patches.some((p) => p.kind === DEEPCACHE_PATCH);
  const tgate = hasTgate ? tgatePlanFor(patches, steps, cfg, notes) : undefined;
  const lcm = tgate ? tgate.guidance === 'none' : cfg === 1;
  const deep = hasDeep ? deepCachePlanFor(patches, model, steps, lcm) : undefined;
  let plan: ExecutionPlan;
  try {
    plan = tgate && deep ? combinePlans(tgate, deep) : (tgate ?? deep)!;
  } catch (error) {
    if (error instanceof PlanError) throw new PatchError(`TGATE + DeepCache: ${error.message}`);
    throw error;
  }
  return { plan, notes: [...notes, ...plan.notes].map(withInputNames) };
}

/** What the sampling loop runs for a plan, and how to release it once the run has ended. */
export interface PlannedSampling {
  planner: StepPlanner;
  /** A runner with the UNet variants the planner asks for; absent: the model's plain UNet. */
  unet?: UnetRunner;
  dispose?(): void | Promise<void>;
}

/** Builds what the sampling loop runs for a plan: nothing extra for a plain plan, the cached variants otherwise. */
export async function samplingFor(plan: ExecutionPlan, model: DiffusionModel, patches: readonly ModelPatch[]): Promise<PlannedSampling> {
  if (isPlainPlan(plan)) return { planner: planStepper(plan, null) };
  let cached;
  try {
    cached = await prepareCachedUnet(model, cacheNeedsOf(plan));
  } catch (error) {
    if (error instanceof CachedUnetError) {
      const nodes = patches.map((p) => `#${p.nodeId ?? '?'}`).join(', ');
      throw new PatchError(`the TGATE/DeepCache nodes (${nodes}) cannot be applied: ${error.message}`);
    }
    throw error;
  }
  return { planner: planStepper(plan, cached.layout), unet: cached.runner, dispose: () => cached.release() };
}

/** Plans the run when it is asked for (errors before anything runs), and prepares the variants when it starts. */
function wrap(patches: readonly ModelPatch[], ctx: SamplingRun): SamplingWrappers {
  const { plan, notes } = planForPatches(patches, ctx.model, ctx.steps, ctx.cfg);
  const fixed = ctx.model.io.unet.fixedBatch;
  const latentBatch = ctx.latentShape[0] ?? 1;
  if (fixed !== undefined && plan.steps.some((s) => s.batch === 'single') && fixed !== latentBatch) {
    // Checked here: ORT's own message would name a node deep inside the graph.
    throw new PatchError(
      `TGATE runs one UNet pass of batch ${latentBatch} per step after the gate, but this UNet was exported with a fixed batch of ${fixed}. ` +
        'Re-export the model with a dynamic batch axis, or remove the TGATE nodes.',
    );
  }
  // A setting that switches the method off is worth a warning: the user asked for a speed-up they will not get.
  for (const note of notes) (/no effect|no-op|is off/i.test(note) ? ctx.log.warn(note) : ctx.log.info(note));
  return {
    async sample(next, options) {
      // Two planners cannot both decide which variant runs: say so rather than drop one silently.
      if (options.planner) {
        throw new PatchError(`the TGATE/DeepCache nodes (${patches.map((p) => `#${p.nodeId ?? '?'}`).join(', ')}) plan every step, and another sampling wrapper already installed a step planner`);
      }
      const sampling = await samplingFor(plan, ctx.model, patches);
      try {
        return await next({ ...options, planner: sampling.planner, ...(sampling.unet ? { unet: sampling.unet } : {}) });
      } finally {
        await sampling.dispose?.();
      }
    },
  };
}

/** The extension for 'tgate' and 'deepcache' patches: one, since the two plan together. */
const extension: SamplingExtension = { owner: 'nodes-tgate', kinds: [TGATE_PATCH, DEEPCACHE_PATCH], wrap };

/** Registers the TGATE / DeepCache extension with the host's sampling-extension service (again: no change). */
export function registerTgateExtension(): void {
  samplingExtensions().register(extension);
}
