import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Executor, silentLogger, validatePrompt, type ApiPrompt } from '@gategraph/core';
import { decodePng, encodePng, readPngText } from '@gategraph/diffusion';
import { host, packRegistry, savedImages, validateAndRun } from './helpers.ts';

// A 4x2 RGBA picture with one transparent pixel, loaded through LoadImage (no model needed).
const pixels = new Uint8Array(4 * 2 * 4);
for (let p = 0; p < 8; p++) pixels.set([p * 30, 255 - p * 30, 100, p === 5 ? 0 : 255], p * 4);
writeFileSync(join(host.paths.input, 'tile.png'), encodePng({ width: 4, height: 2, channels: 4, data: pixels }));

function save(prefix: string, node: 'SaveImage' | 'PreviewImage' = 'SaveImage'): ApiPrompt {
  return {
    '1': { class_type: 'LoadImage', inputs: { image: 'tile.png' } },
    '2': { class_type: node, inputs: node === 'SaveImage' ? { images: ['1', 0], filename_prefix: prefix } : { images: ['1', 0] } },
  };
}

test('LoadImage -> SaveImage round-trips the pixels (alpha dropped, as ComfyUI) and embeds the prompt', async () => {
  const prompt = save('roundtrip');
  const { result } = await validateAndRun(prompt, { extraPngInfo: { workflow: { note: 'ünïcode stays ASCII' } } });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [file] = savedImages(result);
  const bytes = readFileSync(join(host.paths.output, file!.filename));
  const png = decodePng(bytes);
  assert.equal(png.channels, 3);
  assert.deepEqual([...png.data.subarray(0, 6)], [0, 255, 100, 30, 225, 100]);
  const text = readPngText(bytes);
  assert.deepEqual(JSON.parse(text.prompt!), prompt);
  assert.equal(text.workflow, '{"note":"\\u00fcn\\u00efcode stays ASCII"}');
});

test('SaveImage numbers files after the highest existing one and reports them for the UI', async () => {
  const dir = join(host.paths.output);
  writeFileSync(join(dir, 'counted_00007_.png'), 'older file');
  writeFileSync(join(dir, 'counted_notes.txt'), 'not a numbered file');
  writeFileSync(join(dir, 'counted2_00042_.png'), 'another prefix');
  const first = await validateAndRun(save('counted'));
  assert.deepEqual(savedImages(first.result), [{ filename: 'counted_00008_.png', subfolder: '', type: 'output' }]);
  const second = await validateAndRun(save('counted'));
  assert.deepEqual(savedImages(second.result), [{ filename: 'counted_00009_.png', subfolder: '', type: 'output' }]);
  assert.equal(readFileSync(join(dir, 'counted_00007_.png'), 'utf8'), 'older file');
});

test('SaveImage never overwrites a file, even one its counter did not see', async () => {
  // "shot_%batch_num%" counts files named "shot__NNNNN_" but writes "shot_0_NNNNN_.png": an existing
  // shot_0_00001_.png is invisible to the counter, and exclusive creation moves on instead of replacing it.
  writeFileSync(join(host.paths.output, 'shot_0_00001_.png'), 'precious');
  const { result } = await validateAndRun(save('shot_%batch_num%'));
  assert.deepEqual(savedImages(result), [{ filename: 'shot_0_00002_.png', subfolder: '', type: 'output' }]);
  assert.equal(readFileSync(join(host.paths.output, 'shot_0_00001_.png'), 'utf8'), 'precious');
});

test('subfolders in the prefix are created inside the output folder', async () => {
  const { result } = await validateAndRun(save('portraits/2026/cat'));
  assert.deepEqual(savedImages(result), [{ filename: 'cat_00001_.png', subfolder: 'portraits/2026', type: 'output' }]);
  assert.ok(existsSync(join(host.paths.output, 'portraits', '2026', 'cat_00001_.png')));
  const dots = await validateAndRun(save('..hidden/cat'));
  assert.deepEqual(savedImages(dots.result), [{ filename: 'cat_00001_.png', subfolder: '..hidden', type: 'output' }], 'a name starting with dots is not ".."');
});

test('a prefix leaving the output folder is refused, naming the input and the value', async () => {
  const outside = join(host.dir, 'outside'); // next to output/, not in it
  mkdirSync(outside);
  symlinkSync(outside, join(host.paths.output, 'link-out'), 'dir');
  const cases: [string, RegExp][] = [
    ['../escaped', /^filename_prefix "\.\.\/escaped": it points to .*; saving outside the output folder is not allowed/],
    ['deep/../../escaped', /^filename_prefix "deep\/\.\.\/\.\.\/escaped": it points to /],
    [join(outside, 'abs'), /^filename_prefix ".*abs": it is an absolute path; saving outside the output folder is not allowed/],
    ['link-out/x', /^filename_prefix "link-out\/x": its folder resolves to .* through a symbolic link; saving outside the output folder is not allowed/],
  ];
  for (const [prefix, message] of cases) {
    const { result } = await validateAndRun(save(prefix));
    assert.equal(result.status, 'error', prefix);
    assert.equal(result.error?.node_type, 'SaveImage');
    assert.equal(result.error?.exception_type, 'NodeInputError');
    assert.match(result.error?.message ?? '', message);
  }
  assert.deepEqual(readdirSync(outside), [], 'nothing was written outside');
  assert.ok(!existsSync(join(host.dir, 'escaped_00001_.png')));
});

