/**
 * Telling which kind of model a folder (or a file in a models folder) holds, before anything is opened, so a
 * model gategraph does not run is refused with one sentence naming what it is, at validation time, instead of
 * failing later on a misleading symptom ("768 vs 2048: different models", "9 vs 4 channels", "truncated or
 * corrupt"). Read from model_index.json, the folder's components and what the ONNX files declare (their inputs
 * and operators, read without their weights).
 *
 * docs/models.md has the table of these messages; each is tested in test/model-family.test.ts.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { readDeclaredIo, type DeclaredIo } from '@gategraph/onnx-graph';
import { detectCheckpoint } from './checkpoint-family.ts';
import { assertNotPickle, PICKLE_EXTENSIONS } from './pickle-files.ts';
import { UnsupportedModelError } from './unsupported-model.ts';

export { UnsupportedModelError, type UnsupportedKind } from './unsupported-model.ts';

/** What this engine runs: Stable Diffusion 1.x / 2.x ONNX folders (optimum and diffusers layouts). */
const RUNS = 'gategraph runs Stable Diffusion 1.x, 2.x and SDXL ONNX folders';

/** File extensions of single-file checkpoints that users keep next to their model folders. */
export const CHECKPOINT_FILE_EXTENSIONS: readonly string[] = ['.safetensors', '.ckpt', '.pt', '.pth', '.bin'];

/** ONNX components a model folder may hold; every one present is checked for GPU-only operators. */
const ONNX_COMPONENTS = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder'];

/**
 * Throws UnsupportedModelError when `path` is a model gategraph does not run (yet); returns quietly for a
 * folder it runs (or that is too incomplete to tell: opening it then names what is missing).
 */
export function checkSupportedModel(path: string): void {
  if (!existsSync(path)) return;
  if (statSync(path).isFile()) return checkModelFile(path);
  const index = readIndex(path);
  const pipeline = typeof index?._class_name === 'string' ? index._class_name : '';
  const has = (sub: string) => existsSync(join(path, sub));

  // SD3 also has a second (and third) text encoder: it is told apart before SDXL.
  if (/StableDiffusion3/i.test(pipeline) || has('text_encoder_3')) {
    throw new UnsupportedModelError(path, 'sd3', `this is a Stable Diffusion 3 model${pipelineNote(pipeline)} (an MMDiT transformer, three text encoders): ${RUNS}; SD3 is not supported`);
  }
  if (/PixArt/i.test(pipeline)) {
    throw new UnsupportedModelError(path, 'pixart', `this is a PixArt model${pipelineNote(pipeline)} (a DiT transformer with a T5 text encoder): ${RUNS}; PixArt is not supported`);
  }
  if (/Flux/i.test(pipeline)) {
    throw new UnsupportedModelError(path, 'flux', `this is a Flux model${pipelineNote(pipeline)} (a rectified-flow transformer): ${RUNS}; Flux is not supported`);
  }
  if (has('transformer') && !has('unet')) {
    throw new UnsupportedModelError(path, 'transformer', `this model${pipelineNote(pipeline)} denoises with a transformer (transformer/), not a UNet: ${RUNS}`);
  }
  const sdxl = /XL/i.test(pipeline) || has('text_encoder_2') || has('tokenizer_2');
  if (pipeline && !isStableDiffusionPipeline(pipeline)) {
    throw new UnsupportedModelError(path, 'pipeline', `model_index.json names the pipeline ${pipeline}: ${RUNS} (StableDiffusionPipeline and its ONNX / optimum / LCM forms)`);
  }
  const unet = declared(path, 'unet');
  if (unet && !sdxl && unet.inputs.some((i) => i.name === 'text_embeds' || i.name === 'time_ids')) {
    throw new UnsupportedModelError(path, 'sdxl', `its UNet takes text_embeds and time_ids (an SDXL UNet), but the folder has no text_encoder_2/ and tokenizer_2/ to make them`);
  }
  for (const component of ONNX_COMPONENTS) {
    const io = declared(path, component);
    const fused = io?.operators.filter((op) => !op.startsWith('ai.onnx::')) ?? [];
    if (fused.length) {
      throw new UnsupportedModelError(
        path,
        'gpu-optimized',
        `${component}/model.onnx was optimized for GPUs (Olive / onnxruntime's transformer optimizer: ${fused.map((op) => op.replace('::', ' ')).join(', ')}), ` +
          `which onnxruntime's CPU provider cannot run; use a plain export instead (optimum-cli export onnx --model <model> <folder>, without --optimize)`,
      );
    }
  }
}

/**
 * A single file: pickles are refused unopened; a .safetensors checkpoint is read (its header only) and refused
 * when it is not an SD-1.x / 2.x checkpoint, with what it is. Other extensions are left to the caller.
 */
function checkModelFile(path: string): void {
  const ext = extname(path).toLowerCase();
  if (PICKLE_EXTENSIONS.includes(ext)) assertNotPickle(path);
  if (ext === '.safetensors' || ext === '.sft') {
    const detected = detectCheckpoint(path);
    if ('refusal' in detected) throw detected.error;
  }
}

function pipelineNote(pipeline: string): string {
  return pipeline ? ` (${pipeline})` : '';
}

/** StableDiffusionPipeline and its ONNX / optimum / img2img / inpaint / LCM forms. */
function isStableDiffusionPipeline(pipeline: string): boolean {
  return /^(Onnx|ORT)?(StableDiffusion|StableDiffusionXL|LatentConsistencyModel)(Img2Img|Inpaint|Inpainting)?Pipeline$/.test(pipeline);
}

function readIndex(folder: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(readFileSync(join(folder, 'model_index.json'), 'utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // missing or not JSON: opening the folder says so
  }
}

function declared(folder: string, component: string): DeclaredIo | undefined {
  const file = join(folder, component, 'model.onnx');
  if (!existsSync(file)) return undefined;
  try {
    return readDeclaredIo(file);
  } catch {
    return undefined; // an unreadable file is reported by opening it, with the component's name
  }
}
