// @gategraph/diffusion: the diffusion engine as a plain library (no graph knowledge).

export * from './tensor.ts';

export {
  NOISE_KINDS,
  createNoiseGenerator,
  createAncestralNoiseGenerator,
  normalizeSeed,
  randn,
  type NoiseGenerator,
  type NoiseKind,
} from './noise.ts';
export { Mt19937 } from './noise/mt19937.ts';
export { philox4x32 } from './noise/philox.ts';
export { createBrownianTreeNoiseSampler, type BrownianTreeNoiseSamplerOptions } from './noise/brownian-tree.ts';

export {
  SD_SCHEDULER_CONFIG,
  resolveSchedulerConfig,
  noiseLevels,
  betasOf,
  sigmaToTimestep,
  timestepToSigma,
  lastTimestep,
  type BetaSchedule,
  type NoiseLevels,
  type PredictionType,
  type SchedulerConfig,
  type SchedulerConfigInput,
  type TimestepSpacing,
} from './schedulers/config.ts';
export {
  SCHEDULER_NAMES,
  KARRAS_RHO,
  karrasSigmas,
  scheduleSigmas,
  denoisedScheduleSigmas,
  type ScheduleName,
} from './schedulers/sigma-schedules.ts';
export {
  SAMPLER_NAMES,
  createScheduler,
  schedulerForKSampler,
  windowSigmas,
  assertSamplerName,
  assertScheduleName,
  diffusersDdimTimesteps,
} from './schedulers/index.ts';
export { ancestralStep } from './schedulers/euler-ancestral.ts';
export type { SamplerName, Scheduler, SchedulerOptions, StepNoise } from './schedulers/types.ts';

export {
  encodePng,
  decodePng,
  imageToRgb8,
  rgb8ToImage,
  type DecodedImage,
  type RawImage,
  type ToRgb8Options,
} from './png.ts';
export { readPngText, asciiJson, hasPngSignature } from './png-text.ts';

