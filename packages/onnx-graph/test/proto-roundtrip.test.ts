import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { equals } from '@bufbuild/protobuf';
import {
  decodeModel,
  encodeModel,
  makeValueInfo,
  TensorProto_DataType,
} from '../src/index.ts';
import { create, GraphProtoSchema, ModelProtoSchema, newGraph, newNode, newTensor } from '../src/proto.ts';
import { maxRelError, run, skipReason, unetFeeds, unetPath } from './helpers.ts';

test('decode/encode of the test UNet round-trips: same message, same bytes, same ORT output', { skip: skipReason }, async () => {
  const bytes = readFileSync(unetPath);
  const model = decodeModel(bytes);
  const again = encodeModel(model);
  assert.ok(equals(ModelProtoSchema, decodeModel(again), model), 'decoded re-encoding differs from the decoded original');
  // torch writes fields in field-number order, as protobuf-es does; say so if that ever stops holding.
  assert.equal(Buffer.compare(Buffer.from(again), bytes), 0, 're-encoded bytes differ from the file (semantically equal)');
  const feeds = unetFeeds();
  const a = await run(model, feeds);
  const b = await run(decodeModel(again), feeds);
  assert.equal(maxRelError(a.out_sample!, b.out_sample!), 0);
});

test('int64 values past 2^53 and negative ones round-trip exactly', () => {
  const big = 2n ** 62n + 1n;
  const original = create(ModelProtoSchema, {
    irVersion: 8n,
    graph: newGraph({
      name: 'g',
      node: [newNode({ opType: 'Identity', input: ['x'], output: ['y'] })],
      input: [makeValueInfo('x', TensorProto_DataType.INT64, [3])],
      output: [makeValueInfo('y', TensorProto_DataType.INT64, [3])],
      initializer: [newTensor({ name: 'c', dims: [3n], dataType: TensorProto_DataType.INT64, int64Data: [big, -big, -1n] })],
    }),
  });
  const model = decodeModel(encodeModel(decodeModel(encodeModel(original))));
  assert.deepEqual(model.graph!.initializer[0]!.int64Data, [big, -big, -1n]);
  assert.equal(model.irVersion, 8n);
  assert.ok(equals(GraphProtoSchema, model.graph!, decodeModel(encodeModel(model)).graph!));
});

test('garbage bytes give a decode error that names the file', () => {
  assert.throws(() => decodeModel(new TextEncoder().encode('version https://git-lfs.github.com/spec/v1\n'), '/x/unet/model.onnx'), /\/x\/unet\/model\.onnx is not a valid ONNX ModelProto/);
});
