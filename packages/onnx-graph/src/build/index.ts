// Graphs built in TypeScript from single-file checkpoints (no Python at run time), named like exports.
export { CheckpointError, openSafetensors, toFloat32, FLOAT_DTYPES, type CheckpointReader, type CheckpointTensorInfo, type CheckpointErrorCode } from './checkpoint.ts';
export { WeightSource, WeightView, type WeightRef, type WeightTransform, type WeightPatch } from './weights.ts';
export { GraphBuilder, DT, float, type AttrValue, type BuilderOptions, type BuiltGraph, type PlannedWeight } from './builder.ts';
export { linear, linearGemm, conv2d, groupNorm, layerNorm, silu, gelu, quickGelu, sliceLast, attention, type Ctx, type AttentionOptions } from './layers.ts';
export { writeBuiltModel, type WriteReport } from './write.ts';
export { classifyKeys, componentOf, ignoredReason, LDM_PREFIXES, type KeyReport, type KeyOwner, type LdmComponent } from './ldm-keys.ts';
export { buildLdmUnet, detectUnetConfig, diffusersConfigOf, LDM_UNET_PREFIX, type UnetOverrides, type LdmUnetConfig, type BuiltUnet } from './unet.ts';
export { buildClipText, detectClipTextConfig, clipTextConfigJson, type ClipTextOverrides, type ClipTextConfig, type BuiltClipText } from './text-encoder.ts';
export { buildVaeDecoder, buildVaeEncoder, detectVaeConfig, vaeDiffusersConfig, LDM_VAE_PREFIX, type VaeOverrides, type LdmVaeConfig, type VaePart, type BuiltVae } from './vae.ts';
export {
  unetFromCheckpoint,
  componentFromCheckpoint,
  checkpointSha256,
  pruneCheckpointEntries,
  BUILD_VERSION,
  type CheckpointUnet,
  type CheckpointUnetOptions,
  type CheckpointComponent,
  type CheckpointComponentName,
  type CheckpointComponentOptions,
  type ComponentBuild,
} from './single-file.ts';
export {
  resolveLoras,
  applyLoras,
  loraKeyMap,
  type LoraSpec,
  type LoraTarget,
  type LoraReport,
  type LoraFileReport,
  type LoraComponent,
  type LoraCheckpoint,
  type LoraOptions,
  type LoraPatch,
} from './lora.ts';
