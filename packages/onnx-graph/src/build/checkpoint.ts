// The checkpoint side of graph building: what a builder needs from a single-file checkpoint (names, dtypes,
// shapes, bytes by name) and float conversion. packages/diffusion has the full safetensors reader (its
// SafetensorsFile satisfies CheckpointReader structurally and can be passed in); onnx-graph does not depend on
// packages/diffusion, so `openSafetensors` here is the minimal header reader the builders need on their own.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename } from 'node:path';

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

/** What graph builders read from a checkpoint. packages/diffusion's SafetensorsFile is one. */
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

const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The float dtypes `toFloat32` converts. */
export const FLOAT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16', 'F64'];

/** Reads and checks the header of a .safetensors file (nothing else); tensors are read by offset when asked. */
export function openSafetensors(path: string): CheckpointReader {
  const bad = (problem: string) => new CheckpointError(`${basename(path)} is not a readable safetensors file: ${problem}`, 'bad_checkpoint');
  const fd = openSync(path, 'r');
  let tensors: CheckpointTensorInfo[];
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw bad(`it is ${size} bytes long`);
    const head = readAt(fd, 0, 8);
    const headerLength = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (headerLength > 100_000_000 || 8 + headerLength > size) throw bad(`its header length ${headerLength} does not fit the file (${size} bytes)`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readAt(fd, 8, headerLength))) as Record<string, unknown>;
    } catch (err) {
      throw bad(`its header is not UTF-8 JSON (${(err as Error).message})`);
    }
    const dataStart = 8 + headerLength;
    tensors = [];
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) throw bad(`tensor "${name}" has dtype ${JSON.stringify(dtype)}`);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor "${name}" has shape ${JSON.stringify(shape)}`);
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) throw bad(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}`);
      const [begin, end] = offsets as [number, number];
      const byteLength = (shape as number[]).reduce((n, d) => n * d, 1) * DTYPE_BYTES[dtype]!;
      if (end - begin !== byteLength || dataStart + end > size) throw bad(`tensor "${name}": data_offsets [${begin}, ${end}] do not match its ${dtype} shape [${shape.join(', ')}] within the file`);
      tensors.push({ name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength });
    }
  } finally {
    closeSync(fd);
  }
  tensors.sort((a, b) => a.offset - b.offset);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    path,
    tensors: () => [...tensors],
    readBytes(name: string): Uint8Array {
      const info = byName.get(name);
      if (!info) throw new CheckpointError(`${basename(path)} has no tensor "${name}"`, 'missing_key', name);
      const f = openSync(path, 'r');
      try {
        return readAt(f, info.offset, info.byteLength);
      } finally {
        closeSync(f);
      }
    },
  };
}

function readAt(fd: number, position: number, length: number): Uint8Array {
  // A fresh buffer (not Node's pool), so typed-array views over it are aligned.
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, length - done, position + done);
    if (got === 0) throw new CheckpointError(`the file ends before byte ${position + length}`, 'bad_checkpoint');
    done += got;
  }
  return out;
}

const LITTLE_ENDIAN = endianness() === 'LE';
let halfTable: Float32Array | undefined;

/** float16 bit pattern -> float32 value, for all 65536 patterns (exact: every half is a float32). */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    table[h] =
      exponent === 0 ? sign * fraction * 2 ** -24 : exponent === 31 ? (fraction ? NaN : sign * Infinity) : sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

/** A float tensor's bytes as float32 values: F32 as stored (a view when aligned), F16/BF16/F64 converted. */
export function toFloat32(bytes: Uint8Array, dtype: string, name = 'tensor'): Float32Array {
  if (!LITTLE_ENDIAN) throw new CheckpointError('checkpoints are little-endian; this machine is not', 'unsupported');
  switch (dtype) {
    case 'F32':
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      return new Float32Array(bytes.slice().buffer);
    case 'F16': {
      const table = halfToFloatTable();
      const halves = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer);
      const out = new Float32Array(halves.length);
      for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const halves = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer);
      const bits = new Uint32Array(halves.length);
      for (let i = 0; i < halves.length; i++) bits[i] = halves[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F64': {
      const doubles = bytes.byteOffset % 8 === 0 ? new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8) : new Float64Array(bytes.slice().buffer);
      return Float32Array.from(doubles);
    }
    default:
      throw new CheckpointError(`${name} is ${dtype}; a float32 graph takes ${FLOAT_DTYPES.join(', ')} weights`, 'bad_tensor', name);
  }
}
