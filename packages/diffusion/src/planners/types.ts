// The execution plan: what must run at each denoising step when TGATE and/or DeepCache are on. Planners are
// pure functions of their settings. A StepPlanner (src/sampling.ts) turns each PlannedStep into the loop's
// per-step StepPlan (which UNet variant: capture / reuse / shallow forms from packages/onnx-graph, which
// batch, which cached tensors to feed and which outputs to keep) and holds the caches itself.

/** How one attention kind (all `attn1` or all `attn2` modules that run at this step) is evaluated. */
export type AttnMode =
  /** Computed normally; its output is not kept. */
  | 'compute'
  /** Computed, and the module's output (after `to_out`, before the residual add) is kept as the cache. */
  | 'compute_cache'
  /** Not computed: the module's output is the cache kept by the last `compute_cache` step. */
  | 'reuse';

/**
 * One denoising step. Steps are counted from 0, in sampling order (highest noise first).
 * Every field is always present except `singleBranch`, which is present exactly when `batch` is 'single'.
 */
export interface PlannedStep {
  /** Step index, 0-based. */
  step: number;
  /**
   * 'cfg': the sampler's guided batch [uncond, cond] and the usual guidance mix.
   * 'single': one UNet pass, its noise prediction used as is (no guidance mix). TGATE after its gate, and
   * guidance-free (LCM) models throughout.
   */
  batch: 'cfg' | 'single';
  /**
   * Which conditioning the single pass gets, for every conditioning input (text embedding, and for SDXL the
   * pooled `text_embeds` and `time_ids` too): 'uncond' (the negative/null text, as TGATE's official code does
   * after the gate; cross-attention reads its cache there so the text only reaches the other inputs) or 'cond'
   * (the prompt, as the ComfyUI port does; always 'cond' for guidance-free models).
   */
  singleBranch?: 'uncond' | 'cond';
  /** Cross-attention (`attn2`, text). */
  crossAttn: AttnMode;
  /** Self-attention (`attn1`). */
  selfAttn: AttnMode;
  /**
   * How the caches written at this step are formed (meaningful only where an attention mode is 'compute_cache'):
   * 'cfg_mean': (out_uncond + out_cond) / 2, so a batch-of-one step can reuse it (the TGATE gate step);
   * 'as_is': the output tensor itself, same batch as the steps that will reuse it.
   */
  cacheMode: 'cfg_mean' | 'as_is';
  /** 'full': the whole UNet; 'shallow': DeepCache's shallow branch, fed the cached deep feature. */
  unet: 'full' | 'shallow';
  /**
   * DeepCache state: 'none' (DeepCache off, or it does not need this step's deep feature), 'refresh' (a full
   * step that captures the deep feature for the following shallow steps), 'reuse' (a shallow step reading it).
   */
  deepCache: 'none' | 'refresh' | 'reuse';
}

/** The resolved TGATE settings a plan was built from (after defaults and `gateFraction`). */
export interface TgateSettings {
  /** Number of steps that run with CFG and compute cross-attention; step `gateStep - 1` is the gate step. */
  gateStep: number;
  spInterval: number;
  fiInterval: number;
  warmUp: number;
  lcm: boolean;
  afterGateBranch: 'uncond' | 'cond';
  cacheCrossAttn: boolean;
  cacheSelfAttn: boolean;
  /** False when the gate is at or past the last step (or nothing is cached): every step is a plain step. */
  effective: boolean;
}

/** The resolved DeepCache settings a plan was built from. */
export interface DeepCacheSettings {
  cacheInterval: number;
  cacheBranchId: number;
  /** `cacheBranchId // 3`: the UNet block (counted from the outermost) where the shallow branch stops. */
  cacheBlockId: number;
  /** `cacheBranchId % 3`: the layer inside that block. */
  cacheLayerId: number;
  schedule: 'uniform' | 'non_uniform';
  /** Non-uniform only: the step the full steps crowd around. */
  centre?: number;
  /** Non-uniform only: the power asked for, and the one that produced the schedule (DeepCache lowers it by 0.02 until the count fits). */
  power?: number;
  powerUsed?: number;
  /** Steps that run the full UNet / the shallow branch, ascending. */
  fullSteps: number[];
  shallowSteps: number[];
  /** False for interval 1 (every step is full). */
  effective: boolean;
}

/** A complete plan for one sampling run. */
export interface ExecutionPlan {
  kind: 'plain' | 'tgate' | 'deepcache' | 'tgate+deepcache';
  /** Number of steps; `steps.length === stepCount`. */
  stepCount: number;
  /** 'cfg' when the plain run would use a guided batch, 'none' for guidance-free (LCM) models. */
  guidance: 'cfg' | 'none';
  steps: PlannedStep[];
  tgate?: TgateSettings;
  deepCache?: DeepCacheSettings;
  /** Things a person should know about this plan ("TGATE has no effect: ..."); never errors. */
  notes: string[];
}

/** Settings a planner cannot work with. `setting` names the offending option. */
export class PlanError extends Error {
  override name = 'PlanError';
  constructor(
    message: string,
    readonly setting?: string,
  ) {
    super(message);
  }
}

/**
 * The sampling loop's batch for a planned step (src/sampling.ts `CfgBatch`): 'cfg' for the guided pair,
 * else the branch the single pass runs.
 */
export function cfgBatchOf(step: PlannedStep): 'cfg' | 'cond' | 'uncond' {
  return step.batch === 'cfg' ? 'cfg' : (step.singleBranch ?? 'cond');
}
