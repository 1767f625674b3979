/**
 * Model files for the loader tests, written from the test checkpoints: tensors copied out of a checkpoint
 * (its VAE or text encoder as standalone files), safetensors writing, and a kohya LoRA for a checkpoint.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { loraKeyMap, openSafetensors } from '@gategraph/onnx-graph/build';

export interface Raw {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** The tensors of `file` whose names start with `prefix`, renamed with `replacement`, as stored. */
export function copyTensors(file: string, prefix: string, replacement: string): Map<string, Raw> {
  const fd = openSync(file, 'r');
  try {
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    const headerBytes = Buffer.alloc(headerLength);
    readSync(fd, headerBytes, 0, headerLength, 8);
    const header = JSON.parse(headerBytes.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const out = new Map<string, Raw>();
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__' || !name.startsWith(prefix)) continue;
      const [start, end] = info.data_offsets;
      const bytes = Buffer.alloc(end - start);
      readSync(fd, bytes, 0, end - start, 8 + headerLength + start);
      out.set(replacement + name.slice(prefix.length), { dtype: info.dtype, shape: info.shape, bytes });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export function writeSafetensors(path: string, tensors: Map<string, Raw>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.byteLength));
  writeFileSync(path, Buffer.concat([length, json, ...[...tensors.values()].map((t) => t.bytes)]));
}

/**
 * A kohya LoRA (rank 4) for the cross-attention keys and values of every UNet block and the query / value
 * projections of every text encoder layer, with seeded values large enough to change the image.
 */
export function makeLora(checkpoint: string): Map<string, Raw> {
  const reader = openSafetensors(checkpoint);
  const shapes = new Map(reader.tensors().map((t) => [t.name, t.shape]));
  const rank = 4;
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const f32 = (shape: number[]) => {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, random);
    return { dtype: 'F32', shape, bytes: new Uint8Array(values.buffer) };
  };
  const out = new Map<string, Raw>();
  for (const [name, target] of loraKeyMap(reader)) {
    if (!/^lora_(unet_(down|up)_blocks_\d+_attentions_\d+_transformer_blocks_0_attn2_to_[kv]|te_text_model_encoder_layers_\d+_self_attn_[qv]_proj)$/.test(name)) continue;
    const [rows, cols] = shapes.get(target.key)! as [number, number];
    out.set(`${name}.lora_down.weight`, f32([rank, cols]));
    out.set(`${name}.lora_up.weight`, f32([rows, rank]));
    out.set(`${name}.alpha`, { dtype: 'F32', shape: [], bytes: new Uint8Array(new Float32Array([rank]).buffer) });
  }
  assert.ok(out.size > 0, 'the LoRA names modules of the checkpoint');
  return out;
}
