/**
 * The noise levels of a consistency-distilled model (LCM), as ComfyUI's ModelSamplingDiscreteDistilled has them
 * (comfy_extras/nodes_model_advanced.py, what ModelSamplingDiscrete's "lcm" choice samples with): LCM was
 * distilled on 50 of the 1000 training timesteps (999, 979, ..., 19), so only those levels exist. Every schedule
 * then picks from those 50 levels ('simple' and 'ddim_uniform' count them, 'normal' interpolates between them),
 * and a sigma maps to the training timestep of the nearest of them.
 */
import type { NoiseLevels } from './config.ts';

/** ComfyUI's ModelSamplingDiscreteDistilled.original_timesteps: the timesteps LCM was distilled on. */
export const LCM_ORIGINAL_TIMESTEPS = 50;

/**
 * The table of a distilled model: level x counted from the top is training level T-1 - x * stride (stride =
 * floor(T / 50)), and level i stands for training timestep i * stride + stride - 1 (see NoiseLevels.timestepStride).
 */
export function distilledNoiseLevels(levels: NoiseLevels, originalTimesteps = LCM_ORIGINAL_TIMESTEPS): NoiseLevels {
  if ((levels.timestepStride ?? 1) !== 1) throw new RangeError('distilledNoiseLevels: these levels are distilled already');
  const n = levels.numTrainTimesteps;
  const stride = Math.floor(n / originalTimesteps);
  if (stride < 1) throw new RangeError(`distilledNoiseLevels: ${n} training timesteps cannot be distilled to ${originalTimesteps}`);
  const sigmas = new Float64Array(originalTimesteps);
  for (let x = 0; x < originalTimesteps; x++) sigmas[originalTimesteps - 1 - x] = levels.sigmas[n - 1 - x * stride]!;
  const logSigmas = sigmas.map(Math.log);
  // alphas_cumprod of the kept levels, for what reads the schedule as alphas (abar = 1 / (1 + sigma^2)).
  const alphasCumprod = sigmas.map((s) => 1 / (1 + s * s));
  return {
    numTrainTimesteps: originalTimesteps,
    alphasCumprod,
    sigmas,
    logSigmas,
    sigmaMin: sigmas[0]!,
    sigmaMax: sigmas[originalTimesteps - 1]!,
    timestepStride: stride,
  };
}
