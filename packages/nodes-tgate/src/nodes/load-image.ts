import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { rgb8ToImage, type RawImage } from '@gategraph/diffusion';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { listInputImages, resolveInputImage } from '../folders.ts';
import { decodeImageFile } from '../image-files.ts';
import type { Image, Mask } from '../types.ts';

/** MASK from the alpha channel, as ComfyUI: 1 where the image is transparent; 64x64 zeros when there is no alpha. */
function maskOf(raw: RawImage): Mask {
  if (raw.channels !== 2 && raw.channels !== 4) return { data: new Float32Array(64 * 64), shape: [1, 64, 64] };
  const n = raw.width * raw.height;
  const data = new Float32Array(n);
  for (let p = 0; p < n; p++) data[p] = 1 - raw.data[p * raw.channels + raw.channels - 1]! / 255;
  return { data, shape: [1, raw.height, raw.width] };
}

export const LoadImage = defineNode({
  id: 'LoadImage',
  displayName: 'Load Image',
  category: 'image',
  description: 'Loads a PNG or JPEG from the input folder (upload one from the editor). The alpha channel becomes the MASK.',
  inputs: {
    image: combo(listInputImages, { imageUpload: true, tooltip: 'A file in the input folder.' }),
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE', tooltip: 'The image, RGB in 0..1.' },
    { type: 'MASK', name: 'MASK', tooltip: '1 where the image is transparent, 0 where it is opaque.' },
  ],
  // The file can change under the same name: hash its contents so a changed file loads again.
  fingerprint({ image }) {
    const { file } = resolveInputImage(image ?? '', undefined);
    if (!file) return 'missing';
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  },
  execute({ image }, ctx) {
    const { file, searched } = resolveInputImage(image, ctx.paths.input);
    if (!file) throw new NodeInputError(`image "${image}": no such file in ${searched.join(', ')}; upload it or pick another one`, 'image');
    const decoded = decodeImageFile(readFileSync(file));
    if (typeof decoded === 'string') throw new NodeInputError(`image "${image}" cannot be loaded: ${decoded}`, 'image');
    const pixels: Image = rgb8ToImage(decoded);
    return [pixels, maskOf(decoded)];
  },
});
