/**
 * The guidance-scale embedding an LCM-distilled UNet takes as `timestep_cond` (Latent Consistency Models, Luo et
 * al. 2023: guidance is distilled into the model, so there is no second, unconditional pass; the scale w goes in
 * as an embedding instead). Sinusoidal, like the timestep embedding, of (w - 1) * 1000, as diffusers'
 * LatentConsistencyModelPipeline computes it (w_embedding of guidance_scale - 1).
 */
import type { Tensor } from './tensor.ts';

export function guidanceScaleEmbedding(guidanceScale: number, dim: number): Tensor {
  const w = (guidanceScale - 1) * 1000;
  const half = Math.floor(dim / 2);
  const data = new Float32Array(dim); // an odd width ends with a zero, as the reference pads it
  // Computed in float32 as the reference does (torch.float32 arange, exp, sin, cos), rounded at each step.
  const step = Math.fround(Math.log(10000) / (half - 1));
  for (let k = 0; k < half; k++) {
    const frequency = Math.fround(Math.exp(Math.fround(-step * k)));
    const angle = Math.fround(w * frequency);
    data[k] = Math.sin(angle);
    data[half + k] = Math.cos(angle);
  }
  return { data, shape: [1, dim] };
}
