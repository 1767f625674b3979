/**
 * `/view?...&channel=rgb|a` without `preview`: one part of the image as a PNG, as ComfyUI's view route gives it
 * (its mask editor asks for `channel=a` to read a mask and `channel=rgb` for the picture without it).
 *
 * ComfyUI's rules, kept so clients get what they get from ComfyUI:
 * - `rgb`: the colours as an RGB PNG, alpha dropped (not composited: hidden colours stay as they were);
 * - `a`: an RGBA PNG whose colours are black and whose alpha is the image's (fully opaque when it has none);
 * - any other value (`rgba`, the default) is the file as it is, so it is not handled here.
 * The answer has no metadata chunks. Where ComfyUI fails with a 500, a file that is not a readable image gets a
 * `UnreadableImageError` (the route answers 400).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { MAX_DECODED_PIXELS, UnreadableImageError } from './view-preview.ts';

export type ViewChannel = 'rgb' | 'a';

/** The channel asked for when it changes the answer; undefined when the file is sent as it is. */
export function parseViewChannel(channel: string | undefined): ViewChannel | undefined {
  return channel === 'rgb' || channel === 'a' ? channel : undefined;
}

/** The part of the image in `file` that `channel` asks for, as PNG bytes; `name` is how errors call the file. */
export async function extractViewChannel(file: string, name: string, channel: ViewChannel): Promise<Buffer> {
  // Bytes, not the path: libvips caches by path and could answer with an image an overwriting upload replaced.
  const source = await readFile(file);
  try {
    const options = { limitInputPixels: MAX_DECODED_PIXELS };
    if (channel === 'rgb') return await sharp(source, options).removeAlpha().toColourspace('srgb').png().toBuffer();
    const { data, info } = await sharp(source, options).toColourspace('srgb').ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let i = 0; i < data.length; i += 4) data.fill(0, i, i + 3);
    return await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toBuffer();
  } catch (error) {
    throw new UnreadableImageError(
      `Cannot take channel "${channel}" of ${JSON.stringify(name)}: it is not an image this server can read (${(error as Error).message}); ask without "channel" to get the file as it is`,
    );
  }
}
