import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { deriveModel, derivedModelPath, discoverUNet, pruneStaleEntries, externalDataFiles, isExternal, loadModel, saveModel } from '../src/index.ts';
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

test("derived graph cache: a re-exported model's old entries are deleted when a new one is built, other models' kept", { skip: skipReason }, async () => {
  const cacheDir = join(dir, 'shared-cache');
  const { path } = externalCopy('c');
  const { path: otherPath } = externalCopy('d');
  const otherModel = loadModel(otherPath);
  otherModel.proto.docString = 'another model'; // identical files would share entries (the key is the content)
  saveModel(otherModel.proto, otherPath, { baseDir: otherModel.baseDir });
  const unet = discoverUNet(loadModel(path).proto);
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output);
  const reuse = await derivedModelPath(path, { reuse: attn2 }, { cacheDir });
  const capture = await derivedModelPath(path, { capture: attn2 }, { cacheDir });
  const other = await derivedModelPath(otherPath, { reuse: attn2 }, { cacheDir });
  const entries = () => readdirSync(cacheDir).filter((n) => /^[0-9a-f]{32}\.(onnx|json)$/.test(n)).sort();
  assert.equal(entries().length, 6, 'three entries, .onnx + .json each');
  assert.deepEqual(pruneStaleEntries(cacheDir, path, '0'.repeat(64)).sort(), [reuse.key, capture.key].sort(), 'pruning by another content removes that model only');
  assert.deepEqual(entries(), [`${other.key}.json`, `${other.key}.onnx`]);

  await derivedModelPath(path, { reuse: attn2 }, { cacheDir });
  await derivedModelPath(path, { capture: attn2 }, { cacheDir });
  // Re-export the model (same weights, another graph file): the next build removes both old entries.
  const model = loadModel(path);
  model.proto.docString = 're-exported';
  saveModel(model.proto, path, { baseDir: model.baseDir });
  const rebuilt = await derivedModelPath(path, { reuse: attn2 }, { cacheDir });
  assert.equal(rebuilt.fromCache, false);
  assert.notEqual(rebuilt.key, reuse.key);
  assert.deepEqual(entries(), [rebuilt.key, other.key].flatMap((k) => [`${k}.json`, `${k}.onnx`]).sort(), 'the old content\'s entries are gone, the other model\'s stays');
  assert.equal((await derivedModelPath(otherPath, { reuse: attn2 }, { cacheDir })).fromCache, true);
  assert.deepEqual(pruneStaleEntries(join(dir, 'no-such-cache'), path, '0'), [], 'a missing cache folder has nothing to prune');
});
