import type { Tensor } from '../tensor.ts';
import type { StepNoise } from './types.ts';

export function isNoiseTensor(noise: StepNoise): noise is Tensor {
  return (noise as Tensor).data instanceof Float32Array;
}

export function checkStep(i: number, steps: number, sampler: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= steps) {
    throw new RangeError(`${sampler}: step index ${i} is outside this schedule's ${steps} step(s) (0..${steps - 1})`);
  }
}
