/**
 * createScheduler: from a sampler name, the model's training schedule, a step count and options to a
 * Scheduler ready for the sampling loop. Names follow ComfyUI's KSampler (sampler_name x scheduler).
 */
import { noiseLevels, resolveSchedulerConfig, sigmaToTimestep, type NoiseLevels, type SchedulerConfig, type SchedulerConfigInput } from './config.ts';
import { denoisedScheduleSigmas, SCHEDULER_NAMES, type ScheduleName } from './sigma-schedules.ts';
import { DdimScheduler, type DdimPlan } from './ddim.ts';
import { EulerScheduler } from './euler.ts';
import { EulerAncestralScheduler } from './euler-ancestral.ts';
import { DpmPp2mScheduler } from './dpmpp-2m.ts';
import { LcmScheduler } from './lcm.ts';
import type { SamplerName, Scheduler, SchedulerOptions } from './types.ts';
import { isKSamplerName } from '../k-samplers/index.ts';

/** In ComfyUI's order (comfy/samplers.py KSAMPLER_NAMES, then ddim), for the KSampler `sampler_name` combo. */
export const SAMPLER_NAMES: readonly SamplerName[] = ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm', 'ddim'];

/** ComfyUI samplers we know of but do not implement (for a helpful error instead of "unknown"). */
const COMFY_ONLY_SCHEDULERS = ['AYS', 'GITS'];

export function assertSamplerName(name: string): SamplerName {
  if ((SAMPLER_NAMES as readonly string[]).includes(name)) return name as SamplerName;
  // The rest of ComfyUI's list runs as k-diffusion functions (k-samplers/), which take the model as a callback.
  const known = isKSamplerName(name) ? ` as a Scheduler (ComfyUI's "${name}" runs as a k-diffusion sampler: kSampler("${name}"))` : '';
  throw new RangeError(`Unknown sampler "${name}"${known}; valid Scheduler names are: ${SAMPLER_NAMES.join(', ')}`);
}

