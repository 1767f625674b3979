/**
 * SaveLatent and LoadLatent: ComfyUI's `.latent` files (latent-file.ts says what is in them and in which units),
 * to keep a latent between prompts or take one to or from ComfyUI.
 */
import { combo, defineNode, NodeInputError, socket, string, type ApiPromptLike, type ComboContext } from '@gategraph/core';
import { asciiJson, SafetensorsError, type Tensor } from '@gategraph/diffusion';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { compareCodePoints, inputSearchFolders, resolveInputImage } from '../folders.ts';
import { highestCounter, saveTarget, type SavedFile, type SaveTarget } from '../image-files.ts';
import { encodeLatentFile, FIRST_FORMAT_SCALE, readLatentFile, SCALING_FACTOR_KEY, UNITS_KEY } from '../latent-file.ts';
import type { Latent, VaeRef } from '../types.ts';

const EXTENSION = '.latent';

/** ComfyUI's metadata: `prompt` (empty when there is none) and one key per extra_pnginfo entry, JSON like Python's. */
function promptMetadata(prompt: ApiPromptLike | undefined, extra: Record<string, unknown> | undefined): Record<string, string> {
  const metadata: Record<string, string> = { prompt: prompt === undefined ? '' : asciiJson(prompt) };
  for (const [key, value] of Object.entries(extra ?? {})) metadata[key] = asciiJson(value);
  return metadata;
}

/** Writes `<name>_<counter>_.latent`, the counter after the highest of the prefix in the folder, never overwriting. */
function writeNumbered(target: SaveTarget, bytes: Uint8Array): SavedFile {
  let counter = highestCounter(target.folder, target.name) + 1;
  for (;;) {
    const filename = `${target.name}_${String(counter).padStart(5, '0')}_${EXTENSION}`;
    counter++;
    try {
      writeFileSync(join(target.folder, filename), bytes, { flag: 'wx' });
      return { filename, subfolder: target.subfolder, type: 'output' };
    } catch (error) {
      // Another prompt (or process) took this number meanwhile: try the next one.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** The samples of a LATENT input, refused with the input's name when they are not [B, C, h, w]. */
function samplesOf(latent: Latent, input: string): Tensor {
  const samples = (latent as Partial<Latent> | undefined)?.samples;
  if (!samples?.shape || samples.shape.length !== 4 || !(samples.data instanceof Float32Array)) {
    throw new NodeInputError(`${input} is not a LATENT (expected { samples: [batch, channels, height, width] })`, input);
  }
  return samples;
}

/** Refuses a VAE whose latents have another channel count than the tensor's. */
function checkChannels(vae: VaeRef, channels: number, what: string): void {
  const expected = vae.model.io.vae.latentChannels;
  if (channels !== expected) {
    throw new NodeInputError(`vae: ${what} has ${channels} latent channels but ${vae.model.name}'s VAE works on ${expected}: connect the VAE of the model that made it`, 'vae');
  }
}

function scaled(samples: Tensor, factor: number): Tensor {
  if (factor === 1) return samples;
  const data = new Float32Array(samples.data.length);
  for (let i = 0; i < data.length; i++) data[i] = samples.data[i]! * factor;
  return { data, shape: [...samples.shape] };
}

export const SaveLatent = defineNode({
  id: 'SaveLatent',
  displayName: 'Save Latent',
  category: '_for_testing',
  description:
    'Saves a latent as ComfyUI does: output/<prefix>_00001_.latent, a safetensors file with the prompt and workflow in its metadata. ' +
    'Load it back with LoadLatent (copy it to the input folder). Connect the VAE to write it in the units ComfyUI reads.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The latent to save (the noise mask and batch indices are not saved, as in ComfyUI).' }),
    filename_prefix: string({
      default: 'latents/ComfyUI',
      tooltip: 'File name start, may include subfolders of the output folder ("latents/cat"); _00001_.latent etc. is appended.',
    }),
    vae: socket('VAE', {
      optional: true,
      tooltip:
        "Optional: the VAE of the model that made the latent. With it the file holds the VAE's own values, as ComfyUI's files do, so ComfyUI reads it right; " +
        'without it the values are written as they are, which ComfyUI reads right only for SD-1.x/2.x models. LoadLatent reads both.',
    }),
  },
  hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  outputs: [],
  outputNode: true,
  execute({ samples: latent, filename_prefix, vae, prompt, extra_pnginfo }, ctx) {
    const samples = samplesOf(latent, 'samples');
    const target = saveTarget(ctx.paths.output, filename_prefix);
    const metadata = promptMetadata(prompt, extra_pnginfo);
    let bytes: Uint8Array;
    if (vae) {
      checkChannels(vae, samples.shape[1]!, 'samples');
      const factor = vae.model.io.vae.scalingFactor;
      metadata[SCALING_FACTOR_KEY] = String(factor);
      bytes = encodeLatentFile(scaled(samples, 1 / factor), true, metadata);
    } else {
      metadata[UNITS_KEY] = 'model';
      bytes = encodeLatentFile(samples, false, metadata);
    }
    const saved = writeNumbered(target, bytes);
    ctx.log.info(`saved ${saved.subfolder ? `${saved.subfolder}/${saved.filename}` : saved.filename}`);
    return { ui: { latents: [saved] } };
  },
});

