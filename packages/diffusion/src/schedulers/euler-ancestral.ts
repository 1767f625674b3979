/**
 * Euler ancestral (k-diffusion / ComfyUI `euler_ancestral`): step down to sigma_down with Euler, then add fresh
 * noise of std sigma_up, where sigma_up = min(sigma', eta * sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)) and
 * sigma_down = sqrt(sigma'^2 - sigma_up^2) (so the marginal noise level at the end of the step is sigma').
 * The last step (sigma' = 0) returns the denoised estimate and draws no noise, as ComfyUI does.
 */
import { axpby, axpbypcz, type Tensor } from '../tensor.ts';
import { SigmaScheduler } from './sigma-scheduler.ts';
import type { NoiseLevels, PredictionType } from './config.ts';
import type { ScheduleName } from './sigma-schedules.ts';
import type { StepNoise } from './types.ts';

export function ancestralStep(sigma: number, next: number, eta: number): { sigmaDown: number; sigmaUp: number } {
  if (!eta) return { sigmaDown: next, sigmaUp: 0 };
  const sigmaUp = Math.min(next, eta * Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma)));
  return { sigmaDown: Math.sqrt(next * next - sigmaUp * sigmaUp), sigmaUp };
}

export class EulerAncestralScheduler extends SigmaScheduler {
  readonly sampler = 'euler_ancestral';
  readonly stochastic: boolean;

  constructor(schedule: ScheduleName, predictionType: PredictionType, sigmas: number[], levels: NoiseLevels, readonly eta = 1) {
    super(schedule, predictionType, sigmas, levels);
    if (!(eta >= 0)) throw new RangeError(`euler_ancestral: eta must be >= 0 (got ${eta})`);
    this.stochastic = eta > 0;
  }

  step(modelOutput: Tensor, i: number, sample: Tensor, noise?: StepNoise): Tensor {
    const s = this.sigma(i);
    const { sigmaDown, sigmaUp } = ancestralStep(s, this.sigmas[i + 1]!, this.eta);
    const d = this.denoised(modelOutput, i, sample);
    if (sigmaDown === 0) return d;
    const ratio = sigmaDown / s;
    if (sigmaUp === 0) return axpby(ratio, sample, 1 - ratio, d, d); // eta = 0: plain Euler, no noise needed
    const z = this.drawNoise(noise, sample, i);
    return axpbypcz(ratio, sample, 1 - ratio, d, sigmaUp, z, d);
  }
}
