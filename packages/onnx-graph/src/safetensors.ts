/**
 * A reader for the safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
 * of JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { key: string } }`, then the
 * tensors' bytes, little-endian, offsets relative to the end of the header.
 *
 * Only the header is read when a file is opened; a tensor is read by its offset when asked for, so a checkpoint of
 * several GB costs what its header costs until tensors are needed. Large tensors can be streamed in chunks (raw,
 * or converted to float32 chunk by chunk), so a caller converts or hashes a multi-GB UNet without holding it in
 * memory. Unlike a pickle (.pt, .ckpt, .bin), nothing in the file is executed: this is why the engine reads
 * embeddings and single-file checkpoints only in this format (@gategraph/diffusion's pickle-files.ts refuses the
 * others).
 *
 * The one reader of the project: the graph builders (build/checkpoint.ts's openSafetensors) and
 * @gategraph/diffusion (embeddings, checkpoint detection) both use it.
 *
 * The header is checked as safetensors' own Rust reader checks it (`Metadata::validate` and `read_metadata`):
 * header length within MAX_HEADER_BYTES and the file, UTF-8 JSON object, known dtypes, shape x dtype size equal to
 * the byte length, and the tensors' data covering the data section exactly: no overlap, no gap, nothing after the
 * last tensor, nothing missing (a truncated download). Each problem is a SafetensorsError naming the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename } from 'node:path';

/** A tensor read as float32 (structurally @gategraph/diffusion's Tensor). */
export interface Float32Tensor {
  data: Float32Array<ArrayBuffer>;
  shape: number[];
}

/** safetensors' own limit on the header (MAX_HEADER_SIZE in its Rust reader): a larger one is not a real file. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the format defines (safetensors' `Dtype::bitsize`), sub-byte kinds included. */
const DTYPE_BITS: Readonly<Record<string, number>> = {
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  I64: 64, U64: 64, F64: 64, C64: 64,
};

/** The dtypes read as float32 (readFloat32, and the 'float32' form of chunks / forEachChunk). */
export const FLOAT32_READABLE_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** Every dtype name the format defines, with its size in bits. */
export function safetensorsDtypeBits(dtype: string): number | undefined {
  return Object.hasOwn(DTYPE_BITS, dtype) ? DTYPE_BITS[dtype] : undefined;
}

/** Default size of a streamed chunk, in stored bytes (a float32 chunk of F16 data is twice this). */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

export interface SafetensorsTensorInfo {
  readonly name: string;
  /** The format's dtype name: 'F32', 'F16', 'BF16', 'I64', ... */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file (what ONNX external data's `offset` wants). */
  readonly offset: number;
  /** Bytes of data (ONNX external data's `length`). */
  readonly byteLength: number;
}

/** One piece of a streamed tensor. */
export interface TensorChunk<T> {
  /** The chunk's elements: the stored bytes, or float32 values. Fresh for every chunk: keep it if you like. */
  readonly data: T;
  /** Index of the chunk's first element in the tensor. */
  readonly elementOffset: number;
  /** Number of elements in the chunk. */
  readonly elements: number;
  /** Absolute byte offset of the chunk's stored bytes in the file. */
  readonly fileOffset: number;
}

export interface ChunkOptions {
  /** Stored bytes per chunk (rounded down to whole elements, at least one); DEFAULT_CHUNK_BYTES when absent. */
  chunkBytes?: number;
  /** 'bytes' (default): the stored little-endian bytes; 'float32': F32/F16/BF16 converted to float32 per chunk. */
  as?: 'bytes' | 'float32';
}

/** A file that is not a readable safetensors file; the message names the file and what is wrong. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(readonly path: string, readonly problem: string) {
    super(`${basename(path)} is not a readable safetensors file: ${problem}`);
  }
}

/** A safetensors file's header, read and checked (readSafetensorsHeader): what SafetensorsFile is made of. */
export interface SafetensorsHeader {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute offset of the data section (8 + the header's length). */
  readonly dataOffset: number;
  /** The file's size in bytes when the header was read. */
  readonly size: number;
}

/**
 * Reads and checks the header of `path` (the first 8 + N bytes, nothing else). Throws SafetensorsError naming the
 * file for anything malformed; a file that cannot be opened throws Node's own error (ENOENT, EACCES).
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(path, `it is ${size} bytes long, shorter than the 8-byte header length`);
    const lengthBytes = readExactly(fd, path, 0, 8);
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw new SafetensorsError(path, `its header claims ${headerLength} bytes, over the format's limit of ${MAX_HEADER_BYTES} (is it a safetensors file at all?)`);
    }
    const n = Number(headerLength);
    if (8 + n > size) throw new SafetensorsError(path, `its header claims ${n} bytes but the file ends ${size - 8} bytes after the length field (truncated, or not a safetensors file)`);
    const header = parseHeader(path, readExactly(fd, path, 8, n));
    const dataStart = 8 + n;
    const { tensors, metadata } = checkEntries(path, header, dataStart, size - dataStart);
    return { path, tensors, metadata, dataOffset: dataStart, size };
  } finally {
    closeSync(fd);
  }
}

/** An opened safetensors file: its header, parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly #tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The file's path, as given. */
  readonly path: string;
  /** The header's `__metadata__` (string to string), {} when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute offset of the data section (8 + the header's length): tensor offsets are relative to it in the header. */
  readonly dataOffset: number;
  /** The file's size in bytes when it was opened. */
  readonly size: number;

