/**
 * ComfyUI's LoadImageMask: one channel of an image file as a MASK. The alpha channel is inverted (transparent =
 * 1 = masked, as LoadImage's MASK), the colour channels are taken as they are (white = 1). An image without
 * alpha counts as opaque, so its alpha mask is all 0. Only the first frame of an animated file is read.
 */
import { combo, defineNode, NodeInputError } from '@gategraph/core';
import type { RawImage } from '@gategraph/diffusion';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { listInputImages, resolveInputImage } from '../folders.ts';
import { decodeImageFile } from '../image-files.ts';
import type { Mask } from '../types.ts';

const MASK_CHANNELS = ['alpha', 'red', 'green', 'blue'] as const;
type MaskChannel = (typeof MASK_CHANNELS)[number];

/** The mask of one decoded frame (8-bit grey, grey + alpha, RGB or RGBA). */
export function frameMask(frame: RawImage, channel: MaskChannel): Mask {
  const { width, height, channels } = frame;
  const hasAlpha = channels === 2 || channels === 4;
  const per = width * height;
  const data = new Float32Array(per);
  if (channel === 'alpha') {
    if (hasAlpha) for (let p = 0; p < per; p++) data[p] = 1 - Math.fround(frame.data[p * channels + channels - 1]! / 255);
  } else {
    // A grey image has one colour channel: red, green and blue are all of it (Pillow's convert("RGBA")).
    const c = channels >= 3 ? MASK_CHANNELS.indexOf(channel) - 1 : 0;
    for (let p = 0; p < per; p++) data[p] = frame.data[p * channels + c]! / 255;
  }
  return { data, shape: [1, height, width] };
}

/** The file's sha256, read as a stream, so a changed file under the same name loads again. */
async function fileHash(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export const LoadImageMask = defineNode({
  id: 'LoadImageMask',
  displayName: 'Load Image (as Mask)',
  category: 'mask',
  description:
    'Loads one channel of an image from the input folder as a MASK: alpha gives 1 where the image is transparent, red, green or blue give the channel\'s value (white = 1). ' +
    'Paint a mask in any editor and load it here.',
  inputs: {
    image: combo(listInputImages, { imageUpload: true, tooltip: 'A file in the input folder.' }),
    channel: combo(MASK_CHANNELS, { tooltip: 'The channel that becomes the mask; alpha is inverted (transparent = masked).' }),
  },
  outputs: [{ type: 'MASK', name: 'MASK', tooltip: 'The mask, a batch of one.' }],
  async fingerprint({ image }, context) {
    const { file } = resolveInputImage(image ?? '', context.paths?.input);
    return file ? await fileHash(file) : 'missing';
  },
  async execute({ image, channel }, ctx) {
    const { file, searched } = resolveInputImage(image, ctx.paths.input);
    if (!file) throw new NodeInputError(`image "${image}": no such file in ${searched.join(', ')}; upload it or pick another one`, 'image');
    const frames = await decodeImageFile(await readFile(file));
    if (typeof frames === 'string') throw new NodeInputError(`image "${image}" cannot be loaded: ${frames}`, 'image');
    return [frameMask(frames[0]!, channel)];
  },
});