/** The LoadLatent combo: `.latent` files directly in the input folders (ComfyUI lists its input folder's top level). */
export function listInputLatents(context: ComboContext = {}): string[] {
  const names = new Set<string>();
  for (const folder of new Set([...(context.paths ? [resolve(context.paths.input)] : []), ...inputSearchFolders()])) {
    let entries: string[] = [];
    try {
      entries = readdirSync(folder);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.endsWith(EXTENSION)) continue;
      try {
        if (statSync(join(folder, entry)).isFile()) names.add(entry);
      } catch {
        // Gone between the listing and the stat: not offered.
      }
    }
  }
  return [...names].sort(compareCodePoints);
}

/** What turns the file's tensor into our LATENT's units (see latent-file.ts), or a message saying what is missing. */
function multiplierFor(file: ReturnType<typeof readLatentFile>, vae: VaeRef | undefined, name: string): number {
  if (file.metadata[UNITS_KEY] === 'model') return 1;
  const wanted = vae?.model.io.vae.scalingFactor;
  if (file.versioned) {
    const recorded = Number(file.metadata[SCALING_FACTOR_KEY]);
    const factor = wanted ?? (Number.isFinite(recorded) && recorded > 0 ? recorded : undefined);
    if (factor !== undefined) return factor;
  } else if (wanted !== undefined) {
    return wanted / FIRST_FORMAT_SCALE;
  }
  throw new NodeInputError(
    `latent "${name}" holds the VAE's own values (a file written by ComfyUI) and does not say which VAE made it: ` +
      "connect the VAE of the checkpoint that will use it to the vae input, so the values are scaled by that VAE's scaling factor",
    'vae',
  );
}

export const LoadLatent = defineNode({
  id: 'LoadLatent',
  displayName: 'Load Latent',
  category: '_for_testing',
  description:
    "Loads a .latent file (ComfyUI's SaveLatent format, or this SaveLatent's) from the input folder. " +
    "Files written by ComfyUI hold the VAE's own values: connect the VAE of the checkpoint that will use the latent so they are scaled for it.",
  inputs: {
    latent: combo(listInputLatents, { tooltip: 'A .latent file in the input folder (copy one from output/latents).' }),
    vae: socket('VAE', {
      optional: true,
      tooltip:
        "Optional: the VAE of the checkpoint that will use the latent. Needed for files written by ComfyUI (they hold the VAE's own values); " +
        'files written here say their units themselves.',
    }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The loaded latent.' }],
  // ComfyUI's IS_CHANGED: the file's sha256, so a file replaced under the same name loads again.
  async fingerprint({ latent }, context) {
    const { file } = resolveInputImage(latent ?? '', context.paths?.input);
    if (!file) return 'missing';
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash);
    return hash.digest('hex');
  },
  execute({ latent: name, vae }, ctx) {
    const { file, searched } = resolveInputImage(name, ctx.paths.input);
    if (!file) throw new NodeInputError(`latent "${name}": no such file in ${searched.join(', ')}; copy it to the input folder or pick another one`, 'latent');
    let contents: ReturnType<typeof readLatentFile>;
    try {
      contents = readLatentFile(file);
    } catch (error) {
      if (error instanceof SafetensorsError) throw new NodeInputError(`latent "${name}" cannot be loaded: ${error.problem}`, 'latent');
      throw error;
    }
    if (vae) checkChannels(vae, contents.tensor.shape[1]!, `latent "${name}"`);
    const samples = scaled(contents.tensor, multiplierFor(contents, vae, name));
    const loaded: Latent = { samples };
    return [loaded];
  },
});
