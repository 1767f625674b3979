import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Executor,
  NodeRegistry,
  listWebExtensions,
  loadPacks,
  silentLogger,
  validatePrompt,
  type ApiPrompt,
  type HostPaths,
  type PackLoadReport,
} from '@gategraph/core';

const packRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const repoRoot = dirname(dirname(packRoot));

const registry = new NodeRegistry();
let report: PackLoadReport;
let paths: HostPaths;

before(async () => {
  // Loaded by package name, the way a host loads workspace packs.
  report = await loadPacks({ packages: ['@gategraph/example-pack'], resolveFrom: repoRoot, registry });
  const tmp = await mkdtemp(join(tmpdir(), 'gategraph-example-pack-'));
  paths = { output: join(tmp, 'output'), input: join(tmp, 'input'), temp: join(tmp, 'temp'), models: join(tmp, 'models') };
});

after(async () => {
  await rm(dirname(paths.output), { recursive: true, force: true });
});

/** Validates and runs a prompt the way the server does. */
async function run(executor: Executor, prompt: ApiPrompt, promptId: string) {
  const validation = await validatePrompt(prompt, registry);
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  return executor.run(validation.prompt, { promptId, outputs: validation.outputs });
}

test('the example pack loads through loadPacks with all its nodes and its web folder', () => {
  assert.deepEqual(report.failed, []);
  assert.equal(report.loaded.length, 1);
  const pack = report.loaded[0]!;
  assert.equal(pack.name, 'example-pack');
  assert.equal(pack.root, packRoot);
  assert.deepEqual(pack.nodes, [
    'StringConcat',
    'SwitchString',
    'RegexReplace',
    'FormatNumber',
    'TextStats',
    'FormatTextStats',
    'RandomSeedList',
    'ShowText',
    'SaveText',
    'ImageBlend',
    'RescaleCFG',
    'WhileLoopOpen',
    'WhileLoopClose',
    'IntMath',
    'IntCompare',
    'OutputGate',
    'AverageNumbers',
    'WaitSeconds',
    'HalfOf',
  ]);
  assert.deepEqual(listWebExtensions(report), [
    { pack: 'example-pack', urlPrefix: '/extensions/example-pack/', dir: join(packRoot, 'web'), files: ['show-text.js'] },
  ]);
});

test('its nodes run through the executor: lists, lazy branches, custom socket types, UI output, files', async () => {
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const prompt: ApiPrompt = {
    seeds: { class_type: 'RandomSeedList', inputs: { seed: 42, count: 3, mode: 'from seed' } },
    showSeeds: { class_type: 'ShowText', inputs: { value: ['seeds', 0] } },
    price: { class_type: 'FormatNumber', inputs: { value: 1234.5, decimals: 2, style: 'plain', grouping: true, prefix: '$' } },
    showPrice: { class_type: 'ShowText', inputs: { value: ['price', 0] } },
    hello: { class_type: 'StringConcat', inputs: { a: 'hello', b: 'world', separator: ',   ' } },
    tidy: { class_type: 'RegexReplace', inputs: { text: ['hello', 0], pattern: '\\s+', replacement: ' ', ignore_case: false } },
    // The branch not taken: it would fail if it ran (its pattern arrives over a link, so only execute can check it).
    badPattern: { class_type: 'StringConcat', inputs: { a: '(', b: '', separator: '' } },
    failing: { class_type: 'RegexReplace', inputs: { text: ['hello', 0], pattern: ['badPattern', 0], replacement: '', ignore_case: false } },
    pick: { class_type: 'SwitchString', inputs: { use_first: true, first: ['tidy', 0], second: ['failing', 0] } },
    stats: { class_type: 'TextStats', inputs: { text: ['pick', 0] } },
    format: { class_type: 'FormatTextStats', inputs: { stats: ['stats', 0], template: '{words} words, {characters} chars' } },
    showStats: { class_type: 'ShowText', inputs: { value: ['format', 0] } },
    save: { class_type: 'SaveText', inputs: { text: ['pick', 0], filename_prefix: 'notes/pick', save_prompt: true } },
  };
  const result = await run(executor, prompt, 'example-1');
  assert.equal(result.status, 'success', JSON.stringify(result.error));

  const seeds = result.outputs.showSeeds?.text;
  assert.equal(seeds?.length, 3);
  assert.ok(seeds.every((s) => /^\d+$/.test(String(s))), String(seeds));
  assert.equal(new Set(seeds).size, 3);
  assert.deepEqual(result.outputs.showStats, { text: ['2 words, 12 chars'] });
  assert.deepEqual(result.outputs.showPrice, { text: ['$1,234.50'] });
  assert.ok(!result.executed.includes('failing') && !result.executed.includes('badPattern'), 'the lazy branch not taken must not run');

  assert.deepEqual(result.outputs.save, { text_files: [{ filename: 'pick_00001_.txt', subfolder: 'notes', type: 'output' }] });
  assert.equal(await readFile(join(paths.output, 'notes', 'pick_00001_.txt'), 'utf8'), 'hello, world');
  const savedPrompt = JSON.parse(await readFile(join(paths.output, 'notes', 'pick_00001_.txt.prompt.json'), 'utf8'));
  assert.equal(savedPrompt.save.class_type, 'SaveText');

  // Same seed, same list, across runs and executors.
  const again = await run(new Executor(registry, { paths, logger: silentLogger }), prompt, 'example-2');
  assert.deepEqual(again.outputs.showSeeds, result.outputs.showSeeds);
  assert.deepEqual(await readdir(join(paths.output, 'notes')), [
    'pick_00001_.txt',
    'pick_00001_.txt.prompt.json',
    'pick_00002_.txt',
    'pick_00002_.txt.prompt.json',
  ]);
});

