import { combo, defineNode, float, socket } from '@gategraph/core';
import { elementwise, maximum, minimum, plus, resizeImage, times, type Tensor } from '@gategraph/diffusion';

/** ComfyUI's ImageBlend modes, each `(base, top) -> blended` per element. */
const MODES = {
  normal: (_a: number, b: number) => b,
  multiply: (a: number, b: number) => a * b,
  screen: (a: number, b: number) => 1 - (1 - a) * (1 - b),
  overlay: (a: number, b: number) => (a <= 0.5 ? 2 * a * b : 1 - 2 * (1 - a) * (1 - b)),
  soft_light: (a: number, b: number) => {
    const g = a <= 0.25 ? ((16 * a - 12) * a + 4) * a : Math.sqrt(a);
    return b <= 0.5 ? a - (1 - 2 * b) * a * (1 - a) : a + (2 * b - 1) * (g - a);
  },
  difference: (a: number, b: number) => a - b,
} as const;

/**
 * A port of ComfyUI's ImageBlend, written with the tensor helpers of @gategraph/diffusion where ComfyUI uses
 * torch: image2 is resized to image1's size when they differ, and broadcast over image1's batch (a batch of
 * one blends into every image), then `image1 * (1 - factor) + blended * factor`, clamped to 0..1.
 * Where it differs: ComfyUI resizes image2 bicubically, this node bilinearly.
 */
export const ImageBlend = defineNode({
  id: 'ImageBlend',
  displayName: 'Image Blend',
  category: 'examples/image',
  description: 'Blends two images with a blend mode and a factor (ComfyUI\'s ImageBlend).',
  inputs: {
    // IMAGE values are @gategraph/diffusion tensors [batch, height, width, channels] in 0..1.
    image1: socket<Tensor>('IMAGE'),
    image2: socket<Tensor>('IMAGE', { tooltip: 'Resized to image1 when the sizes differ; a batch of one blends into every image of image1.' }),
    blend_factor: float({ default: 0.5, min: 0, max: 1, step: 0.01 }),
    blend_mode: combo(Object.keys(MODES), { default: 'normal' }),
  },
  outputs: [{ type: 'IMAGE' }],
  execute({ image1, image2, blend_factor, blend_mode }) {
    const [, height, width] = image1.shape as [number, number, number, number];
    const top: Tensor = image2.shape[1] === height && image2.shape[2] === width ? image2 : resizeImage(image2, width, height);
    const blended = elementwise(image1, top, MODES[blend_mode as keyof typeof MODES]);
    const mixed = plus(times(image1, 1 - blend_factor), times(blended, blend_factor));
    return [minimum(maximum(mixed, 0), 1)];
  },
});
