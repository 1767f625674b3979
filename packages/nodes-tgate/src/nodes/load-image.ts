import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { rgb8ToImage, type RawImage } from '@gategraph/diffusion';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { listInputImages, resolveInputImage } from '../folders.ts';
import { decodeImageFile } from '../image-files.ts';
import type { Image, Mask } from '../types.ts';

/**
 * MASK from the alpha channel, as ComfyUI: 1 where the image is transparent; 64x64 zeros for a frame without
 * alpha. One mask per frame.
 */
function maskOf(frames: readonly RawImage[]): Mask {
  const first = frames[0]!;
  const hasAlpha = first.channels === 2 || first.channels === 4;
  const [height, width] = hasAlpha ? [first.height, first.width] : [64, 64];
  const per = width * height;
  const data = new Float32Array(per * frames.length);
  if (hasAlpha) {
    frames.forEach((raw, f) => {
      for (let p = 0; p < per; p++) data[f * per + p] = 1 - raw.data[p * raw.channels + raw.channels - 1]! / 255;
    });
  }
  return { data, shape: [frames.length, height, width] };
}

/** The file's sha256, read as a stream (an input image may be large, and this runs for every prompt). */
async function fileHash(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export const LoadImage = defineNode({
  id: 'LoadImage',
  displayName: 'Load Image',
  category: 'image',
  description:
    'Loads a PNG, JPEG, WebP, GIF or TIFF image from the input folder (upload one from the editor). The alpha channel becomes the MASK; the frames of an animated image become a batch.',
  inputs: {
    image: combo(listInputImages, { imageUpload: true, tooltip: 'A file in the input folder.' }),
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE', tooltip: 'The image, RGB in 0..1.' },
    { type: 'MASK', name: 'MASK', tooltip: '1 where the image is transparent, 0 where it is opaque.' },
  ],
  // The file can change under the same name (an upload with overwrite): hash the contents of the file execute will
  // read (the host's input folder first) so a changed file loads again.
  async fingerprint({ image }, context) {
    const { file } = resolveInputImage(image ?? '', context.paths?.input);
    if (!file) return 'missing';
    return await fileHash(file);
  },
  async execute({ image }, ctx) {
    const { file, searched } = resolveInputImage(image, ctx.paths.input);
    if (!file) throw new NodeInputError(`image "${image}": no such file in ${searched.join(', ')}; upload it or pick another one`, 'image');
    const frames = await decodeImageFile(await readFile(file));
    if (typeof frames === 'string') throw new NodeInputError(`image "${image}" cannot be loaded: ${frames}`, 'image');
    const pixels: Image = rgb8ToImage(frames);
    return [pixels, maskOf(frames)];
  },
});