test('the taken lazy branch runs, and a bad pattern there is a user-facing NodeInputError', async () => {
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const result = await run(executor, {
    a: { class_type: 'StringConcat', inputs: { a: '[', b: '', separator: '' } },
    bad: { class_type: 'RegexReplace', inputs: { text: 'x', pattern: ['a', 0], replacement: '', ignore_case: false } },
    pick: { class_type: 'SwitchString', inputs: { use_first: false, first: ['a', 0], second: ['bad', 0] } },
    show: { class_type: 'ShowText', inputs: { value: ['pick', 0] } },
  }, 'example-3');
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, 'bad');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /"\[" is not a valid regular expression/);
});

test('RegexReplace.validate rejects a bad constant pattern before anything runs', async () => {
  const validation = await validatePrompt(
    {
      tidy: { class_type: 'RegexReplace', inputs: { text: ['src', 0], pattern: '(unclosed', replacement: '', ignore_case: false } },
      src: { class_type: 'StringConcat', inputs: { a: 'x', b: 'y', separator: '' } },
      show: { class_type: 'ShowText', inputs: { value: ['tidy', 0] } },
    },
    registry,
  );
  const errors = validation.nodeErrors.tidy?.errors ?? [];
  assert.equal(errors[0]?.type, 'custom_validation_failed');
  assert.match(JSON.stringify(errors[0]), /not a valid regular expression/);
});

test("RandomSeedList's fingerprint: 'from seed' is cached between runs, 'fresh each run' runs every time", async () => {
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const prompt = (mode: string): ApiPrompt => ({
    seeds: { class_type: 'RandomSeedList', inputs: { seed: 7, count: 2, mode } },
    show: { class_type: 'ShowText', inputs: { value: ['seeds', 0] } },
  });
  await run(executor, prompt('from seed'), 'fp-1');
  assert.ok((await run(executor, prompt('from seed'), 'fp-2')).cached.includes('seeds'));
  const first = await run(executor, prompt('fresh each run'), 'fp-3');
  const second = await run(executor, prompt('fresh each run'), 'fp-4');
  assert.ok(second.executed.includes('seeds'), 'a NaN fingerprint must re-run the node');
  assert.notDeepEqual(first.outputs.show, second.outputs.show);
});

test('ImageBlend (a port written with the tensor helpers) gives ComfyUI\'s formulas, resizing and broadcasting image2', async () => {
  const node = registry.get('ImageBlend')!;
  // image1: 2 images of 2x2 RGB; image2: one 1x1 image, resized to 2x2 and blended into both.
  const image1 = { data: Float32Array.from({ length: 24 }, (_, i) => (i % 10) / 10), shape: [2, 2, 2, 3] };
  const image2 = { data: Float32Array.of(0.2, 0.6, 0.9), shape: [1, 1, 1, 3] };
  const blend = async (mode: string, factor: number) => ((await node.execute({ image1, image2, blend_factor: factor, blend_mode: mode } as never, {} as never)) as [{ data: Float32Array; shape: number[] }])[0];
  const expect = (f: (a: number, b: number) => number, factor: number) =>
    Array.from(image1.data, (a, i) => Math.min(1, Math.max(0, a * (1 - factor) + f(a, image2.data[i % 3]!) * factor)));
  const close = (actual: Float32Array, wanted: number[], what: string) => wanted.forEach((w, i) => assert.ok(Math.abs(actual[i]! - w) < 1e-6, `${what} [${i}]: ${actual[i]} vs ${w}`));
  const multiply = await blend('multiply', 0.7);
  assert.deepEqual(multiply.shape, [2, 2, 2, 3]);
  close(multiply.data, expect((a, b) => a * b, 0.7), 'multiply');
  close((await blend('screen', 1)).data, expect((a, b) => 1 - (1 - a) * (1 - b), 1), 'screen');
  close((await blend('overlay', 0.5)).data, expect((a, b) => (a <= 0.5 ? 2 * a * b : 1 - 2 * (1 - a) * (1 - b)), 0.5), 'overlay');
  close((await blend('difference', 1)).data, expect((a, b) => a - b, 1), 'difference, clamped at 0');
  close((await blend('normal', 0)).data, Array.from(image1.data), 'factor 0 is image1');
});
