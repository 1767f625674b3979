/**
 * The step planners of packages/diffusion (pure functions, no Node dependencies), bundled into the editor so
 * TGATE and DeepCache nodes draw the plan their settings produce while the user edits them.
 */
export {
  planTgate,
  planDeepCache,
  combinePlans,
  summarizePlan,
  PlanError,
  type TgateOptions,
  type DeepCacheOptions,
  type ExecutionPlan,
  type PlannedStep,
  type PlanSummary,
} from '../../diffusion/src/planners/index.ts';
