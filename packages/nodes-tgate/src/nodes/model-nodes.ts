/**
 * ComfyUI's model nodes that fit an ONNX engine (category advanced/model, advanced/model_merging,
 * model_patches/unet): a sampling override, a weights merge and FreeU, each a MODEL in, a MODEL out.
 */
import { ModelSamplingDiscrete } from './model-sampling-discrete.ts';
import { ModelMergeSimple } from './model-merge.ts';
import { FreeU, FreeU_V2 } from './freeu.ts';

export const modelNodes = [ModelSamplingDiscrete, ModelMergeSimple, FreeU, FreeU_V2] as const;
