/**
 * Writing images the way ComfyUI's SaveImage names them, and reading input images.
 *
 * Names: `<prefix>_00001_.png`, the counter continuing after the highest one already in the folder for that
 * prefix (so deleting old files never makes a new one reuse a number below the highest). `filename_prefix` may
 * hold subfolders (`portraits/cat`) but must stay inside the output folder: `..`, absolute paths and symlinks
 * leading out are refused. Files are created exclusively: an existing file is never overwritten (if another
 * process takes a number meanwhile, the next free one is used).
 */
import { NodeInputError } from '@gategraph/core';
import type { RawImage } from '@gategraph/diffusion';
import { imageSize } from 'image-size';
import { mkdirSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import sharp, { type Metadata } from 'sharp';

export interface SavedFile {
  filename: string;
  subfolder: string;
  type: 'output' | 'temp' | 'input';
}

export interface SaveTarget {
  /** Absolute folder the files go in (created if needed). */
  folder: string;
  /** The folder relative to the base, '/'-separated ('' for the base itself): the UI's `subfolder`. */
  subfolder: string;
  /** The file name part of the prefix. */
  name: string;
}

/** What file systems allow for one name, in bytes. */
const MAX_NAME_BYTES = 255;
/** What saving adds to the prefix's name: `_00001_.png` (the counter grows past 5 digits after 99,999 files). */
const NAME_SUFFIX_BYTES = '_000001_.webp'.length;

/** Splits a prefix into folder and name, refusing anything that would leave `base`. */
export function saveTarget(base: string, prefix: string, input = 'filename_prefix'): SaveTarget {
  const normalized = prefix.replace(/\\/g, '/').trim();
  const refuse = (why: string) =>
    new NodeInputError(`${input} "${prefix}": ${why}; saving outside the output folder is not allowed. Use a name like "gategraph" or "subfolder/name"`, input);
  if (normalized === '' || normalized.endsWith('/')) throw new NodeInputError(`${input} "${prefix}" has no file name part; use e.g. "gategraph" or "subfolder/name"`, input);
  if (isAbsolute(normalized) || /^[a-zA-Z]:/.test(normalized)) throw refuse('it is an absolute path');
  if (normalized.includes('\0')) throw refuse('it contains a NUL character');
  // The longest name a file system takes is 255 bytes; the counter and extension come on top (_00001_.png).
  const longest = normalized.split('/').reduce((most, part) => Math.max(most, Buffer.byteLength(part)), 0);
  if (longest + NAME_SUFFIX_BYTES > MAX_NAME_BYTES) {
    throw new NodeInputError(
      `${input} is too long: a file name may have ${MAX_NAME_BYTES} bytes, and "<name>_00001_.png" would have ${longest + NAME_SUFFIX_BYTES}; use a shorter name`,
      input,
    );
  }
  const root = resolve(base);
  const folder = resolve(root, dirname(normalized));
  const rel = relative(root, folder);
  const leaves = (r: string) => r.split(sep)[0] === '..' || isAbsolute(r);
  if (leaves(rel)) throw refuse(`it points to ${folder}`);
  mkdirSync(folder, { recursive: true });
  // A symlink inside the output folder may still lead out of it.
  const realRoot = realpathSync(root);
  const realFolder = realpathSync(folder);
  const realRel = relative(realRoot, realFolder);
  if (leaves(realRel)) throw refuse(`its folder resolves to ${realFolder} through a symbolic link`);
  return { folder, subfolder: rel.split(sep).join('/'), name: basename(normalized) };
}

/** The highest counter of `<name>_NNNNN_...` files in `folder`, 0 when there is none. */
export function highestCounter(folder: string, name: string): number {
  let highest = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync(folder);
  } catch {
    return 0;
  }
  const lower = name.toLowerCase();
  for (const entry of entries) {
    if (entry.length <= name.length + 1 || entry.slice(0, name.length).toLowerCase() !== lower || entry[name.length] !== '_') continue;
    const digits = /^(\d+)_/.exec(entry.slice(name.length + 1));
    if (digits) highest = Math.max(highest, Number(digits[1]));
  }
  return highest;
}

/**
 * Writes `files` (already encoded) as `<name>_<counter>_.png`, counters continuing after the highest existing
 * one, never overwriting. `%batch_num%` in the name is replaced by each file's index.
 */