export function assertScheduleName(name: string): ScheduleName {
  if ((SCHEDULER_NAMES as readonly string[]).includes(name)) return name as ScheduleName;
  const known = COMFY_ONLY_SCHEDULERS.includes(name) ? ` (ComfyUI's "${name}" is not implemented here yet)` : '';
  throw new RangeError(`Unknown scheduler "${name}"${known}; valid scheduler names are: ${SCHEDULER_NAMES.join(', ')}`);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** diffusers' DDIMScheduler.set_timesteps (integer timesteps, highest first). */
export function diffusersDdimTimesteps(config: SchedulerConfig, steps: number): number[] {
  const n = config.num_train_timesteps;
  if (steps > n) throw new RangeError(`ddim: ${steps} steps is more than the model's ${n} training timesteps`);
  const out: number[] = [];
  if (config.timestep_spacing === 'leading') {
    const ratio = Math.floor(n / steps);
    for (let k = steps - 1; k >= 0; k--) out.push(k * ratio + config.steps_offset);
  } else if (config.timestep_spacing === 'trailing') {
    const ratio = n / steps;
    for (let k = 0; k < steps; k++) out.push(roundHalfEven(n - k * ratio) - 1);
  } else {
    for (let k = steps - 1; k >= 0; k--) out.push(roundHalfEven(steps === 1 ? 0 : (k * (n - 1)) / (steps - 1)));
  }
  return out;
}

function diffusersDdimPlan(config: SchedulerConfig, levels: NoiseLevels, steps: number, denoise: number): DdimPlan {
  const ac = levels.alphasCumprod;
  const all = diffusersDdimTimesteps(config, steps);
  // diffusers img2img `strength`: run the last floor(steps * strength) of the steps
  const keep = denoise > 0.9999 ? steps : Math.min(Math.floor(steps * denoise), steps);
  const timesteps = all.slice(steps - keep);
  const ratio = Math.floor(config.num_train_timesteps / steps);
  const finalAlpha = config.set_alpha_to_one ? 1 : ac[0]!;
  for (const t of timesteps) {
    if (t < 0 || t >= ac.length) throw new RangeError(`ddim: timestep ${t} from steps_offset ${config.steps_offset} is outside 0..${ac.length - 1}`);
  }
  return {
    schedule: 'diffusers',
    timesteps,
    alphas: timesteps.map((t) => ac[t]!),
    alphasPrev: timesteps.map((t) => (t - ratio >= 0 ? ac[t - ratio]! : finalAlpha)),
    pureNoiseStart: false,
  };
}

function comfyDdimPlan(schedule: ScheduleName, sigmas: number[], levels: NoiseLevels): DdimPlan {
  const alpha = (s: number): number => 1 / (1 + s * s);
  const first = sigmas[0] ?? 0;
  return {
    schedule,
    timesteps: sigmas.slice(0, -1).map((s) => sigmaToTimestep(levels, s)),
    alphas: sigmas.slice(0, -1).map(alpha),
    alphasPrev: sigmas.slice(1).map(alpha),
    pureNoiseStart: first > 0 && (Math.abs(first - levels.sigmaMax) <= 1e-5 * levels.sigmaMax || first > levels.sigmaMax),
  };
}

/**
 * ComfyUI's KSampler.sample cut of the noise levels (start_step / last_step / force_full_denoise): first the end
 * (levels [0, endStep]; the last set to 0 when forced), then the start; a start at or past the last step leaves
 * no step at all (the latent comes back unchanged).
 */
export function windowSigmas(sigmas: readonly number[], window: Pick<SchedulerOptions, 'startStep' | 'endStep' | 'forceFullDenoise'>, sampler = 'scheduler'): number[] {
  const { startStep, endStep } = window;
  for (const [name, v] of [['startStep', startStep], ['endStep', endStep]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw new RangeError(`${sampler}: ${name} must be a whole number >= 0 (got ${v})`);
  }
  let out = [...sigmas];
  if (endStep !== undefined && endStep < out.length - 1) {
    out = out.slice(0, endStep + 1);
    if (window.forceFullDenoise) out[out.length - 1] = 0;
  }
  if (startStep !== undefined && startStep > 0) out = startStep < out.length - 1 ? out.slice(startStep) : [];
  return out;
}

/**
 * Creates the scheduler for one sampling run.
 * @param name     sampler: 'euler' | 'euler_ancestral' | 'dpmpp_2m' | 'lcm' | 'ddim' (ComfyUI names)
 * @param config   the model's scheduler_config.json (missing keys default to SD 1.x)
 * @param steps    number of steps (ddim_uniform may produce a different count, as in ComfyUI)
 */
export function createScheduler(
  name: string,
  config: SchedulerConfigInput = {},
  steps: number,
  options: SchedulerOptions = {},
): Scheduler {
  const sampler = assertSamplerName(name);
  const cfg = resolveSchedulerConfig(config);
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`${sampler}: steps must be a whole number >= 1 (got ${steps})`);
  const denoise = options.denoise ?? 1;
  if (!(denoise >= 0 && denoise <= 1)) throw new RangeError(`${sampler}: denoise must be between 0 and 1 (got ${denoise})`);
  if (options.eta !== undefined && !(options.eta >= 0)) throw new RangeError(`${sampler}: eta must be >= 0 (got ${options.eta})`);
  let schedule = options.schedule === undefined ? undefined : assertScheduleName(options.schedule);
  if (options.karras) {
    if (schedule !== undefined && schedule !== 'karras') {
      throw new RangeError(`${sampler}: karras: true conflicts with schedule "${schedule}"; give one or the other`);
    }
    schedule = 'karras';
  }
  const levels = noiseLevels(cfg);
  const windowed = options.startStep !== undefined || options.endStep !== undefined;
  if (windowed && sampler === 'ddim' && schedule === undefined) {
    throw new RangeError('ddim: a step window (startStep/endStep) needs a schedule (e.g. "normal"); diffusers\' own DDIM timesteps have none');
  }

  if (sampler === 'ddim') {
    const plan = schedule === undefined
      ? diffusersDdimPlan(cfg, levels, steps, denoise)
      : comfyDdimPlan(schedule, windowSigmas(denoisedScheduleSigmas(schedule, levels, steps, denoise), options, sampler), levels);
    return new DdimScheduler(plan, cfg.prediction_type, options.eta ?? 0);
  }
  const sched = schedule ?? 'normal';
  const sigmas = windowSigmas(denoisedScheduleSigmas(sched, levels, steps, denoise), options, sampler);
  switch (sampler) {
    case 'euler':
      return new EulerScheduler(sched, cfg.prediction_type, sigmas, levels);
    case 'euler_ancestral':
      return new EulerAncestralScheduler(sched, cfg.prediction_type, sigmas, levels, options.eta ?? 1);
    case 'dpmpp_2m':
      return new DpmPp2mScheduler(sched, cfg.prediction_type, sigmas, levels);
    case 'lcm':
      return new LcmScheduler(sched, cfg.prediction_type, sigmas, levels);
  }
}

/** The KSampler node's widgets (ComfyUI names and semantics) to a scheduler. */
export function schedulerForKSampler(
  widgets: { sampler_name: string; scheduler: string; steps: number; denoise?: number },
  config: SchedulerConfigInput = {},
  window: Pick<SchedulerOptions, 'startStep' | 'endStep' | 'forceFullDenoise'> = {},
): Scheduler {
  return createScheduler(widgets.sampler_name, config, widgets.steps, {
    schedule: assertScheduleName(widgets.scheduler),
    denoise: widgets.denoise ?? 1,
    ...window,
  });
}
