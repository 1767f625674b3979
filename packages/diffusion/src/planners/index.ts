// Step planners: TGATE and DeepCache schedules as plain data for the sampling loop (see README "Step planners").
export { PlanError, cfgBatchOf, type AttnMode, type PlannedStep, type ExecutionPlan, type TgateSettings, type DeepCacheSettings } from './types.ts';
export { planTgate, gateStepFromFraction, plainStep, TGATE_PRESETS, type TgateOptions } from './tgate.ts';
export { planDeepCache, quadCentreSchedule, deepCacheMaxBranchId, type DeepCacheOptions } from './deepcache.ts';
export { combinePlans } from './combine.ts';
export { checkPlan, pruneUnreadCaches } from './check.ts';
export { renderPlan, summarizePlan, PLAN_LEGEND, type PlanSummary } from './render.ts';
export { estimateRelativeCost, type CostWeights, type PlanCost } from './cost.ts';
