// @gategraph/onnx-graph: ONNX graph surgery for TGATE and DeepCache, with no sampling knowledge.
export { OnnxGraphError, type OnnxGraphErrorCode } from './errors.ts';
export {
  decodeModel,
  encodeModel,
  cloneModel,
  makeValueInfo,
  valueInfoType,
  newModel,
  newGraph,
  newNode,
  newTensor,
  tensorByteSize,
  DTYPE_NAMES,
  PROTOBUF_LIMIT,
  TensorProto_DataType,
  TensorProto_DataLocation,
  type ModelProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.ts';
export {
  loadModel,
  saveModel,
  externalDataFiles,
  externalRef,
  isExternal,
  readTensorBytes,
  type ModelFile,
  type SaveOptions,
  type SaveReport,
  type ExternalDataMode,
  type ExternalRef,
} from './model-io.ts';
export { parseScope, detectPrefix, modulePathOf } from './scope.ts';
export { indexGraph, type GraphIndex } from './graph-index.ts';
export { discoverUNet, attentionOutputs, type UNetStructure, type UNetBlock, type AttentionModule, type ModuleBoundary } from './modules.ts';
export { removeUnreachable, type PruneReport } from './prune.ts';
export {
  deriveModel,
  signaturesOf,
  type DerivationSpec,
  type DerivationReport,
  type DeriveOptions,
  type TensorSignature,
} from './derive.ts';
export { deepFeature, upLayers, type DeepFeature, type UpLayer, type DeepCacheConvention } from './deepcache.ts';
export { inferShapes, broadcast, type TensorInfo, type ShapeOptions } from './shapes.ts';
export {
  countMacs,
  unetInputShapes,
  categoryOf,
  type MacReport,
  type MacOptions,
  type MacCategory,
  type UNetSizes,
} from './macs.ts';
export { buildIfGated, type IfGatedModel } from './if-gating.ts';
export { writeMergedModel, mergeProblem, type MergeReport } from './merge.ts';
export { applyFreeU, fourierFilterModel, type FreeUSpec, type FreeUSite, type FreeUReport, type FreeUOptions } from './freeu.ts';
export { cpuFloat32Needs, writeCpuFloat32, type CpuFloat32Report } from './cpu-float32.ts';
export { derivedModelPath, cpuFloat32ModelPath, fusedAttentionModelPath, cachedModel, canonicalPath, derivedCacheDir, modelContentKey, modelFileSha256, pruneStaleEntries, ensureCacheDir, type DerivedEntry, type DerivedCacheOptions } from './derived-cache.ts';
export { readDeclaredIo, type DeclaredIo, type DeclaredTensor } from './declared-io.ts';
export { discoverClipText, type ClipTextStructure } from './clip-text.ts';
export { recomputeOutput, type RecomputeSpec, type RecomputeReport } from './recompute-output.ts';
export { deriveClipText, clipTextModelPath, type ClipTextVariantSpec, type ClipTextVariantReport, type TensorLocation } from './clip-text-derive.ts';
export { fuseAttention, MS_DOMAIN, type AttentionFusionReport, type AttentionFusionOptions, type FusedAttention } from './attention-fusion.ts';
// The safetensors reader (header checked as safetensors' own reader does; tensors read by offset, streamed in
// chunks, converted to float32), shared by the graph builders and @gategraph/diffusion.
export {
  SafetensorsFile,
  SafetensorsError,
  readSafetensorsHeader,
  safetensorsDtypeBits,
  floatBytesToFloat32,
  halfToFloat,
  halfToFloatTable,
  MAX_HEADER_BYTES,
  DEFAULT_CHUNK_BYTES,
  FLOAT32_READABLE_DTYPES,
  FLOAT_BYTES_DTYPES,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type Float32Tensor,
  type TensorChunk,
  type ChunkOptions,
} from './safetensors.ts';
// Single-file checkpoints (ComfyUI/A1111 LDM layout) built into ONNX graphs; the graph-building toolkit itself
// (GraphBuilder, layers, weights) is the './build' entry point.
export {
  unetFromCheckpoint,
  componentFromCheckpoint,
  detectUnetConfig,
  classifyKeys,
  checkpointSha256,
  openSafetensors,
  CheckpointError,
  BUILD_VERSION,
  type CheckpointUnet,
  type CheckpointUnetOptions,
  type CheckpointComponent,
  type CheckpointComponentName,
  type CheckpointComponentOptions,
  type ComponentBuild,
  type UnetOverrides,
  type LdmUnetConfig,
  type CheckpointReader,
  type CheckpointErrorCode,
  type KeyReport,
} from './build/index.ts';
