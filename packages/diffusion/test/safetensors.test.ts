import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_HEADER_BYTES, SafetensorsError, SafetensorsFile } from '../src/index.ts';
import { f32, u16, withHeader, writeSafetensors } from './safetensors-bytes.ts';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (bytes: Uint8Array): string => {
  const path = join(dir, `t${n++}.safetensors`);
  writeFileSync(path, bytes);
  return path;
};

test('lists tensors with dtype, shape and absolute offsets, reads one by offset, keeps __metadata__', () => {
  const path = join(dir, 'list.safetensors');
  writeSafetensors(
    path,
    {
      'b.weight': { dtype: 'F32', shape: [2, 3], bytes: f32([1, 2, 3, 4, 5, 6]) },
      'a.ids': { dtype: 'I64', shape: [2], bytes: new Uint8Array(16) },
    },
    { format: 'pt' },
  );
  const st = SafetensorsFile.open(path);
  assert.deepEqual(st.metadata, { format: 'pt' });
  assert.deepEqual(st.names(), ['a.ids', 'b.weight']);
  assert.deepEqual(st.tensors().map((t) => t.name), ['b.weight', 'a.ids'], 'in data order');
  const w = st.tensor('b.weight')!;
  const headerEnd = st.tensor('a.ids')!.offset - 24;
  assert.deepEqual([w.dtype, w.shape, w.offset, w.byteLength], ['F32', [2, 3], headerEnd, 24]);
  assert.deepEqual(st.readFloat32('b.weight'), { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3] });
  assert.equal(st.readBytes('a.ids').byteLength, 16);
  assert.throws(() => st.readFloat32('a.ids'), /tensor "a.ids" is I64; only F32, F16, BF16/);
  assert.throws(() => st.readFloat32('missing'), /has no tensor "missing"/);
});

test('F16 and BF16 are converted exactly to float32', () => {
  // half: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), 1/3 rounded, +inf; bfloat16: 1, 3.140625, -123.5
  const path = file(
    withHeader(JSON.stringify({ h: { dtype: 'F16', shape: [6], data_offsets: [0, 12] }, b: { dtype: 'BF16', shape: [3], data_offsets: [12, 18] } }), [
      u16([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00]),
      u16([0x3f80, 0x4049, 0xc2f7]),
    ]),
  );
  const st = SafetensorsFile.open(path);
  assert.deepEqual([...st.readFloat32('h').data], [1, -2, 65504, 2 ** -24, 0.333251953125, Infinity]);
  assert.deepEqual([...st.readFloat32('b').data], [1, 3.140625, -123.5]);
});

test('malformed files are refused with what is wrong', () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['shorter than the length field', new Uint8Array(5), /shorter than the 8-byte header length/],
    ['header over 100 MB', (() => {
      const b = new Uint8Array(16);
      new DataView(b.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
      return b;
    })(), /over the format's limit of 100000000/],
    ['header past the end of the file', (() => {
      const b = withHeader('{}');
      new DataView(b.buffer).setBigUint64(0, 1000n, true);
      return b;
    })(), /claims 1000 bytes but the file ends 2 bytes after/],
    ['not JSON', withHeader('{"a": '), /not UTF-8 JSON/],
    ['not an object', withHeader('[1, 2]'), /not a JSON object/],
    ['unknown dtype', withHeader(JSON.stringify({ x: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }), [new Uint8Array(16)]), /tensor "x": unknown dtype "F128"/],
    ['size disagrees with shape', withHeader(JSON.stringify({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), [new Uint8Array(8)]), /8 bytes of data for a F32 tensor of shape \[3\] \(12 bytes\)/],
    ['data past the end', withHeader(JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }), [new Uint8Array(8)]), /past the end of the file/],
    ['bad offsets', withHeader(JSON.stringify({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }), [new Uint8Array(8)]), /data_offsets \[4,0\] is not \[begin, end\]/],
    ['bad shape', withHeader(JSON.stringify({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }), [new Uint8Array(4)]), /shape \[-1\] is not a list of sizes/],
    ['metadata not strings', withHeader(JSON.stringify({ __metadata__: { a: 1 } })), /__metadata__ "a" is not a string/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => SafetensorsFile.open(file(bytes)), (err: unknown) => err instanceof SafetensorsError && message.test(err.message), what);
  }
});

test('an empty header is a file without tensors', () => {
  const st = SafetensorsFile.open(file(withHeader('{}  ')));
  assert.deepEqual(st.tensors(), []);
  assert.deepEqual(st.metadata, {});
});

