/**
 * The UNet variants the model nodes make (unet-variant.ts writes the folders): a weighted merge of two UNets and
 * FreeU's surgery on one. Both read the float32 UNet file the base model's session was made from before its
 * attention was fused (unfusedUnetFile): a folder's unet/model.onnx must be a plain export, and opening the
 * variant fuses its attention as it fused the base's.
 */
import { applyFreeU, loadModel as loadOnnx, mergeProblem, OnnxGraphError, saveModel, writeMergedModel, type FreeUSpec } from '@gategraph/onnx-graph';
import { unfusedUnetFile, type DiffusionModel } from './model-folder.ts';

/** What the recipes read of a model. */
type BaseModel = Pick<DiffusionModel, 'dir' | 'name' | 'io'>;
import type { UnetVariantRecipe } from './unet-variant.ts';

/** Thrown when a recipe cannot be made from its models; the message says why, for the user. */
export class UnetRecipeError extends Error {
  override name = 'UnetRecipeError';
}

/** Thrown when a recipe would change nothing in its UNet (the caller keeps the model as it is). */
export class UnetUnchangedError extends Error {
  override name = 'UnetUnchangedError';
}

/**
 * Why two models' UNets cannot be merged weight by weight, or undefined: different architectures (told from what
 * the engine read of them when it opened them), and with `graphs`, graphs that differ (another exporter or
 * builder; this reads both graphs).
 */
export async function unetMergeProblem(first: BaseModel, second: BaseModel, graphs = true): Promise<string | undefined> {
  const a = first.io.unet;
  const b = second.io.unet;
  const facts = (u: typeof a) => `${u.sampleChannels} input channels, cross-attention ${u.crossAttentionDim} wide${u.added ? ', SDXL\'s added conditioning' : ''}${u.timestepCond ? ', an LCM guidance embedding' : ''}`;
  if (facts(a) !== facts(b)) return `${first.name}'s UNet has ${facts(a)}; ${second.name}'s has ${facts(b)}: they are different architectures`;
  if (!graphs) return undefined;
  const detail = mergeProblem(await unfusedUnetFile(first), await unfusedUnetFile(second));
  return detail === undefined ? undefined : graphMismatch(first, second, detail);
}

function graphMismatch(first: BaseModel, second: BaseModel, detail: string): string {
  return (
    `${first.name}'s and ${second.name}'s UNets are not the same graph (${detail}). Weights are merged name by name, so both must be one architecture ` +
    'built or exported the same way: two .safetensors checkpoints of one family, or two ONNX folders from one exporter'
  );
}

/** first * ratio + second * (1 - ratio), weight by weight (ComfyUI's ModelMergeSimple). */
export async function mergeRecipe(first: BaseModel, second: BaseModel, ratio: number): Promise<UnetVariantRecipe> {
  const sources = [await unfusedUnetFile(first), await unfusedUnetFile(second)];
  return {
    kind: 'merge',
    settings: { ratio },
    sources,
    async write(path) {
      const problem = await unetMergeProblem(first, second, false);
      if (problem) throw new UnetRecipeError(problem);
      try {
        writeMergedModel(sources[0]!, sources[1]!, ratio, path);
      } catch (error) {
        if (error instanceof OnnxGraphError && error.code === 'incompatible_models') throw new UnetRecipeError(graphMismatch(first, second, error.message));
        throw error;
      }
    },
  };
}

/** The UNet with FreeU (version 1) or FreeU_V2 (version 2) in front of its up-block concatenations. */
export async function freeURecipe(model: BaseModel, spec: FreeUSpec): Promise<UnetVariantRecipe> {
  const source = await unfusedUnetFile(model);
  return {
    kind: `freeu${spec.version === 2 ? '-v2' : ''}`,
    settings: { ...spec },
    sources: [source],
    write(path) {
      const file = loadOnnx(source);
      let patched;
      try {
        patched = applyFreeU(file.proto, spec, { baseDir: file.baseDir });
      } catch (error) {
        if (error instanceof OnnxGraphError) throw new UnetRecipeError(`${model.name}'s UNet: ${error.message}`);
        throw error;
      }
      if (!patched.report.sites.some((site) => site.b !== 1 || site.s !== 1)) {
        const widths = `${patched.report.modelChannels * 4} or ${patched.report.modelChannels * 2}`;
        throw new UnetUnchangedError(`${model.name}'s UNet has no up layer whose input is ${widths} channels wide (4 or 2 x its first level's ${patched.report.modelChannels}) with a factor other than 1: FreeU changes nothing here`);
      }
      // The weights stay where they are (referenced or hard-linked): the graph is all that changes.
      saveModel(patched.model, path, { baseDir: file.baseDir });
    },
  };
}

export type { FreeUSpec };