test('PreviewImage writes into the temp folder with type "temp"', async () => {
  const { result } = await validateAndRun(save('', 'PreviewImage'));
  const [file] = savedImages(result);
  assert.equal(file?.type, 'temp');
  assert.match(file!.filename, /^gategraph_temp_[a-z]{5}_00001_\.png$/);
  assert.ok(existsSync(join(host.paths.temp, file!.filename)));
});

test('LoadImage turns alpha into the MASK (1 = transparent) and re-runs when the file changes', async () => {
  mkdirSync(join(host.paths.input, 'masks'), { recursive: true });
  const prompt: ApiPrompt = {
    '1': { class_type: 'LoadImage', inputs: { image: 'tile.png' } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'masks/tile' } },
  };
  const registry = await packRegistry();
  const executor = new Executor(registry, { paths: host.paths, logger: silentLogger });
  const definition = registry.get('LoadImage')!;
  const run = async () => {
    const v = await validatePrompt(prompt, registry);
    return executor.run(v.prompt, { promptId: String(Math.random()), outputs: v.outputs });
  };
  const first = await run();
  assert.deepEqual(first.executed.sort(), ['1', '2']);
  const again = await run();
  assert.deepEqual(again.executed, [], 'unchanged file: nothing re-runs');
  writeFileSync(join(host.paths.input, 'tile.png'), encodePng({ width: 4, height: 2, channels: 3, data: new Uint8Array(24).fill(9) }));
  const changed = await run();
  assert.deepEqual(changed.executed.sort(), ['1', '2'], 'a changed file loads again');

  const ctx = { paths: host.paths } as Parameters<typeof definition.execute>[1];
  writeFileSync(join(host.paths.input, 'masks', 'alpha.png'), encodePng({ width: 4, height: 2, channels: 4, data: pixels }));
  const [, mask] = (await definition.execute({ image: 'masks/alpha.png' }, ctx)) as [unknown, { data: Float32Array; shape: number[] }];
  assert.deepEqual(mask.shape, [1, 2, 4]);
  assert.deepEqual([...mask.data], [0, 0, 0, 0, 0, 1, 0, 0]);
});

test('LoadImage reads JPEG files too (no alpha: an empty 64x64 mask, as ComfyUI)', async () => {
  const { default: jpeg } = await import('jpeg-js');
  const rgba = new Uint8Array(16 * 8 * 4).fill(255);
  for (let p = 0; p < 16 * 8; p++) rgba.set([40, 90, 200, 255], p * 4);
  writeFileSync(join(host.paths.input, 'photo.jpg'), jpeg.encode({ data: rgba, width: 16, height: 8 }, 95).data);
  const definition = (await packRegistry()).get('LoadImage')!;
  const ctx = { paths: host.paths } as Parameters<typeof definition.execute>[1];
  const [image, mask] = (await definition.execute({ image: 'photo.jpg' }, ctx)) as { data: Float32Array; shape: number[] }[];
  assert.deepEqual(image!.shape, [1, 8, 16, 3]);
  assert.ok(Math.abs(image!.data[2]! - 200 / 255) < 0.02, `blue channel ${image!.data[2]}`);
  assert.deepEqual(mask!.shape, [1, 64, 64]);
  assert.ok(mask!.data.every((v) => v === 0));
});

test('a filename_prefix too long for a file name is a clear error on SaveImage, not a raw ENAMETOOLONG', async () => {
  const registry = await packRegistry();
  const validation = await validatePrompt(save('é'.repeat(200)), registry);
  const result = await new Executor(registry, { paths: host.paths, logger: silentLogger }).run(validation.prompt, { promptId: 'long-name', outputs: validation.outputs });
  assert.equal(result.error?.node_type, 'SaveImage');
  assert.match(result.error!.message, /^filename_prefix is too long: a file name may have 255 bytes, and "<name>_00001_\.png" would have 413; use a shorter name$/);
});

test('SaveImage and PreviewImage refuse what is not an IMAGE on their input, saying what came', async () => {
  const registry = await packRegistry();
  const ctx = { paths: host.paths, log: silentLogger } as never;
  const cases: Array<[unknown, RegExp]> = [
    [{ samples: { data: new Float32Array(4), shape: [1, 4, 1, 1] } }, /got an object with keys samples$/],
    [{ data: new Float32Array(12), shape: [2, 2, 3] }, /got a tensor of shape \[2, 2, 3\]$/],
    [{ data: new Float32Array(50), shape: [1, 5, 2, 5] }, /got a tensor of shape \[1, 5, 2, 5\]$/],
    [undefined, /got undefined$/],
    [3, /got a number \(3\)$/],
  ];
  for (const id of ['SaveImage', 'PreviewImage']) {
    const node = registry.get(id)!;
    for (const [images, says] of cases) {
      assert.throws(
        () => node.execute({ images, filename_prefix: 'bad' } as never, ctx),
        (error: Error) => error.name === 'NodeInputError' && /^images: expected an IMAGE/.test(error.message) && says.test(error.message),
        `${id}: ${JSON.stringify(images)}`,
      );
    }
  }
  assert.equal(readdirSync(host.paths.output).some((f) => f.startsWith('bad')), false, 'nothing was written');
});
