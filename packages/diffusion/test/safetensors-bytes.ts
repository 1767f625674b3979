/**
 * Writes safetensors files for tests, byte by byte from the format's description (8-byte little-endian header
 * length, JSON header, data), independently of the reader under test.
 */
import { writeFileSync } from 'node:fs';

export interface RawTensor {
  dtype: string;
  shape: number[];
  /** The tensor's bytes as stored (little-endian). */
  bytes: Uint8Array;
}

/** A safetensors file's bytes; tensors are laid out in the order given. */
export function safetensorsBytes(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  return withHeader(JSON.stringify(header), Object.values(tensors).map((t) => t.bytes));
}

/** A file of `header` (any text, valid or not) and `data` (concatenated). */
export function withHeader(header: string, data: Uint8Array[] = []): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.byteLength + data.reduce((n, d) => n + d.byteLength, 0));
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const d of data) {
    out.set(d, at);
    at += d.byteLength;
  }
  return out;
}

/** float32 values as little-endian bytes. */
export function f32(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** 16-bit patterns as little-endian bytes. */
export function u16(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint16(i * 2, v, true));
  return out;
}

export function writeSafetensors(path: string, tensors: Record<string, RawTensor>, metadata?: Record<string, string>): void {
  writeFileSync(path, safetensorsBytes(tensors, metadata));
}
