import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { deriveModel, derivedModelPath, discoverUNet, externalDataFiles, isExternal, loadModel, saveModel } from '../src/index.ts';
import { maxRelError, run, skipReason, testUNet, unetFeeds } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'gategraph-ext-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The test UNet rewritten with its weights in unet/model.onnx_data, as large exports are. */
function externalCopy(name: string) {
  const path = join(dir, name, 'unet', 'model.onnx');
  const saved = saveModel(testUNet().proto, path, { externalize: { location: 'model.onnx_data' } });
  return { path, saved };
}

test('external weights: write, derive into a cache subfolder, run in ORT; the data file is shared, not copied', { skip: skipReason }, async () => {
  const { path, saved } = externalCopy('a');
  assert.ok(saved.bytes < 2_000_000, 'the graph protobuf is small once the weights are external');
  const file = loadModel(path);
  assert.ok(file.proto.graph!.initializer.filter(isExternal).length > 10);
  const unet = discoverUNet(file.proto);
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output);
  const feeds = unetFeeds(2, 21);
  const reference = await run(testUNet().proto, feeds);
  const captured = await run(deriveModel(testUNet().proto, { capture: attn2 }).model, feeds);

  const derived = deriveModel(file.proto, { reuse: attn2 }, { baseDir: file.baseDir });
  const out = saveModel(derived.model, join(file.baseDir, '.gategraph-derived', 'reuse.onnx'), { baseDir: file.baseDir });
  // ORT 1.30 refuses external paths leaving the model's folder ("../model.onnx_data"), so the data file is
  // hard-linked into the cache folder: same inode, no bytes copied.
  assert.equal(out.dataBytesWritten, 0);
  assert.equal(statSync(out.dataFiles[0]!).ino, statSync(join(file.baseDir, 'model.onnx_data')).ino);
  const reused = await run(out.path, { ...feeds, ...Object.fromEntries(attn2.map((n) => [n, captured[n]!])) });
  assert.ok(maxRelError(reused.out_sample!, reference.out_sample!) < 1e-4);
  const full = await run(path, feeds);
  assert.ok(maxRelError(full.out_sample!, reference.out_sample!) < 1e-6);

  // 'copy' writes only the tensors the derived graph still uses.
  const copied = saveModel(derived.model, join(dir, 'copy', 'reuse.onnx'), { baseDir: file.baseDir, externalData: 'copy' });
  assert.ok(copied.dataBytesWritten > 0 && copied.dataBytesWritten < statSync(join(file.baseDir, 'model.onnx_data')).size);
  const again = await run(copied.path, { ...feeds, ...Object.fromEntries(attn2.map((n) => [n, captured[n]!])) });
  assert.ok(maxRelError(again.out_sample!, reused.out_sample!) === 0);
  assert.deepEqual(externalDataFiles(loadModel(copied.path).proto, join(dir, 'copy')), [join(dir, 'copy', 'reuse.onnx_data')]);
});

test('derived graph cache: built once, hit by content key, rebuilt when corrupted or the weights change', { skip: skipReason }, async () => {
  const { path } = externalCopy('b');
  const unet = discoverUNet(loadModel(path).proto);
  const spec = { reuse: unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output) };
  const first = await derivedModelPath(path, spec);
  assert.equal(first.fromCache, false);
  assert.match(first.path, /unet\/\.gategraph-derived\/[0-9a-f]{32}\.onnx$/);
  assert.deepEqual(first.report.droppedInputs, ['encoder_hidden_states']);
  assert.match(readFileSync(join(dirname(first.path), '.gitignore'), 'utf8'), /^\*$/m, 'the cache folder keeps itself out of git');
  const second = await derivedModelPath(path, { reuse: [...spec.reuse].reverse() });
  assert.equal(second.fromCache, true, 'same spec in another order hits the same entry');
  assert.equal(second.path, first.path);
  const other = await derivedModelPath(path, { capture: spec.reuse });
  assert.notEqual(other.key, first.key);

  truncateSync(first.path, 100);
  const rebuilt = await derivedModelPath(path, spec);
  assert.equal(rebuilt.fromCache, false);
  assert.ok(loadModel(rebuilt.path).proto.graph!.node.length > 0);

  writeFileSync(first.path.replace(/\.onnx$/, '.json'), '{ not json');
  assert.equal((await derivedModelPath(path, spec)).fromCache, false);

  // Re-exported weights (same graph file, new data file): the entry is stale.
  const data = join(dir, 'b', 'unet', 'model.onnx_data');
  const bytes = readFileSync(data);
  rmSync(data);
  writeFileSync(data, Buffer.concat([bytes, Buffer.alloc(16)]));
  const stale = await derivedModelPath(path, spec);
  assert.equal(stale.fromCache, false);
  assert.ok(existsSync(stale.path));
  // The cache folder's link was re-pointed at the new data file: the rebuilt graph runs on the new weights.
  assert.equal(statSync(join(dir, 'b', 'unet', '.gategraph-derived', 'model.onnx_data')).ino, statSync(data).ino);
  const feeds = unetFeeds(1, 3);
  const captured = await run(deriveModel(testUNet().proto, { capture: spec.reuse }).model, feeds);
  const out = await run(stale.path, { ...feeds, ...Object.fromEntries(spec.reuse.map((n) => [n, captured[n]!])) });
  assert.ok(maxRelError(out.out_sample!, captured.out_sample!) < 1e-4);
});