test('the data section must be covered exactly, as safetensors\' own reader checks: gaps, overlaps, trailing bytes, truncation', () => {
  const x = (begin: number, end: number) => ({ dtype: 'F32', shape: [(end - begin) / 4], data_offsets: [begin, end] });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['overlap', withHeader(JSON.stringify({ a: x(0, 8), b: x(4, 12) }), [new Uint8Array(12)]), /the data of tensors "a" \(bytes 0\.\.8\) and "b" \(bytes 4\.\.12\) overlap/],
    ['gap', withHeader(JSON.stringify({ a: x(0, 4), b: x(8, 12) }), [new Uint8Array(12)]), /bytes 4\.\.8 of the data section belong to no tensor/],
    ['trailing', withHeader(JSON.stringify({ a: x(0, 4) }), [new Uint8Array(12)]), /8 bytes follow the last tensor's data/],
    ['truncated', withHeader(JSON.stringify({ a: x(0, 4), b: x(4, 16) }), [new Uint8Array(10)]), /tensor "b": its data ends at byte \d+, past the end of the file \(\d+ bytes\): the file is truncated/],
    ['inherited name as dtype', withHeader(JSON.stringify({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }), [new Uint8Array(4)]), /tensor "a": unknown dtype "toString"/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => SafetensorsFile.open(file(bytes)), (err: unknown) => err instanceof SafetensorsError && message.test(err.message) && err.message.includes('.safetensors is not a readable safetensors file: '), what);
  }
  // Zero-sized tensors take no bytes and may share an offset.
  const st = SafetensorsFile.open(file(withHeader(JSON.stringify({ e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, a: x(0, 4), f: { dtype: 'I64', shape: [2, 0], data_offsets: [4, 4] } }), [new Uint8Array(4)])));
  assert.deepEqual([st.count, st.has('e'), st.readFloat32('e').data.length], [3, true, 0]);
});

test('tensors stream in chunks of whole elements (bytes or float32), sync and async, one chunk in memory at a time', async () => {
  const halves = Array.from({ length: 11 }, (_, i) => 0x3c00 + i); // 1, 1 + 2^-10, ...
  const path = file(withHeader(JSON.stringify({ h: { dtype: 'F16', shape: [11], data_offsets: [0, 22] }, w: { dtype: 'F32', shape: [3], data_offsets: [22, 34] } }), [u16(halves), f32([0.5, -1, 2])]));
  const st = SafetensorsFile.open(path);
  const whole = st.readFloat32('h').data;
  const pieces: Array<[number, number, number]> = [];
  const values: number[] = [];
  st.forEachChunk('h', (c) => {
    pieces.push([c.elementOffset, c.elements, c.fileOffset - st.tensor('h')!.offset]);
    values.push(...c.data);
  }, { as: 'float32', chunkBytes: 7 }); // rounded down to 3 halves (6 bytes)
  assert.deepEqual(pieces, [[0, 3, 0], [3, 3, 6], [6, 3, 12], [9, 2, 18]]);
  assert.deepEqual(values, [...whole]);
  const bytes: number[] = [];
  for await (const c of st.chunks('h', { chunkBytes: 4 })) bytes.push(...c.data);
  assert.deepEqual(bytes, [...st.readBytes('h')]);
  const asyncValues: number[] = [];
  for await (const c of st.chunks('w', { as: 'float32', chunkBytes: 1 })) asyncValues.push(...c.data);
  assert.deepEqual(asyncValues, [0.5, -1, 2], 'at least one element per chunk');
  assert.deepEqual(st.readFloat32Many(['w', 'h']).map((t) => t.shape), [[3], [11]]);
  assert.throws(() => st.forEachChunk('h', () => {}, { chunkBytes: 0 }), RangeError);
});

test('the graph builders\' openSafetensors is this reader, with CheckpointError codes', async () => {
  const { openSafetensors, CheckpointError } = await import('@gategraph/onnx-graph/build');
  const path = join(dir, 'builder.safetensors');
  writeSafetensors(path, { w: { dtype: 'F32', shape: [2], bytes: f32([1, 2]) } });
  const reader = openSafetensors(path);
  assert.ok(reader instanceof SafetensorsFile);
  assert.deepEqual([...reader.readFloat32('w').data], [1, 2]);
  assert.throws(() => reader.readBytes('nope'), (err: unknown) => err instanceof CheckpointError && err.code === 'missing_key' && err.key === 'nope');
  const bad = file(withHeader(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), [new Uint8Array(12)]));
  assert.throws(() => openSafetensors(bad), (err: unknown) => err instanceof CheckpointError && err.code === 'bad_checkpoint' && /is not a readable safetensors file: the data of tensors "a"/.test(err.message));
});
