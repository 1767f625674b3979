/**
 * The model nodes' UNet variants (ModelMergeSimple, FreeU), built once into folders under the host's models folder
 * (`.gategraph-derived/unet-variants/`, beside the single-file builds' fallback: a variant belongs to no single
 * model's folder, and a model's own folder may be read-only) and opened like any model (model-cache.ts shares them).
 */
import type { ExecutionContext } from '@gategraph/core';
import { NodeInputError } from '@gategraph/core';
import { unetVariantFolder, type DiffusionModel, type UnetVariantRecipe } from '@gategraph/diffusion';
import { join } from 'node:path';
import { loadModel } from './model-cache.ts';

/** Where the variants of this host's models go. */
export function unetVariantsRoot(paths: ExecutionContext['paths']): string {
  return join(paths.models, '.gategraph-derived', 'unet-variants');
}

/** `base` with the UNet `recipe` writes, opened; `input` names the node input a refusal is reported on. */
export async function loadUnetVariant(base: DiffusionModel, recipe: UnetVariantRecipe, ctx: Pick<ExecutionContext, 'log' | 'paths'>, input: string): Promise<DiffusionModel> {
  let folder: { dir: string; built: boolean };
  try {
    folder = await unetVariantFolder(base, unetVariantsRoot(ctx.paths), recipe);
  } catch (error) {
    if ((error as Error).name === 'UnetRecipeError') throw new NodeInputError(`${input}: ${(error as Error).message}`, input);
    throw error;
  }
  if (folder.built) ctx.log.info(`${base.name}: wrote its UNet's ${recipe.kind} variant once, into ${folder.dir} (reused by later runs)`);
  return loadModel(folder.dir);
}