  /** From a header readSafetensorsHeader checked (SafetensorsFile.open does both). */
  constructor(header: SafetensorsHeader) {
    this.path = header.path;
    this.#tensors = header.tensors;
    this.metadata = header.metadata;
    this.dataOffset = header.dataOffset;
    this.size = header.size;
  }

  /** Reads and checks the header of `path` (nothing else). Throws SafetensorsError for anything malformed. */
  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(readSafetensorsHeader(path));
  }

  /** Every tensor, in the order of their data in the file. */
  tensors(): SafetensorsTensorInfo[] {
    return [...this.#tensors.values()].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  }

  /** Tensor names sorted by code point (the order of safetensors' Python `safe_open(...).keys()`). */
  names(): string[] {
    return [...this.#tensors.keys()].sort(byCodePoint);
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.#tensors.get(name);
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** Number of tensors. */
  get count(): number {
    return this.#tensors.size;
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
  readFloat32(name: string): Float32Tensor {
    return this.readFloat32Many([name])[0]!;
  }

  /** Several tensors as float32, read through one file descriptor (for many small tensors: LoRA alphas, ...). */
  readFloat32Many(names: readonly string[]): Float32Tensor[] {
    const infos = names.map((name) => this.#requireFloat(name));
    if (!infos.length) return [];
    const fd = openSync(this.path, 'r');
    try {
      return infos.map((info) => ({ data: floatBytesToFloat32(readExactly(fd, this.path, info.offset, info.byteLength), info.dtype), shape: [...info.shape] }));
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Streams tensor `name` in chunks, reading one chunk at a time (so memory stays at one chunk whatever the
   * tensor's size). `as: 'float32'` converts F16/BF16 per chunk; the default yields the stored bytes.
   * Breaking out of the loop closes the file.
   */
  chunks(name: string, options?: ChunkOptions & { as?: 'bytes' }): AsyncGenerator<TensorChunk<Uint8Array<ArrayBuffer>>>;
  chunks(name: string, options: ChunkOptions & { as: 'float32' }): AsyncGenerator<TensorChunk<Float32Array<ArrayBuffer>>>;
  async *chunks(name: string, options: ChunkOptions = {}): AsyncGenerator<TensorChunk<Uint8Array<ArrayBuffer> | Float32Array<ArrayBuffer>>> {
    const plan = this.#chunkPlan(name, options);
    const handle = await openAsync(this.path, 'r');
    try {
      for (const piece of plan.pieces) {
        const bytes = new Uint8Array(piece.byteLength);
        let done = 0;
        while (done < piece.byteLength) {
          const { bytesRead } = await handle.read(bytes, done, piece.byteLength - done, piece.fileOffset + done);
          if (bytesRead === 0) throw truncatedError(this.path, piece.fileOffset + piece.byteLength);
          done += bytesRead;
        }
        yield { data: plan.float32 ? floatBytesToFloat32(bytes, plan.dtype) : bytes, elementOffset: piece.elementOffset, elements: piece.elements, fileOffset: piece.fileOffset };
      }
    } finally {
      await handle.close();
    }
  }

  /** The synchronous form of chunks(): calls `onChunk` for each chunk in order. */
  forEachChunk(name: string, onChunk: (chunk: TensorChunk<Uint8Array<ArrayBuffer>>) => void, options?: ChunkOptions & { as?: 'bytes' }): void;
  forEachChunk(name: string, onChunk: (chunk: TensorChunk<Float32Array<ArrayBuffer>>) => void, options: ChunkOptions & { as: 'float32' }): void;
  forEachChunk(name: string, onChunk: (chunk: TensorChunk<never>) => void, options: ChunkOptions = {}): void {
    const plan = this.#chunkPlan(name, options);
    const fd = openSync(this.path, 'r');
    try {
      for (const piece of plan.pieces) {
        const bytes = readExactly(fd, this.path, piece.fileOffset, piece.byteLength);
        const data = plan.float32 ? floatBytesToFloat32(bytes, plan.dtype) : bytes;
        onChunk({ data: data as never, elementOffset: piece.elementOffset, elements: piece.elements, fileOffset: piece.fileOffset });
      }
    } finally {
      closeSync(fd);
    }
  }

  #chunkPlan(name: string, options: ChunkOptions) {
    const float32 = options.as === 'float32';
    const info = float32 ? this.#requireFloat(name) : this.#require(name);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, not ${chunkBytes}`);
    const bits = DTYPE_BITS[info.dtype]!;
    // Whole elements per chunk; sub-byte dtypes (F4, F6) in whole bytes holding a whole number of elements.
    const unitElements = bits % 8 === 0 ? 1 : 8 / gcd(bits, 8);
    const unitBytes = (unitElements * bits) / 8;
    const perChunk = Math.max(1, Math.floor(chunkBytes / unitBytes)) * unitBytes;
    const pieces: Array<{ fileOffset: number; byteLength: number; elementOffset: number; elements: number }> = [];
    for (let at = 0; at < info.byteLength; at += perChunk) {
      const byteLength = Math.min(perChunk, info.byteLength - at);
      pieces.push({ fileOffset: info.offset + at, byteLength, elementOffset: (at * 8) / bits, elements: Math.floor((byteLength * 8) / bits) });
    }
    return { dtype: info.dtype, float32, pieces };
  }

  #require(name: string): SafetensorsTensorInfo {
    const info = this.#tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, `it has no tensor "${name}"`);
    return info;
  }

  #requireFloat(name: string): SafetensorsTensorInfo {
    const info = this.#require(name);
    if (!FLOAT32_READABLE_DTYPES.includes(info.dtype)) {
      throw new SafetensorsError(this.path, `tensor "${name}" is ${info.dtype}; only ${FLOAT32_READABLE_DTYPES.join(', ')} tensors are read as float32`);
    }
    return info;
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function truncatedError(path: string, end: number): SafetensorsError {
  return new SafetensorsError(path, `it ends before byte ${end} (truncated: the file changed or was cut short since it was opened)`);
}

function readExactly(fd: number, path: string, position: number, length: number): Uint8Array<ArrayBuffer> {
  // A fresh buffer (not Node's shared pool), so typed-array views over it are aligned.
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, length - done, position + done);
    if (got === 0) throw truncatedError(path, position + length);
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

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function checkEntries(path: string, header: Record<string, unknown>, dataStart: number, dataBytes: number) {
  const entries: Entry[] = [];
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
    const dtypeBits = typeof dtype === 'string' ? safetensorsDtypeBits(dtype) : undefined;
    if (dtypeBits === undefined) {
      throw bad(`unknown dtype ${JSON.stringify(dtype)} (the format's dtypes: ${Object.keys(DTYPE_BITS).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const elements = (shape as number[]).reduce((n, d) => n * d, 1);
    const bits = elements * dtypeBits;
    if (!Number.isSafeInteger(bits)) throw bad(`shape [${shape.join(', ')}] is too large`);
    if (bits % 8 !== 0) throw bad(`${elements} elements of ${dtype} do not fill whole bytes`);
    const expected = bits / 8;
    if (end - begin !== expected) throw bad(`${end - begin} bytes of data for a ${dtype} tensor of shape [${shape.join(', ')}] (${expected} bytes)`);
    if (end > dataBytes) {
      throw bad(`its data ends at byte ${dataStart + end}, past the end of the file (${dataStart + dataBytes} bytes): the file is truncated (an incomplete download or copy?)`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // safetensors' validate(): sorted by offsets, each tensor starts where the previous one ends, the last ends at
  // the end of the file.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin < covered) {
      throw new SafetensorsError(path, `the data of tensors "${previous!.name}" (bytes ${previous!.begin}..${previous!.end}) and "${e.name}" (bytes ${e.begin}..${e.end}) overlap`);
    }
    if (e.begin > covered) {
      throw new SafetensorsError(path, `bytes ${covered}..${e.begin} of the data section belong to no tensor (the tensors' data_offsets must cover it without gaps)`);
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== dataBytes) {
    throw new SafetensorsError(path, `${dataBytes - covered} bytes follow the last tensor's data (the tensors' data_offsets must cover the data section exactly)`);
  }
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const e of entries) tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, offset: dataStart + e.begin, byteLength: e.end - e.begin });
  return { tensors, metadata };
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** Every binary16 value as float32, indexed by its bits (256 KB, built on first use; the project's one table). */
let halfTable: Float32Array<ArrayBuffer> | undefined;
export function halfToFloatTable(): Float32Array<ArrayBuffer> {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** The dtypes floatBytesToFloat32 converts (F64 too: graph builders take it; SafetensorsFile reads F32/F16/BF16). */
export const FLOAT_BYTES_DTYPES: readonly string[] = ['F32', 'F16', 'BF16', 'F64'];

/**
 * Stored little-endian F32 / F16 / BF16 / F64 bytes as float32 values: F32 is a view over `bytes` when the machine
 * is little-endian and the bytes are 4-aligned, a copy otherwise; F16 and BF16 are exact, F64 rounds. Other dtypes
 * are a RangeError.
 */
export function floatBytesToFloat32(bytes: Uint8Array, dtype: string): Float32Array<ArrayBuffer> {
  const buffer = bytes.buffer as ArrayBuffer;
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(buffer, bytes.byteOffset, bytes.byteLength / 4);
    const view = new DataView(buffer, bytes.byteOffset, bytes.byteLength);
    return Float32Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
  }
  if (dtype === 'F64') {
    const view = new DataView(buffer, bytes.byteOffset, bytes.byteLength);
    return Float32Array.from({ length: bytes.byteLength / 8 }, (_, i) => view.getFloat64(i * 8, true));
  }
  if (dtype !== 'F16' && dtype !== 'BF16') throw new RangeError(`${dtype} is not a float dtype converted to float32 (${FLOAT_BYTES_DTYPES.join(', ')})`);
  const count = bytes.byteLength / 2;
  const out = new Float32Array(count);
  const bits16 = LITTLE_ENDIAN && bytes.byteOffset % 2 === 0 ? new Uint16Array(buffer, bytes.byteOffset, count) : undefined;
  const view = new DataView(buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32.
    const bits = new Uint32Array(out.buffer);
    if (bits16) for (let i = 0; i < count; i++) bits[i] = bits16[i]! << 16;
    else for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
    return out;
  }
  const table = halfToFloatTable();
  if (bits16) for (let i = 0; i < count; i++) out[i] = table[bits16[i]!]!;
  else for (let i = 0; i < count; i++) out[i] = table[view.getUint16(i * 2, true)]!;
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
