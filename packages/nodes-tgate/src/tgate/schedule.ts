/**
 * The values the TGATE / DeepCache nodes put on links and in MODEL patches, and the mapping from the
 * engine's setting names (PlanError.setting) back to the node inputs a user sees.
 */
import type { ModelPatch } from '../patches.ts';

/** GATE_SCHEDULE: when cross-attention is cached and how self-attention is refreshed (GateSchedule's widgets). */
export interface GateScheduleValue {
  /** Steps with guidance and computed cross-attention before the cache is used; absent when given as a fraction. */
  readonly gateStep?: number;
  /** The gate as a fraction of the steps (when gate_step is 0). */
  readonly gateFraction?: number;
  readonly spInterval: number;
  readonly fiInterval: number;
  readonly warmUp: number;
  readonly afterGateBranch: 'uncond' | 'cond';
  /** Guidance-free model (LCM): one pass everywhere, caches kept as is. */
  readonly lcm?: boolean;
  /** The node that made it, for messages. */
  readonly nodeId?: string;
  /** The node class that made it (GateSchedule, TGatePreset). */
  readonly nodeClass: string;
}

declare global {
  namespace GateGraph {
    interface SocketTypes {
      GATE_SCHEDULE: GateScheduleValue;
    }
  }
}

export const TGATE_PATCH = 'tgate';
export const DEEPCACHE_PATCH = 'deepcache';

/** Settings of a 'tgate' patch: which attention kind it caches, on which schedule. */
export type TgatePatchSettings = {
  readonly part: 'cross' | 'self';
  readonly schedule: GateScheduleValue;
};

/** Settings of a 'deepcache' patch (DeepCache's widgets). */
export type DeepCachePatchSettings = {
  readonly cacheInterval: number;
  readonly cacheBranchId: number;
  readonly schedule: 'uniform' | 'non_uniform';
  readonly centre?: number;
};

/** Engine setting -> the input it comes from. */
export const SCHEDULE_INPUTS: Record<string, string> = {
  gateStep: 'gate_step',
  gateFraction: 'gate_fraction',
  spInterval: 'sp_interval',
  fiInterval: 'fi_interval',
  warmUp: 'warm_up',
  afterGateBranch: 'after_gate_branch',
};
export const DEEPCACHE_INPUTS: Record<string, string> = {
  cacheInterval: 'cache_interval',
  cacheBranchId: 'cache_branch_id',
  schedule: 'schedule',
  centre: 'centre',
};

export function describeSchedule(s: GateScheduleValue): string {
  const gate = s.gateStep !== undefined ? `gate at step ${s.gateStep}` : `gate at ${Math.round((s.gateFraction ?? 1) * 100)}% of the steps`;
  return `${gate}, sp_interval ${s.spInterval}, fi_interval ${s.fiInterval}, warm_up ${s.warmUp}, after the gate: ${s.afterGateBranch}${s.lcm ? ', guidance-free (LCM)' : ''}`;
}

export function tgatePatch(part: 'cross' | 'self', schedule: GateScheduleValue, nodeId: string | undefined): ModelPatch {
  const settings: TgatePatchSettings = { part, schedule };
  return {
    kind: TGATE_PATCH,
    settings,
    ...(nodeId !== undefined ? { nodeId } : {}),
    describe: () => `TGATE: cache ${part === 'cross' ? 'cross-attention' : 'self-attention'}, ${describeSchedule(schedule)}`,
  };
}

export function deepCachePatch(settings: DeepCachePatchSettings, nodeId: string | undefined): ModelPatch {
  return {
    kind: DEEPCACHE_PATCH,
    settings,
    ...(nodeId !== undefined ? { nodeId } : {}),
    describe: () =>
      `DeepCache: full UNet every ${settings.cacheInterval} steps (${settings.schedule}${settings.centre !== undefined && settings.schedule === 'non_uniform' ? ` around step ${settings.centre}` : ''}), branch ${settings.cacheBranchId}`,
  };
}
