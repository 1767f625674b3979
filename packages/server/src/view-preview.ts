/**
 * `/view?...&preview=<format>;<quality>`: the image re-encoded smaller for display, as ComfyUI's view route
 * does it (the editor and some clients ask for `preview=webp;50` thumbnails instead of full PNGs).
 *
 * ComfyUI's rules, kept as they are so clients get what they get from ComfyUI:
 * - the format is the text before the first `;`: `jpeg` or `webp`; anything else (`png`, `jpg`, `avif`, empty)
 *   gives WebP, and so does any `channel` value containing `a` (`a`, `rgba`): only WebP keeps transparency;
 * - the quality is the text after the last `;` when it is all digits, otherwise 90;
 * - JPEG, and `channel=rgb` with either format, drop the alpha channel (values kept, not composited);
 * - the answer is `image/<format>` with the original file name in Content-Disposition, no metadata (the
 *   PNG's `prompt`/`workflow` chunks stay in the full file).
 * Where ComfyUI fails with a 500 we answer better: a quality above 100 is taken as 100 and 0 as 1 (the
 * encoders' range), and a file that is not a readable image gets a 400 saying so.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';

export type PreviewFormat = 'webp' | 'jpeg';

export interface PreviewRequest {
  format: PreviewFormat;
  /** 1..100. */
  quality: number;
  /** Drop the alpha channel (JPEG has none; `channel=rgb` asks for none). */
  dropAlpha: boolean;
}

/** ComfyUI's default when `preview` names no quality. */
export const DEFAULT_PREVIEW_QUALITY = 90;

/** Reads the `preview` and `channel` query values the way ComfyUI's view route does. */
export function parsePreviewRequest(preview: string, channel = ''): PreviewRequest {
  const parts = preview.split(';');
  const asked = parts[0] ?? '';
  const format: PreviewFormat = (asked === 'webp' || asked === 'jpeg') && !channel.includes('a') ? asked : 'webp';
  const last = parts.at(-1) ?? '';
  const quality = /^\d+$/.test(last) ? Math.min(100, Math.max(1, Number(last))) : DEFAULT_PREVIEW_QUALITY;
  return { format, quality, dropAlpha: format === 'jpeg' || channel === 'rgb' };
}

/**
 * The most pixels /view decodes for a preview or a channel (8192 x 8192): checked by libvips from the header,
 * before decoding, so a small file declaring 16000 x 16000 pixels cannot take gigabytes.
 */
export const MAX_DECODED_PIXELS = 8192 * 8192;

/** The file asked for through /view is not an image sharp can read (a text file, a truncated PNG...). */
export class UnreadableImageError extends Error {
  override name = 'UnreadableImageError';
}

/** Re-encodes the image in `file` (its first frame) as asked; `name` is how errors call the file. */
export async function encodePreview(file: string, name: string, request: PreviewRequest): Promise<{ body: Buffer; contentType: string }> {
  // Read into memory rather than handing libvips the path: its operation cache keys on the path and could
  // answer with the old image after an upload with overwrite=true replaced the file.
  const source = await readFile(file);
  let image = sharp(source, { limitInputPixels: MAX_DECODED_PIXELS });
  try {
    const { width = 0, height = 0 } = await image.metadata();
    if (width * height > MAX_DECODED_PIXELS) throw new Error(`it is ${width}x${height} pixels, above the ${MAX_DECODED_PIXELS} pixels previews are made of`);
  } catch (error) {
    throw new UnreadableImageError(
      `Cannot make a preview of ${JSON.stringify(name)}: it is not an image this server can read (${(error as Error).message}); ask without "preview" to get the file as it is`,
    );
  }
  if (request.dropAlpha) image = image.removeAlpha();
  image = request.format === 'jpeg' ? image.jpeg({ quality: request.quality }) : image.webp({ quality: request.quality });
  try {
    return { body: await image.toBuffer(), contentType: `image/${request.format}` };
  } catch (error) {
    throw new UnreadableImageError(
      `Cannot make a preview of ${JSON.stringify(name)}: the image could not be decoded (${(error as Error).message}); ask without "preview" to get the file as it is`,
    );
  }
}