// ONNX engine: sessions, model folders, tokenizer, text encoder, VAE, sampling loop with step planners, previews.
export {
  SessionPool,
  SessionLease,
  type LeaseOptions,
  SessionOpenError,
  DEFAULT_SESSION_SETTINGS,
  resolveSessionSettings,
  getDefaultSessionPool,
  defaultSessionMemoryBudget,
  parseByteSize,
  intraOpThreadsFor,
  settingsForModel,
  SMALL_MODEL_BYTES,
  SESSION_MEMORY_ENV,
  INTRA_OP_THREADS_ENV,
  toOrtTensor,
  fromOrtTensor,
  type SessionPoolOptions,
  type FeedValue,
  type GraphOptimizationLevel,
  type SessionSettings,
} from './sessions.ts';
export {
  openModelFolder,
  unfusedUnetFile,
  openUnet,
  openVaeFolder,
  openTextEncoderFolder,
  declaredUnetAndVae,
  listModelFolders,
  isModelFolder,
  ModelComponent,
  ModelFolderError,
  type ComponentName,
  type ComponentDeclaration,
  type DeclaredUnetAndVae,
  type DiffusionModel,
  type Dim,
  type OpenModelOptions,
  type OpenedUnet,
  type UnetModel,
  type TensorInfo,
  type TextEncoderIo,
  type UnetIo,
  type VaeIo,
  type OpenedVae,
  type OpenedTextEncoder,
} from './model-folder.ts';
export { checkSupportedModel, UnsupportedModelError, CHECKPOINT_FILE_EXTENSIONS, type UnsupportedKind } from './model-family.ts';
export { ClipTokenizer, bundledClipTokenizerDir, truncationWarning, type TokenizedPrompt } from './tokenizer.ts';
export { encodePrompt, inputIdsTensor, promptChunkLimit, MAX_PROMPT_CHUNKS, type EncodeOptions, type EncodedPrompt, type TextEncoderModel } from './text-encoder.ts';
export { DEFAULT_AESTHETIC_SCORE, defaultSdxlSizes, encodeSdxlPrompt, isSdxlTextModel, sdxlRefinerTimeIds, sdxlTimeIds, type SdxlEncodedPrompt, type SdxlSizes, type SdxlTextModel } from './sdxl.ts';
export { parsePromptWeights, parseFiniteWeights, pythonFloat, PromptWeightError, type WeightedSegment } from './prompt-weights.ts';
export { chunkPrompt, MAX_WORD_LENGTH, type ChunkEntry, type ChunkingOptions, type EmbeddingVectors, type PromptChunks } from './prompt-chunks.ts';
export { chooseClipLayer, clipLayerCount, ClipLayerError, type ClipLayerChoice, type ClipLayerCount } from './clip-skip.ts';
export { findEmbeddingFile, readEmbeddingFile, EmbeddingFileError, EMBEDDING_EXTENSIONS } from './embeddings.ts';
export {
  SafetensorsFile,
  SafetensorsError,
  readSafetensorsHeader,
  MAX_HEADER_BYTES,
  DEFAULT_CHUNK_BYTES,
  FLOAT32_READABLE_DTYPES,
  halfToFloat,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorChunk,
  type ChunkOptions,
} from './safetensors.ts';
// What a single .safetensors file is (SD-1.x / 2.x checkpoint, UNet, VAE, LoRA, embedding, text encoder) or why it
// is refused (other families, pickles, damaged files).
export {
  describeSingleFile,
  describeHeader,
  detectCheckpoint,
  detectVaeFile,
  detectLora,
  detectTextEncoderFile,
  detectSdxlTextEncoderFile,
  UnsupportedCheckpointError,
  V_PREDICTION_STD_THRESHOLD,
  V_PREDICTION_KEY,
  type SingleFileInfo,
  type SingleFileKind,
  type SdModelFileInfo,
  type VaeFileInfo,
  type LoraFileInfo,
  type EmbeddingFileInfo,
  type TextEncoderFileInfo,
  type SdUnetInfo,
  type SdFamily,
  type SdPrediction,
  type DetectedCheckpoint,
  type DescribeOptions,
  type CheckpointRefusalCode,
  type SingleFileRefusal,
} from './checkpoint-family.ts';
export {
  type TensorHeaderEntry,
  type TextEncoderInfo,
  type VaeInfo,
  type LoraInfo,
  type LoraAdapterKind,
  type EmbeddingInfo,
  type Float32Reader,
} from './checkpoint-parts.ts';
export { assertNotPickle, pickleEvidence, pickleConversionCommand, PickleFileError, PICKLE_EXTENSIONS, type PickleEvidence } from './pickle-files.ts';
// A single-file checkpoint (and its VAE file, LoRAs) as a model folder: components built and cached, then assembled.
export {
  modelFolderFromCheckpoint,
  vaeFolderFromFile,
  textEncoderFolderFromFile,
  sdxlTextEncoderFolderFromFiles,
  sdSchedulerConfig,
  type SingleFileFamily,
  type SingleFileModel,
  type SingleFileModelOptions,
  type SingleFileOverrides,
  type LoraUse,
} from './single-file-model.ts';
// Tensor helpers for ported nodes (torch's broadcasting, cat/stack/slice/mean/repeat/permute, IMAGE/MASK/LATENT resize).
export {
  broadcastShape,
  broadcastTo,
  elementwise,
  plus,
  minus,
  times,
  dividedBy,
  maximum,
  minimum,
  map,
  cat,
  stack,
  slice,
  mean,
  repeat,
  permute,
  resizeImage,
  resizeMask,
  resizeLatent,
  type ResizeMode,
} from './tensor-ops.ts';
export { textEncoderVariant, exportedLayerCount, type TextEncoderVariant } from './text-encoder-variants.ts';
export { decodeLatents, encodeImage, type VaeModel, type VaeOptions } from './vae.ts';
export { EXTERNAL_WEIGHT_FILES, weightFileBytes } from './weight-files.ts';
export { FULL_VARIANT, OnnxUnetRunner, timestepTensor, type UnetRunner } from './unet-runner.ts';
export {
  sample,
  SamplingInterruptedError,
  type AddedConditioning,
  type CfgBatch,
  type SampleOptions,
  type SampleResult,
  type StepContext,
  type StepOutcome,
  type StepPlan,
  type StepPlanner,
} from './sampling.ts';
export { kDiffusionSampling, isKDiffusionSampling, type KDiffusionSampling } from './k-sampling-loop.ts';
export { denoisedAt, predictionAt, lcmBoundary, scalesModelInput, MODEL_PREDICTIONS, type ModelPrediction } from './model-prediction.ts';
export { distilledNoiseLevels, LCM_ORIGINAL_TIMESTEPS } from './schedulers/distilled.ts';
export { unetVariantFolder, unetVariantKey, unetVariantOf, MAX_VARIANTS, type UnetVariantRecipe } from './unet-variant.ts';
export { freeURecipe, mergeRecipe, unetMergeProblem, UnetRecipeError, UnetUnchangedError, type FreeUSpec } from './unet-recipes.ts';
export { K_SAMPLER_NAMES, K_SAMPLERS, isKSamplerName, kSamplerInfo, kSampler, type KSamplerDescriptor, type KSamplerName } from './k-samplers/index.ts';
export type { Denoiser, Denoised, ModelCall, NoiseSampler, SamplerFunction, SamplerRun, SamplerOptions as KSamplerOptions, ModelSampling, StepCallback } from './k-samplers/types.ts';
// What ComfyUI's custom-sampler nodes compute beside the samplers (SamplerSASolver's sigma interval, SamplerER_SDE's
// default scaler), and the newer schedules on their own with the special function behind "beta".
export { percentToSigma } from './k-samplers/sa-solver.ts';
export { erSdeNoiseScaler } from './k-samplers/er-sde.ts';
export { betaScheduleSigmas, linearQuadraticSigmas, klOptimalSigmas } from './schedulers/sigma-schedules.ts';
export { regularizedIncompleteBeta, inverseRegularizedIncompleteBeta } from './schedulers/incomplete-beta.ts';
export { clipArea, type LatentArea, type RegionalConditioning, type RegionalEntry } from './regional-conditioning.ts';
// Sampling wrappers: chains around the run, UNet calls, CFG mixes and predictions, and the host's service that
// turns a MODEL's patches into them (what a pack registers its patch kinds with).
export { composeWrappers, type Wrapper } from './wrappers/chain.ts';
export {
  wrappersAt,
  type SamplingWrappers,
  type UnetCall,
  type UnetOutputs,
  type CfgCall,
  type PredictionCall,
  type StepValues,
} from './wrappers/types.ts';
export {
  samplingExtensions,
  SamplingExtensions,
  PatchError,
  isPatchError,
  type ModelPatch,
  type PatchableModel,
  type RunLog,
  type SamplingRun,
  type SamplingExtension,
} from './wrappers/extensions.ts';
export {
  latentPreviewRgb,
  fitLatentRgbMap,
  fitLatentRgbMapFrom,
  previewMapFor,
  decodePreview,
  syntheticFitImages,
  type LatentRgbMap,
} from './preview.ts';

