/**
 * The safetensors reader lives in @gategraph/onnx-graph (src/safetensors.ts), the lower package, so that the
 * graph builders and this package read checkpoints with one reader; re-exported here for the engine's modules
 * (embeddings, checkpoint detection) and this package's public API.
 */
export {
  SafetensorsFile,
  SafetensorsError,
  readSafetensorsHeader,
  safetensorsDtypeBits,
  floatBytesToFloat32,
  halfToFloat,
  MAX_HEADER_BYTES,
  DEFAULT_CHUNK_BYTES,
  FLOAT32_READABLE_DTYPES,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorChunk,
  type ChunkOptions,
} from '@gategraph/onnx-graph';
