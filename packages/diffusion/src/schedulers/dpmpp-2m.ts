/**
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2, data prediction, multistep), in
 * k-diffusion's sigma form as ComfyUI's `dpmpp_2m`. With lambda = -log sigma and h = lambda' - lambda:
 *   first step, or a step to sigma' = 0:  x' = (sigma'/sigma) x + (1 - e^-h) D
 *   otherwise, with r = h_last / h:       x' = (sigma'/sigma) x + (1 - e^-h) ((1 + 1/(2r)) D - (1/(2r)) D_prev)
 * (equivalently x' = (sigma'/sigma) x - c1 D - c2 (D - D_prev), c1 = e^-h - 1, c2 = c1 h / (2 h_last)).
 * Keeps the previous denoised estimate, so steps must run in order.
 */
import { axpby, axpbypcz, type Tensor } from '../tensor.ts';
import { SigmaScheduler } from './sigma-scheduler.ts';

export class DpmPp2mScheduler extends SigmaScheduler {
  readonly sampler = 'dpmpp_2m';
  readonly stochastic = false;
  private previous: Tensor | undefined;
  private expected = 0;

  step(modelOutput: Tensor, i: number, sample: Tensor): Tensor {
    const s = this.sigma(i);
    if (i !== 0 && i !== this.expected) {
      throw new Error(`dpmpp_2m is a multistep method: steps must run in order 0, 1, 2, ...; got step ${i}, expected ${this.expected}`);
    }
    if (i === 0) this.previous = undefined;
    this.expected = i + 1;
    const next = this.sigmas[i + 1]!;
    const d = this.denoised(modelOutput, i, sample);
    let out: Tensor;
    if (next === 0) {
      out = d; // e^-h = 0: the denoised estimate itself
    } else {
      const h = Math.log(s) - Math.log(next);
      const ratio = next / s;
      const c = -Math.expm1(-h); // 1 - e^-h, accurate for small h
      if (this.previous === undefined) {
        out = axpby(ratio, sample, c, d);
      } else {
        const hLast = Math.log(this.sigmas[i - 1]!) - Math.log(s);
        const k = 1 / (2 * (hLast / h));
        out = axpbypcz(ratio, sample, c * (1 + k), d, -c * k, this.previous);
      }
    }
    this.previous = d;
    return out;
  }
}