export {
  PlanError,
  planTgate,
  gateStepFromFraction,
  plainStep,
  TGATE_PRESETS,
  planDeepCache,
  quadCentreSchedule,
  deepCacheMaxBranchId,
  combinePlans,
  checkPlan,
  pruneUnreadCaches,
  renderPlan,
  summarizePlan,
  PLAN_LEGEND,
  estimateRelativeCost,
  type AttnMode,
  type PlannedStep,
  cfgBatchOf,
  type ExecutionPlan,
  type TgateSettings,
  type DeepCacheSettings,
  type TgateOptions,
  type DeepCacheOptions,
  type PlanSummary,
  type CostWeights,
  type PlanCost,
} from './planners/index.ts';
export {
  prepareCachedUnet,
  CachedUnetError,
  ATTN_CONDITIONS,
  type CachedUnet,
  type CachedUnetNeeds,
  type CacheLayout,
  type VariantLayout,
  type AttentionGate,
} from './cached-unet.ts';
export { planStepper, cacheNeedsOf, isPlainPlan, captureAttentionStepper } from './plan-stepper.ts';
export { blendMasked, concatChannels, resizeBilinear } from './inpaint.ts';
export { guidanceScaleEmbedding } from './lcm-embedding.ts';
// Resampling as ComfyUI's common_upscale: torch's interpolate modes, bislerp, Pillow's Lanczos, centre crop.
export * from './resample/index.ts';