export function writeNumbered(target: SaveTarget, files: readonly Uint8Array[], type: SavedFile['type']): SavedFile[] {
  let counter = highestCounter(target.folder, target.name.replace(/%batch_num%/g, '')) + 1;
  const saved: SavedFile[] = [];
  files.forEach((bytes, index) => {
    const stem = target.name.replace(/%batch_num%/g, String(index));
    for (;;) {
      const filename = `${stem}_${String(counter).padStart(5, '0')}_.png`;
      counter++;
      try {
        writeFileSync(join(target.folder, filename), bytes, { flag: 'wx' });
        saved.push({ filename, subfolder: target.subfolder, type });
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
  });
  return saved;
}

/** Raster formats LoadImage reads. Others sharp knows (SVG, PDF, HEIF...) are refused: SVG is a document, not pixels. */
const READABLE_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff']);

/**
 * The most pixels LoadImage decodes (8192 x 8192, all frames together). A 1 MB PNG can declare 16000 x 16000
 * pixels, which decode to gigabytes; the size is read from the file's header first, so such a file is refused
 * before any decoding.
 */
export const MAX_IMAGE_PIXELS = 8192 * 8192;

/**
 * Decodes an image file's bytes to 8-bit RGB or RGBA frames, as ComfyUI's LoadImage reads them: EXIF
 * orientation applied, 16-bit and greyscale images converted to 8-bit RGB (alpha kept), every frame of an
 * animated GIF/WebP. libvips decodes on its own threads, so a large image does not hold up the server's
 * requests meanwhile. Returns a message for people when the file is not a readable image or too large.
 */
export async function decodeImageFile(bytes: Uint8Array): Promise<RawImage[] | string> {
  if (bytes.length === 0) return 'the file is empty';
  const size = headerSize(bytes);
  if (size && size.width * size.height > MAX_IMAGE_PIXELS) return tooLarge(size.width, size.height);
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { pages: -1 }).metadata();
  } catch {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    return `it is not an image in a format LoadImage reads (PNG, JPEG, WebP, GIF, TIFF); it starts with bytes ${head}`;
  }
  const format = metadata.format ?? 'unknown';
  if (!READABLE_FORMATS.has(format)) return `it is a ${format.toUpperCase()} file; LoadImage reads PNG, JPEG, WebP, GIF and TIFF images`;
  const width = metadata.width ?? 0;
  const frameHeight = metadata.pageHeight ?? metadata.height ?? 0;
  const frames = Math.max(1, metadata.pages ?? 1);
  if (width * frameHeight * frames > MAX_IMAGE_PIXELS) return tooLarge(width, frameHeight, frames);
  try {
    const { data, info } = await sharp(bytes, { pages: -1, limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'truncated' })
      .rotate() // EXIF orientation, as ComfyUI's exif_transpose
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const pageHeight = info.pageHeight ?? info.height;
    const frameBytes = info.width * pageHeight * info.channels;
    const count = Math.max(1, Math.floor(data.length / frameBytes));
    return Array.from({ length: count }, (_, i) => ({
      width: info.width,
      height: pageHeight,
      channels: info.channels,
      data: new Uint8Array(data.buffer, data.byteOffset + i * frameBytes, frameBytes),
    }));
  } catch (error) {
    return `it looks like a ${format.toUpperCase()} but cannot be decoded (${(error as Error).message.replace(/^Input buffer /, '')}); the file may be truncated or damaged`;
  }
}

function tooLarge(width: number, height: number, frames = 1): string {
  const pixels = width * height * frames;
  return (
    `it is ${width}x${height} pixels${frames > 1 ? ` x ${frames} frames` : ''} (${(pixels / 1e6).toFixed(1)} megapixels); images of up to ` +
    `${(MAX_IMAGE_PIXELS / 1e6).toFixed(1)} megapixels (8192x8192) are loaded: scale it down first`
  );
}

/** Width and height from the image's header, when its format is one image-size reads. */
function headerSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  try {
    const { width, height } = imageSize(bytes);
    return width !== undefined && height !== undefined ? { width, height } : undefined;
  } catch {
    return undefined; // not an image format it knows: the decoders say what is wrong
  }
}
