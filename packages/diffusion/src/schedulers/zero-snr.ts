/**
 * Zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
 * arXiv 2305.08891, Algorithm 1; diffusers' `rescale_betas_zero_snr`). SD's schedules end at abar_T ~ 0.0047: training never sees
 * pure noise, yet sampling starts from it, which is why such models cannot make very dark or bright images.
 * Models trained with the rescaled schedule end at abar_T = 0 exactly. They are v-prediction models: at SNR 0 the
 * UNet input is pure noise, and an epsilon prediction says nothing about the image (x0 = (x - eps) / 0).
 */

/**
 * Algorithm 1 on alphas_cumprod: sqrt(abar) is shifted so the last value is 0 and scaled so the first one is
 * unchanged, then squared again. diffusers converts the result back to betas (last beta = 1) and cumprods them
 * again; working on abar directly gives the same values without that round trip.
 */
export function rescaleZeroTerminalSnr(alphasCumprod: Float64Array): Float64Array {
  const n = alphasCumprod.length;
  const first = Math.sqrt(alphasCumprod[0]!);
  const last = Math.sqrt(alphasCumprod[n - 1]!);
  const gain = first / (first - last);
  const out = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    const shifted = (Math.sqrt(alphasCumprod[t]!) - last) * gain;
    out[t] = shifted * shifted;
  }
  return out;
}

/**
 * The betas of a schedule given its alphas_cumprod (what diffusers stores in `scheduler.betas` after the rescale):
 * beta_0 = 1 - abar_0, beta_t = 1 - abar_t / abar_{t-1}; a zero-SNR schedule ends with beta = 1.
 */
export function betasFromAlphasCumprod(alphasCumprod: Float64Array): Float64Array {
  const betas = new Float64Array(alphasCumprod.length);
  for (let t = 0; t < betas.length; t++) {
    betas[t] = 1 - (t === 0 ? alphasCumprod[0]! : alphasCumprod[t]! / alphasCumprod[t - 1]!);
  }
  return betas;
}

/**
 * ComfyUI's stand-in for the last abar of a zero-SNR schedule (comfy/model_sampling.py,
 * rescale_zero_terminal_snr_sigmas: `alphas_bar[-1] = 4.8973451890853435e-08`). The k-diffusion samplers work
 * in sigma = sqrt((1 - abar) / abar), which is infinite at abar = 0, so ComfyUI gives the last timestep a
 * finite sigma_max = sqrt((1 - c) / c) ~ 4518.76 (diffusers' Euler-type schedulers do the same with 2^-24,
 * sigma ~ 4096). ComfyUI gives no derivation; for SD's schedule (scaled_linear 0.00085..0.012, T = 1000) the
 * constant is, to 4e-9 relative, abar_998^2 / abar_997 of the rescaled schedule: the value abar would take if
 * it kept falling by the ratio of its last two non-zero steps (~0.249). It does not depend on the model's
 * schedule in ComfyUI; we use it as is, so sigma_max, the karras / exponential endpoints and the UNet's
 * timesteps match ComfyUI's for SD-family models.
 */
export const COMFY_ZSNR_TERMINAL_ALPHA_CUMPROD = 4.8973451890853435e-8;

/**
 * The last abar the sigma-based samplers run on for a rescaled schedule: ComfyUI's constant, unless the
 * schedule's own second-to-last abar is not above it (possible for schedules ComfyUI never rescales, e.g.
 * DDPM's linear 1e-4..0.02, where abar_998 ~ 4.2e-9). Then the constant would make sigma_T smaller than
 * sigma_{T-1}, and the timestep lookup (nearest log sigma, which needs increasing sigmas) would break; we take
 * the same geometric extrapolation the constant approximates for SD, abar_{T-1}^2 / abar_{T-2}.
 */
export function terminalAlphaCumprod(rescaled: Float64Array): number {
  const n = rescaled.length;
  const beforeLast = rescaled[n - 2]!;
  if (COMFY_ZSNR_TERMINAL_ALPHA_CUMPROD < beforeLast) return COMFY_ZSNR_TERMINAL_ALPHA_CUMPROD;
  return (beforeLast * beforeLast) / rescaled[n - 3]!;
}
