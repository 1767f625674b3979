import { defineNode, NodeInputError, socket, string, type ApiPromptLike } from '@gategraph/core';
import { asciiJson, encodePng, imageToRgb8, type Tensor } from '@gategraph/diffusion';
import { randomBytes } from 'node:crypto';
import { saveTarget, writeNumbered, type SavedFile } from '../image-files.ts';

/**
 * The PNG text chunks ComfyUI writes: `prompt` (the API prompt) and one chunk per key of extra_pnginfo (the
 * editor sends `workflow`, the UI graph), JSON with non-ASCII escaped so every chunk is plain tEXt.
 */
function metadata(prompt: ApiPromptLike | undefined, extra: Record<string, unknown> | undefined): Record<string, string> {
  const text: Record<string, string> = {};
  if (prompt !== undefined) text.prompt = asciiJson(prompt);
  for (const [key, value] of Object.entries(extra ?? {})) text[key] = asciiJson(value);
  return text;
}

/** What a value on an IMAGE link is, for a message that says what came instead of a tensor. */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value !== 'object') return `a ${typeof value} (${JSON.stringify(value)?.slice(0, 40)})`;
  const shape = (value as { shape?: unknown }).shape;
  return Array.isArray(shape) ? `a tensor of shape [${shape.join(', ')}]` : `an object with keys ${Object.keys(value).slice(0, 6).join(', ') || '(none)'}`;
}

/**
 * The images input checked before anything is written: an IMAGE is [batch >= 1, height, width, 1..4 channels] of
 * float32 values; anything else (a pack node returning another kind of value on an IMAGE link, a LATENT's
 * shape) is refused on the input, saying what came.
 */
export function checkImages(images: unknown): Tensor {
  const t = images as Partial<Tensor> | null | undefined;
  const shape = t?.shape;
  const ok =
    Array.isArray(shape) &&
    shape.length === 4 &&
    shape.every((d) => Number.isInteger(d) && d > 0) &&
    shape[3]! <= 4 &&
    t!.data instanceof Float32Array &&
    t!.data.length === shape.reduce((a, b) => a * b, 1);
  if (!ok) {
    throw new NodeInputError(`images: expected an IMAGE (a tensor [batch, height, width, channels 1-4] of floats in 0..1) but got ${describeValue(images)}`, 'images');
  }
  return t as Tensor;
}

/** One PNG per batch item; bytes truncated like ComfyUI's (np.clip(255 * x).astype(uint8)). */
function encodeBatch(images: Tensor, text: Record<string, string>): Uint8Array[] {
  return imageToRgb8(images, { rounding: 'truncate' }).map((raw) => encodePng(raw, text));
}

/** ComfyUI's `%width%` / `%height%` placeholders in the prefix (`%batch_num%` is per file, in writeNumbered). */
function expandPrefix(prefix: string, images: Tensor): string {
  const [, height, width] = images.shape;
  return prefix.replace(/%width%/g, String(width)).replace(/%height%/g, String(height));
}

export const SaveImage = defineNode({
  id: 'SaveImage',
  displayName: 'Save Image',
  category: 'image',
  description:
    'Saves images as PNG files in the output folder, with the workflow in the file (drop it on the editor to get the graph back). ' +
    'Files are named <prefix>_00001_.png, never overwriting.',
  inputs: {
    images: socket('IMAGE', { tooltip: 'The images to save.' }),
    filename_prefix: string({
      default: 'ComfyUI',
      tooltip:
        'File name start; may include subfolders of the output folder ("portraits/cat") and %width%, %height%, %batch_num%. ' +
        'The file gets _00001_.png etc. appended.',
    }),
  },
  hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  outputs: [],
  outputNode: true,
  execute({ images: received, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const images = checkImages(received);
    const target = saveTarget(ctx.paths.output, expandPrefix(filename_prefix, images));
    const files = encodeBatch(images, metadata(prompt, extra_pnginfo));
    const saved: SavedFile[] = writeNumbered(target, files, 'output');
    ctx.log.info(`saved ${saved.map((f) => (f.subfolder ? `${f.subfolder}/${f.filename}` : f.filename)).join(', ')}`);
    return { ui: { images: saved } };
  },
});

export const PreviewImage = defineNode({
  id: 'PreviewImage',
  displayName: 'Preview Image',
  category: 'image',
  description: 'Shows images in the editor without keeping them: they are written to the temp folder, which the host may clear.',
  inputs: {
    images: socket('IMAGE', { tooltip: 'The images to preview.' }),
  },
  hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  outputs: [],
  outputNode: true,
  execute({ images: received, prompt, extra_pnginfo }, ctx) {
    const images = checkImages(received);
    // A random suffix per run, as ComfyUI's "ComfyUI_temp_xxxxx": previews of two prompts never collide.
    const suffix = Array.from(randomBytes(5), (b) => 'abcdefghijklmnopqrstuvwxyz'[b % 26]).join('');
    const target = saveTarget(ctx.paths.temp, `gategraph_temp_${suffix}`);
    const files = encodeBatch(images, metadata(prompt, extra_pnginfo));
    return { ui: { images: writeNumbered(target, files, 'temp') } };
  },
});
