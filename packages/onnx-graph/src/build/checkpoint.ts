// The checkpoint side of graph building: what a builder needs from a single-file checkpoint (names, dtypes,
// shapes, bytes by name) and float conversion. The reader is the project's one safetensors reader
// (../safetensors.ts's SafetensorsFile, which @gategraph/diffusion re-exports); `openSafetensors` opens one with
// the builders' error codes (CheckpointError 'bad_checkpoint' / 'missing_key').
import { basename } from 'node:path';
import { FLOAT_BYTES_DTYPES, SafetensorsError, SafetensorsFile, floatBytesToFloat32, readSafetensorsHeader } from '../safetensors.ts';

/** One tensor of a checkpoint: where its bytes are and what they hold. */
export interface CheckpointTensorInfo {
  readonly name: string;
  /** safetensors' dtype name: 'F32', 'F16', 'BF16', 'I64', ... */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** What graph builders read from a checkpoint. SafetensorsFile (../safetensors.ts) is one. */
export interface CheckpointReader {
  readonly path: string;
  tensors(): CheckpointTensorInfo[];
  /** The raw little-endian bytes of tensor `name`. */
  readBytes(name: string): Uint8Array;
}

export type CheckpointErrorCode =
  /** The file is not a readable safetensors file. */
  | 'bad_checkpoint'
  /** A tensor the architecture needs is not in the checkpoint (`key` names it). */
  | 'missing_key'
  /** A tensor has a shape or dtype the architecture cannot take (`key` names it). */
  | 'bad_tensor'
  /** The checkpoint holds an architecture this builder does not build. */
  | 'unsupported';

/** Why a graph cannot be built from a checkpoint; `key` is the tensor concerned, when there is one. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    message: string,
    readonly code: CheckpointErrorCode,
    readonly key?: string,
  ) {
    super(message);
  }
}

/** The float dtypes `toFloat32` converts. */
export const FLOAT_DTYPES: readonly string[] = FLOAT_BYTES_DTYPES;

/** SafetensorsFile whose reads throw CheckpointError (a tensor it lacks is 'missing_key', a file cut short 'bad_checkpoint'). */
class CheckpointSafetensors extends SafetensorsFile {
  override readBytes(name: string): Uint8Array<ArrayBuffer> {
    if (!this.has(name)) throw new CheckpointError(`${basename(this.path)} has no tensor "${name}"`, 'missing_key', name);
    try {
      return super.readBytes(name);
    } catch (err) {
      throw err instanceof SafetensorsError ? new CheckpointError(err.message, 'bad_checkpoint') : err;
    }
  }
}

/**
 * Reads and checks the header of a .safetensors file (nothing else; tensors are read by offset when asked): a
 * SafetensorsFile, so chunked reads and float32 conversion are there too. A malformed file is CheckpointError
 * 'bad_checkpoint' with SafetensorsError's message (the file's name and what is wrong).
 */
export function openSafetensors(path: string): SafetensorsFile {
  try {
    return new CheckpointSafetensors(readSafetensorsHeader(path));
  } catch (err) {
    throw err instanceof SafetensorsError ? new CheckpointError(err.message, 'bad_checkpoint') : err;
  }
}

/** A float tensor's bytes as float32 values: F32 as stored (a view when aligned), F16/BF16/F64 converted. */
export function toFloat32(bytes: Uint8Array, dtype: string, name = 'tensor'): Float32Array {
  if (!FLOAT_DTYPES.includes(dtype)) throw new CheckpointError(`${name} is ${dtype}; a float32 graph takes ${FLOAT_DTYPES.join(', ')} weights`, 'bad_tensor', name);
  return floatBytesToFloat32(bytes, dtype);
}
