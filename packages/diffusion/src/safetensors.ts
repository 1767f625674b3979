/**
 * A reader for the safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
 * of JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { key: string } }`, then the
 * tensors' bytes, little-endian, offsets relative to the end of the header.
 *
 * Only the header is read when a file is opened; a tensor is read by its offset when asked for, so a checkpoint of
 * several GB costs what its header costs until tensors are needed. Unlike a pickle (.pt, .ckpt, .bin), nothing in
 * the file is executed: this is why the engine reads embeddings (and, later, single-file checkpoints) only in
 * this format.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename } from 'node:path';
import type { Tensor } from './tensor.ts';

/** safetensors' own limit on the header (MAX_HEADER_SIZE in its Rust reader): a larger one is not a real file. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines (the float8 / float4 kinds included, so such files list). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The dtypes readFloat32 converts. */
const FLOAT_DTYPES = ['F32', 'F16', 'BF16'];

export interface SafetensorsTensorInfo {
  readonly name: string;
  /** The format's dtype name: 'F32', 'F16', 'BF16', 'I64', ... */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** A file that is not a readable safetensors file; the message names the file and what is wrong. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(readonly path: string, readonly problem: string) {
    super(`${basename(path)} is not a readable safetensors file: ${problem}`);
  }
}

/** An opened safetensors file: its header, parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly #tensors: Map<string, SafetensorsTensorInfo>;

  private constructor(
    /** The file's path, as given. */
    readonly path: string,
    tensors: Map<string, SafetensorsTensorInfo>,
    /** The header's `__metadata__` (string to string), {} when absent. */
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.#tensors = tensors;
  }

  /** Reads and checks the header of `path` (nothing else). Throws SafetensorsError for anything malformed. */
  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(path, `it is ${size} bytes long, shorter than the 8-byte header length`);
      const lengthBytes = readExactly(fd, path, 0, 8);
      const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(path, `its header claims ${headerLength} bytes, over the format's limit of ${MAX_HEADER_BYTES}`);
      }
      const n = Number(headerLength);
      if (8 + n > size) throw new SafetensorsError(path, `its header claims ${n} bytes but the file ends ${size - 8} bytes after the length field`);
      const header = parseHeader(path, readExactly(fd, path, 8, n));
      const dataStart = 8 + n;
      const { tensors, metadata } = checkEntries(path, header, dataStart, size - dataStart);
      return new SafetensorsFile(path, tensors, metadata);
    } finally {
      closeSync(fd);
    }
  }

  /** Every tensor, in the order of their data in the file. */
  tensors(): SafetensorsTensorInfo[] {
    return [...this.#tensors.values()].sort((a, b) => a.offset - b.offset);
  }

  /** Tensor names sorted by code point (the order of safetensors' Python `safe_open(...).keys()`). */
  names(): string[] {
    return [...this.#tensors.keys()].sort(byCodePoint);
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.#tensors.get(name);
  }

  /** The raw little-endian bytes of tensor `name`. */
  readBytes(name: string): Uint8Array<ArrayBuffer> {
    const info = this.#require(name);
    const fd = openSync(this.path, 'r');
    try {
      return readExactly(fd, this.path, info.offset, info.byteLength);
    } finally {
      closeSync(fd);
    }
  }

  /** Tensor `name` as float32 (F32 as stored, F16 and BF16 converted exactly); other dtypes are an error. */
  readFloat32(name: string): Tensor {
    const info = this.#require(name);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new SafetensorsError(this.path, `tensor "${name}" is ${info.dtype}; only ${FLOAT_DTYPES.join(', ')} tensors are read as float32`);
    }
    const bytes = this.readBytes(name);
    return { data: toFloat32(bytes, info.dtype), shape: [...info.shape] };
  }

  #require(name: string): SafetensorsTensorInfo {
    const info = this.#tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, `it has no tensor "${name}"`);
    return info;
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function readExactly(fd: number, path: string, position: number, length: number): Uint8Array<ArrayBuffer> {
  // A fresh buffer (not Node's shared pool), so typed-array views over it are aligned.
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, length - done, position + done);
    if (got === 0) throw new SafetensorsError(path, `it ends before byte ${position + length}`);
    done += got;
  }
  return out;
}

function parseHeader(path: string, bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SafetensorsError(path, `its header is not UTF-8 JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new SafetensorsError(path, 'its header is not a JSON object');
  return value as Record<string, unknown>;
}

function checkEntries(path: string, header: Record<string, unknown>, dataStart: number, dataBytes: number) {
  const tensors = new Map<string, SafetensorsTensorInfo>();
  const metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new SafetensorsError(path, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(path, `__metadata__ "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const bad = (what: string) => new SafetensorsError(path, `tensor "${name}": ${what}`);
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw bad('its entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) {
      throw bad(`unknown dtype ${JSON.stringify(dtype)} (the format's dtypes: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = (shape as number[]).reduce((n, d) => n * d, 1) * DTYPE_BYTES[dtype]!;
    if (end - begin !== expected) throw bad(`${end - begin} bytes of data for a ${dtype} tensor of shape [${shape.join(', ')}] (${expected} bytes)`);
    if (end > dataBytes) throw bad(`its data ends at byte ${dataStart + end}, past the end of the file (${dataStart + dataBytes} bytes)`);
    tensors.set(name, { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: expected });
  }
  return { tensors, metadata };
}

const LITTLE_ENDIAN = endianness() === 'LE';

function toFloat32(bytes: Uint8Array<ArrayBuffer>, dtype: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return Float32Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
  }
  const count = bytes.byteLength / 2;
  const out = new Float32Array(count);
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
    return out;
  }
  for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  return out;
}

/** IEEE 754 binary16 -> number (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
