/**
 * Euler (Karras et al. 2022, Algorithm 2 without churn): x' = x + (sigma' - sigma) * (x - D) / sigma, where D is
 * the denoised estimate, i.e. x' = (sigma'/sigma) x + (1 - sigma'/sigma) D. ComfyUI's `euler`.
 */
import { axpby, type Tensor } from '../tensor.ts';
import { SigmaScheduler } from './sigma-scheduler.ts';

export class EulerScheduler extends SigmaScheduler {
  readonly sampler = 'euler';
  readonly stochastic = false;

  step(modelOutput: Tensor, i: number, sample: Tensor): Tensor {
    const s = this.sigma(i);
    const next = this.sigmas[i + 1]!;
    const d = this.denoised(modelOutput, i, sample);
    const ratio = next / s;
    return axpby(ratio, sample, 1 - ratio, d, d);
  }
}
