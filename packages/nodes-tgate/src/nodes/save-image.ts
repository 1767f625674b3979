import { defineNode, socket, string, type ApiPromptLike } from '@gategraph/core';
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
  execute({ images, filename_prefix, prompt, extra_pnginfo }, ctx) {
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
  execute({ images, prompt, extra_pnginfo }, ctx) {
    // A random suffix per run, as ComfyUI's "ComfyUI_temp_xxxxx": previews of two prompts never collide.
    const suffix = Array.from(randomBytes(5), (b) => 'abcdefghijklmnopqrstuvwxyz'[b % 26]).join('');
    const target = saveTarget(ctx.paths.temp, `gategraph_temp_${suffix}`);
    const files = encodeBatch(images, metadata(prompt, extra_pnginfo));
    return { ui: { images: writeNumbered(target, files, 'temp') } };
  },
});
