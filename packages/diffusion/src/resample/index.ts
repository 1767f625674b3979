// Resampling as ComfyUI does it (comfy.utils.common_upscale): torch's interpolate modes, bislerp for latents,
// Pillow's Lanczos for images, and the centre crop. Checked against PyTorch and Pillow by test/resample.test.ts.
export { interpolate, INTERPOLATE_MODES, type InterpolateMode } from './interpolate.ts';
export { bislerp } from './bislerp.ts';
export { lanczos } from './lanczos.ts';
export {
  commonUpscale,
  centerCrop,
  roundHalfEven,
  IMAGE_UPSCALE_METHODS,
  LATENT_UPSCALE_METHODS,
  CROP_METHODS,
  type UpscaleMethod,
  type CropMethod,
} from './upscale.ts';
export type { Layout } from './grid.ts';
