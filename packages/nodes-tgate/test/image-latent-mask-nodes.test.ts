// ComfyUI's core latent, image and mask nodes, each run through the real executor from a prompt, as a workflow
// runs them: shapes, values at known pixels, ComfyUI's size rounding, the noise mask and batch indices following
// the latents they belong to, lists out of the rebatch nodes, refusals of sizes that cannot fit, and the
// object_info schema ComfyUI clients address the nodes by.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { defineNode, objectInfo, socket, string, type ApiPrompt } from '@gategraph/core';
import type { Tensor } from '@gategraph/diffusion';
import type { Latent } from '../src/types.ts';
import { defaultPrompt, host, noModel, packRegistry, validateAndRun } from './helpers.ts';

// --- test-only nodes: tensors in from JSON, whatever arrives kept for the assertions --------------------------

interface TensorJson {
  shape: number[];
  data: number[];
}
const tensorOf = (json: TensorJson): Tensor => ({ data: Float32Array.from(json.data), shape: json.shape });

const TestImage = defineNode({
  id: 'TestImage',
  inputs: { json: string() },
  outputs: [{ type: 'IMAGE' }],
  execute: ({ json }) => [tensorOf(JSON.parse(json) as TensorJson)],
});
const TestMask = defineNode({
  id: 'TestMask',
  inputs: { json: string() },
  outputs: [{ type: 'MASK' }],
  execute: ({ json }) => [tensorOf(JSON.parse(json) as TensorJson)],
});
const TestLatent = defineNode({
  id: 'TestLatent',
  inputs: { json: string() },
  outputs: [{ type: 'LATENT' }],
  execute({ json }) {
    const spec = JSON.parse(json) as { samples: TensorJson; noise_mask?: TensorJson; batch_index?: number[] };
    const latent: Latent = {
      samples: tensorOf(spec.samples),
      ...(spec.noise_mask ? { noise_mask: tensorOf(spec.noise_mask) } : {}),
      ...(spec.batch_index ? { batch_index: spec.batch_index } : {}),
    };
    return [latent];
  },
});
/** A list of latents (each a batch), as a node with a list output hands them on. */
const TestLatentList = defineNode({
  id: 'TestLatentList',
  inputs: { json: string() },
  outputs: [{ type: 'LATENT', isList: true }],
  execute({ json }) {
    const specs = JSON.parse(json) as { samples: TensorJson; noise_mask?: TensorJson }[];
    const latents: Latent[] = specs.map((spec) => ({ samples: tensorOf(spec.samples), ...(spec.noise_mask ? { noise_mask: tensorOf(spec.noise_mask) } : {}) }));
    return [latents];
  },
});
const TestImageList = defineNode({
  id: 'TestImageList',
  inputs: { json: string() },
  outputs: [{ type: 'IMAGE', isList: true }],
  execute: ({ json }) => [(JSON.parse(json) as TensorJson[]).map(tensorOf)],
});
const kept = new Map<string, unknown[]>();
const TestKeep = defineNode({
  id: 'TestKeep',
  inputs: { value: socket('*'), key: string() },
  outputs: [],
  outputNode: true,
  execute({ value, key }) {
    kept.set(key, [...(kept.get(key) ?? []), value]);
    return { ui: { kept: [key] } };
  },
});

async function registry() {
  const r = await packRegistry();
  for (const node of [TestImage, TestMask, TestLatent, TestLatentList, TestImageList, TestKeep]) if (!r.has(node.id)) r.register(node, { pack: 'test' });
  return r;
}

type Nodes = ApiPrompt;
const link = (id: string, slot = 0): [string, number] => [id, slot];

/** Runs `nodes` plus a keeper on each of `keep` (key -> [node, slot]); returns what each keeper received, in order. */
async function run(nodes: Nodes, keep: Record<string, [string, number]>): Promise<Record<string, unknown[]>> {
  await registry();
  kept.clear();
  const prompt: ApiPrompt = { ...nodes };
  for (const [key, from] of Object.entries(keep)) prompt[`keep-${key}`] = { class_type: 'TestKeep', inputs: { value: from, key } };
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return Object.fromEntries(Object.keys(keep).map((k) => [k, kept.get(k) ?? []]));
}

/** Runs `nodes` expecting the node `failing` to fail; returns the message. */
async function runError(nodes: Nodes, failing: string): Promise<string> {
  await registry();
  const prompt: ApiPrompt = { ...nodes, keep: { class_type: 'TestKeep', inputs: { value: link(failing), key: 'error' } } };
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, failing);
  return result.error!.message;
}

/** One value kept under a key. */
async function one<T>(nodes: Nodes, from: [string, number]): Promise<T> {
  const out = await run(nodes, { it: from });
  assert.equal(out.it!.length, 1);
  return out.it![0] as T;
}

function ramp(n: number): number[];
function ramp<T>(n: number, f: (i: number) => T): T[];
function ramp(n: number, f: (i: number) => unknown = (i) => i): unknown[] {
  return Array.from({ length: n }, (_, i) => f(i));
}
const image = (shape: number[], f: (i: number) => number = (i) => i) => ({ class_type: 'TestImage', inputs: { json: JSON.stringify({ shape, data: ramp(shape.reduce((a, b) => a * b), f) }) } });
const mask = (shape: number[], data: number[]) => ({ class_type: 'TestMask', inputs: { json: JSON.stringify({ shape, data }) } });
const latent = (shape: number[], extra: { noise_mask?: TensorJson; batch_index?: number[] } = {}, f: (i: number) => number = (i) => i) => ({
  class_type: 'TestLatent',
  inputs: { json: JSON.stringify({ samples: { shape, data: ramp(shape.reduce((a, b) => a * b), f) }, ...extra }) },
});
const near = (a: number, b: number, what: string, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

// --- latents ----------------------------------------------------------------------------------------------------

test('LatentUpscale sizes in pixels at 8 per cell, at least 64, a 0 side from the aspect ratio; the noise mask and batch indices stay', async () => {
  const noise_mask = { shape: [1, 1, 32, 64], data: ramp(32 * 64, () => 0.5) };
  const nodes: Nodes = {
    src: latent([2, 4, 4, 8], { noise_mask, batch_index: [3, 4] }),
    both: { class_type: 'LatentUpscale', inputs: { samples: link('src'), upscale_method: 'nearest-exact', width: 100, height: 20, crop: 'disabled' } },
    auto: { class_type: 'LatentUpscale', inputs: { samples: link('src'), upscale_method: 'bilinear', width: 0, height: 96, crop: 'disabled' } },
    none: { class_type: 'LatentUpscale', inputs: { samples: link('src'), upscale_method: 'bislerp', width: 0, height: 0, crop: 'center' } },
  };
  const out = await run(nodes, { both: link('both'), auto: link('auto'), none: link('none'), src: link('src') });
  const both = out.both![0] as Latent;
  // width 100 -> 12 cells; height 20 -> raised to 64 -> 8 cells.
  assert.deepEqual(both.samples.shape, [2, 4, 8, 12]);
  assert.deepEqual(both.batch_index, [3, 4]);
  assert.deepEqual(both.noise_mask?.shape, [1, 1, 32, 64], 'the noise mask is kept as it is (the sampler resizes it)');
  // nearest-exact, 8 -> 12 columns: column 1 reads floor(1.5 * 8/12) = 1, row 1 reads floor(1.5 * 4/8) = 0.
  assert.equal(both.samples.data[1 * 12 + 1], 1);
  // height 96 -> 12 cells; width = round(8 * 96 / 4) = 192 pixels -> 24 cells.
  assert.deepEqual((out.auto![0] as Latent).samples.shape, [2, 4, 12, 24]);
  assert.equal(out.none![0], out.src![0], 'width and height 0: the latent itself');
});

test("LatentUpscaleBy rounds each side with Python's round (halves to even), as ComfyUI", async () => {
  const out = await one<Latent>(
    { src: latent([1, 4, 5, 7]), up: { class_type: 'LatentUpscaleBy', inputs: { samples: link('src'), upscale_method: 'bicubic', scale_by: 1.5 } } },
    link('up'),
  );
  // 7 * 1.5 = 10.5 -> 10, 5 * 1.5 = 7.5 -> 8.
  assert.deepEqual(out.samples.shape, [1, 4, 8, 10]);
});

test('an upscaled empty latent stays empty at its new size: the sampler makes it for its model', async () => {
  const out = await one<Latent>(
    {
      empty: { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 256, batch_size: 2 } },
      up: { class_type: 'LatentUpscale', inputs: { samples: link('empty'), upscale_method: 'bislerp', width: 768, height: 0, crop: 'disabled' } },
    },
    link('up'),
  );
  assert.deepEqual(out.samples.shape, [2, 4, 48, 96]);
  assert.deepEqual(out.emptyImageSize, { width: 768, height: 384 });
  assert.ok(out.samples.data.every((v) => v === 0));
});

test('LatentComposite pastes at x // 8, y // 8, cuts what falls outside, feathers inner edges, and keeps samples_to\'s keys', async () => {
  const noise_mask = { shape: [1, 1, 4, 4], data: ramp(16, () => 1) };
  const nodes: Nodes = {
    to: latent([2, 1, 4, 6], { noise_mask, batch_index: [7, 8] }, () => 0),
    from: latent([1, 1, 3, 3], {}, () => 1),
    hard: { class_type: 'LatentComposite', inputs: { samples_to: link('to'), samples_from: link('from'), x: 39, y: 8, feather: 0 } },
    soft: { class_type: 'LatentComposite', inputs: { samples_to: link('to'), samples_from: link('from'), x: 8, y: 8, feather: 16 } },
  };
  const out = await run(nodes, { hard: link('hard'), soft: link('soft') });
  const hard = out.hard![0] as Latent;
  assert.deepEqual(hard.samples.shape, [2, 1, 4, 6]);
  // x 39 -> cell 4, y 8 -> cell 1: a 3x3 block cut to columns 4..5, rows 1..3, in both batch items.
  const rows = (b: number) => ramp(4, (r) => ramp(6, (c) => hard.samples.data[(b * 4 + r) * 6 + c]!).join(''));
  assert.deepEqual(rows(0), ['000000', '000011', '000011', '000011']);
  assert.deepEqual(rows(1), rows(0), 'a batch of 1 goes onto every item');
  assert.deepEqual(hard.batch_index, [7, 8]);
  assert.deepEqual(hard.noise_mask?.shape, [1, 1, 4, 4]);
  // Feather 16 -> 2 cells on the block at cell (1, 1): its top, left and right edges lie inside samples_to and fade in
  // as 1/2 then 2/2; its bottom edge is samples_to's border and stays hard.
  const soft = (out.soft![0] as Latent).samples.data;
  near(soft[1 * 6 + 1]!, 0.5 * 0.5, 'top-left corner: first row and first column');
  near(soft[2 * 6 + 2]!, 1, 'middle cell');
  near(soft[2 * 6 + 1]!, 0.5, 'left edge, middle row');
  near(soft[3 * 6 + 2]!, 1, 'bottom row on the border: not faded');
  near(soft[2 * 6 + 3]!, 0.5, 'right edge');
});

test('LatentCompositeMasked blends through the mask resized to the source, repeats the source to the batch, and can resize it', async () => {
  const nodes: Nodes = {
    dest: latent([2, 2, 4, 4], {}, () => 0),
    src: latent([1, 2, 2, 2], {}, () => 1),
    // A 2x2 mask: left column 1 (take the source), right column 0 (keep the destination).
    m: mask([1, 2, 2], [1, 0, 1, 0]),
    masked: { class_type: 'LatentCompositeMasked', inputs: { destination: link('dest'), source: link('src'), x: 16, y: 8, resize_source: false, mask: link('m') } },
    whole: { class_type: 'LatentCompositeMasked', inputs: { destination: link('dest'), source: link('src'), x: 0, y: 0, resize_source: true } },
  };
  const out = await run(nodes, { masked: link('masked'), whole: link('whole') });
  const masked = (out.masked![0] as Latent).samples;
  assert.deepEqual(masked.shape, [2, 2, 4, 4]);
  // Source at cell (2, 1): the mask's left column (1) takes the source, its right column (0) keeps the destination.
  const at = (b: number, c: number, y: number, x: number) => masked.data[((b * 2 + c) * 4 + y) * 4 + x]!;
  for (const [b, c] of [[0, 0], [1, 1]] as const) {
    assert.deepEqual([at(b, c, 1, 2), at(b, c, 1, 3), at(b, c, 2, 2), at(b, c, 2, 3), at(b, c, 0, 2), at(b, c, 3, 2)], [1, 0, 1, 0, 0, 0]);
  }
  const whole = (out.whole![0] as Latent).samples;
  assert.ok(whole.data.every((v) => v === 1), 'resize_source stretches the source over the whole destination');
});

test('LatentFromBatch picks latents with their noise (batch indices) and noise mask rows, clamped to the batch', async () => {
  const noise_mask = { shape: [4, 1, 2, 2], data: ramp(16, (i) => Math.floor(i / 4)) };
  const nodes: Nodes = {
    src: latent([4, 1, 2, 2], { noise_mask }, (i) => Math.floor(i / 4)),
    mid: { class_type: 'LatentFromBatch', inputs: { samples: link('src'), batch_index: 1, length: 2 } },
    past: { class_type: 'LatentFromBatch', inputs: { samples: link('src'), batch_index: 9, length: 3 } },
    again: { class_type: 'LatentFromBatch', inputs: { samples: link('mid'), batch_index: 1, length: 1 } },
  };
  const out = await run(nodes, { mid: link('mid'), past: link('past'), again: link('again') });
  const mid = out.mid![0] as Latent;
  assert.deepEqual([...mid.samples.data], [1, 1, 1, 1, 2, 2, 2, 2]);
  assert.deepEqual(mid.batch_index, [1, 2]);
  assert.deepEqual([...mid.noise_mask!.data], [1, 1, 1, 1, 2, 2, 2, 2], 'each latent keeps its own mask row');
  const past = out.past![0] as Latent;
  assert.deepEqual([past.samples.shape[0], past.batch_index], [1, [3]], 'an index past the batch takes the last latent');
  assert.deepEqual((out.again![0] as Latent).batch_index, [2], 'picking from a pick keeps the original index');
});

test('RepeatLatentBatch repeats latents and masks, continuing the batch indices after the originals', async () => {
  const noise_mask = { shape: [2, 1, 1, 1], data: [0.25, 0.75] };
  const out = await one<Latent>(
    {
      src: latent([2, 1, 1, 1], { noise_mask, batch_index: [2, 3] }, (i) => i),
      rep: { class_type: 'RepeatLatentBatch', inputs: { samples: link('src'), amount: 3 } },
    },
    link('rep'),
  );
  assert.deepEqual([...out.samples.data], [0, 1, 0, 1, 0, 1]);
  assert.deepEqual(out.batch_index, [2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...out.noise_mask!.data], [0.25, 0.75, 0.25, 0.75, 0.25, 0.75]);
});

test('RebatchLatents outputs a list of batches; the nodes after it run once per batch; keys follow each latent', async () => {
  const noise_mask = { shape: [1, 1, 16, 16], data: ramp(256, (i) => (i % 2 ? 0 : 1)) };
  const nodes: Nodes = {
    a: latent([3, 1, 2, 2], { noise_mask }, (i) => Math.floor(i / 4)),
    two: { class_type: 'RebatchLatents', inputs: { latents: link('a'), batch_size: 2 } },
    regroup: { class_type: 'RebatchLatents', inputs: { latents: link('two'), batch_size: 3 } },
    after: { class_type: 'LatentFromBatch', inputs: { samples: link('two'), batch_index: 0, length: 1 } },
  };
  const out = await run(nodes, { two: link('two'), regroup: link('regroup'), after: link('after') });
  const two = out.two as Latent[];
  assert.deepEqual(two.map((l) => l.samples.shape[0]), [2, 1]);
  assert.deepEqual(two.map((l) => l.batch_index), [[0, 1], [2]]);
  assert.deepEqual(two.map((l) => l.noise_mask?.shape), [[2, 1, 16, 16], [1, 1, 16, 16]], 'the noise mask is split with the latents');
  assert.deepEqual(out.after!.map((l) => (l as Latent).batch_index), [[0], [2]], 'the next node ran once per batch');
  const regroup = out.regroup as Latent[];
  assert.deepEqual(regroup.map((l) => l.batch_index), [[0, 1, 2]], 'a list in is regrouped across its batches');
  assert.deepEqual([...regroup[0]!.samples.data.filter((_, i) => i % 4 === 0)], [0, 1, 2]);
});

test('RebatchLatents never mixes sizes in a batch, counts batch indices across the list, and drops a mask of ones', async () => {
  const ones = { shape: [1, 1, 16, 16], data: ramp(256, () => 1) };
  const half = { shape: [1, 1, 8, 8], data: ramp(64, () => 0.5) };
  const list = [
    { samples: { shape: [2, 1, 2, 2], data: ramp(8, () => 0) }, noise_mask: ones },
    { samples: { shape: [1, 1, 3, 3], data: ramp(9, () => 1) } },
    { samples: { shape: [1, 1, 3, 3], data: ramp(9, () => 2) }, noise_mask: half },
  ];
  const out = await run(
    {
      list: { class_type: 'TestLatentList', inputs: { json: JSON.stringify(list) } },
      re: { class_type: 'RebatchLatents', inputs: { latents: link('list'), batch_size: 4 } },
    },
    { re: link('re') },
  );
  const [small, big] = out.re as Latent[];
  assert.equal(out.re!.length, 2, 'the 2x2 latents and the 3x3 ones go to separate batches');
  assert.equal(small!.noise_mask, undefined, 'a mask of ones masks nothing and is dropped');
  assert.deepEqual(small!.batch_index, [0, 1]);
  assert.deepEqual(big!.samples.shape, [2, 1, 3, 3]);
  assert.deepEqual(big!.batch_index, [2, 3], 'indices count on across the list');
  // The second 3x3 latent's 8x8 mask is resized to the first one's default mask (ones at 24x24) to share the batch.
  assert.deepEqual(big!.noise_mask?.shape, [2, 1, 24, 24]);
  assert.deepEqual([big!.noise_mask!.data[0], big!.noise_mask!.data[24 * 24]], [1, 0.5]);
});

// --- images -----------------------------------------------------------------------------------------------------

test('ImageScale: both sizes, one side from the aspect ratio (Python rounding), centre crop, lanczos on 8-bit steps', async () => {
  const nodes: Nodes = {
    // Pixel (y, x) channel c holds (3x + c) / 15.
    img: image([1, 3, 5, 3], (i) => (i % 15) / 15),
    exact: { class_type: 'ImageScale', inputs: { image: link('img'), upscale_method: 'nearest-exact', width: 10, height: 6, crop: 'disabled' } },
    auto: { class_type: 'ImageScale', inputs: { image: link('img'), upscale_method: 'bilinear', width: 0, height: 5, crop: 'disabled' } },
    crop: { class_type: 'ImageScale', inputs: { image: link('img'), upscale_method: 'area', width: 3, height: 3, crop: 'center' } },
    lanczos: { class_type: 'ImageScale', inputs: { image: link('img'), upscale_method: 'lanczos', width: 7, height: 4, crop: 'disabled' } },
    same: { class_type: 'ImageScale', inputs: { image: link('img'), upscale_method: 'bicubic', width: 0, height: 0, crop: 'disabled' } },
  };
  const out = await run(nodes, { exact: link('exact'), auto: link('auto'), crop: link('crop'), lanczos: link('lanczos'), same: link('same'), img: link('img') });
  const exact = out.exact![0] as Tensor;
  assert.deepEqual(exact.shape, [1, 6, 10, 3]);
  // 2x nearest: output pixel (y, x) is input pixel (y // 2, x // 2).
  near(exact.data[(3 * 10 + 7) * 3 + 1]!, (3 * 3 + 1) / 15, 'pixel (3, 7) green is input (1, 3) green');
  // height 5 -> width round(5 * 5 / 3) = round(8.33) = 8.
  assert.deepEqual((out.auto![0] as Tensor).shape, [1, 5, 8, 3]);
  // centre crop 5x3 -> 3x3 cuts one column each side: area at the same size is the crop itself.
  const crop = out.crop![0] as Tensor;
  assert.deepEqual(crop.shape, [1, 3, 3, 3]);
  near(crop.data[0]!, (1 * 3) / 15, 'top-left of the crop is input column 1');
  for (const v of (out.lanczos![0] as Tensor).data) near(v * 255, Math.round(v * 255), 'lanczos is on 1/255 steps', 1e-3);
  assert.equal(out.same![0], out.img![0], 'width and height 0: the image itself');
});

test('ImageScaleBy and ImageScaleToTotalPixels compute sizes as ComfyUI', async () => {
  const nodes: Nodes = {
    img: image([2, 3, 5, 3], () => 0.5),
    by: { class_type: 'ImageScaleBy', inputs: { image: link('img'), upscale_method: 'bilinear', scale_by: 1.5 } },
    total: { class_type: 'ImageScaleToTotalPixels', inputs: { image: link('img'), upscale_method: 'area', megapixels: 0.01, resolution_steps: 8 } },
    total1: { class_type: 'ImageScaleToTotalPixels', inputs: { image: link('img'), upscale_method: 'nearest-exact', megapixels: 0.01, resolution_steps: 1 } },
  };
  const out = await run(nodes, { by: link('by'), total: link('total'), total1: link('total1') });
  // 5 * 1.5 = 7.5 -> 8; 3 * 1.5 = 4.5 -> 4 (halves to even).
  assert.deepEqual((out.by![0] as Tensor).shape, [2, 4, 8, 3]);
  // 0.01 MP = 10485.76 pixels: scale sqrt(10485.76 / 15) = 26.44; 5 -> 132.2, 3 -> 79.3; to multiples of 8: 136 x 80.
  assert.deepEqual((out.total![0] as Tensor).shape, [2, 80, 136, 3]);
  assert.deepEqual((out.total1![0] as Tensor).shape, [2, 79, 132, 3]);
  assert.ok((out.by![0] as Tensor).data.every((v) => Math.abs(v - 0.5) < 1e-6));
});

test('ImageInvert, ImageCrop (kept inside the image) and EmptyImage (0xRRGGBB)', async () => {
  const nodes: Nodes = {
    img: image([1, 4, 4, 3], (i) => i / 48),
    inv: { class_type: 'ImageInvert', inputs: { image: link('img') } },
    crop: { class_type: 'ImageCrop', inputs: { image: link('img'), width: 2, height: 9, x: 1, y: 2 } },
    edge: { class_type: 'ImageCrop', inputs: { image: link('img'), width: 5, height: 5, x: 10, y: 10 } },
    empty: { class_type: 'EmptyImage', inputs: { width: 3, height: 2, batch_size: 2, color: 0xff8000 } },
  };
  const out = await run(nodes, { inv: link('inv'), crop: link('crop'), edge: link('edge'), empty: link('empty') });
  near((out.inv![0] as Tensor).data[5]!, 1 - 5 / 48, 'inverted');
  const crop = out.crop![0] as Tensor;
  assert.deepEqual(crop.shape, [1, 2, 2, 3], 'the window is cut at the bottom edge');
  near(crop.data[0]!, ((2 * 4 + 1) * 3) / 48, 'first pixel is (2, 1)');
  assert.deepEqual((out.edge![0] as Tensor).shape, [1, 1, 1, 3], 'x and y past the image: the last pixel');
  const empty = out.empty![0] as Tensor;
  assert.deepEqual(empty.shape, [2, 2, 3, 3]);
  assert.deepEqual([...empty.data.subarray(0, 3)].map((v) => Math.round(v * 255)), [255, 128, 0]);
});

test('ImagePadForOutpaint: grey padding, mask 1 outside, 0 inside, feathered along padded sides only', async () => {
  const out = await run(
    {
      img: image([2, 20, 20, 3], () => 0.2),
      pad: { class_type: 'ImagePadForOutpaint', inputs: { image: link('img'), left: 8, top: 0, right: 0, bottom: 16, feathering: 5 } },
    },
    { image: link('pad', 0), mask: link('pad', 1) },
  );
  const padded = out.image![0] as Tensor;
  const m = out.mask![0] as Tensor;
  assert.deepEqual(padded.shape, [2, 36, 28, 3]);
  assert.deepEqual(m.shape, [1, 36, 28], 'one mask for the batch');
  near(padded.data[0]!, 0.5, 'padding is grey');
  near(padded.data[(1 * 36 * 28 + 5 * 28 + 8) * 3]!, 0.2, 'the image sits at (8, 0) in every item');
  const at = (y: number, x: number) => m.data[y * 28 + x]!;
  assert.equal(at(0, 0), 1);
  assert.equal(at(30, 20), 1, 'bottom padding');
  // Inside, column j of the image (x = 8 + j) near the padded left side: d = j, value ((5 - d) / 5)^2.
  near(at(10, 8), 1, 'at the left seam d = 0');
  near(at(10, 8 + 2), (3 / 5) ** 2, 'two pixels in');
  near(at(10, 8 + 5), 0, 'past the feathering');
  near(at(0, 18), 0, 'the top was not padded: no feathering there');
  // Bottom side padded: row i of the image, d = 20 - i.
  near(at(19, 18), (4 / 5) ** 2, 'last image row, d = 1 from the bottom');
});

test('ImageBatch resizes the second batch to the first and adds an opaque alpha where one has it', async () => {
  const out = await one<Tensor>(
    {
      a: image([1, 2, 2, 4], () => 0.25),
      b: image([2, 4, 4, 3], () => 0.75),
      batch: { class_type: 'ImageBatch', inputs: { image1: link('a'), image2: link('b') } },
    },
    link('batch'),
  );
  assert.deepEqual(out.shape, [3, 2, 2, 4]);
  assert.deepEqual([...out.data.subarray(16, 20)], [0.75, 0.75, 0.75, 1]);
});

test('RebatchImages regroups images into a list of batches and refuses mixing sizes in one batch', async () => {
  const out = await run(
    {
      img: image([5, 2, 2, 3], (i) => Math.floor(i / 12)),
      re: { class_type: 'RebatchImages', inputs: { images: link('img'), batch_size: 2 } },
    },
    { re: link('re') },
  );
  assert.deepEqual((out.re as Tensor[]).map((t) => [t.shape[0], t.data[0]]), [[2, 0], [2, 2], [1, 4]]);
  const mixed = [
    { shape: [1, 2, 2, 3], data: ramp(12) },
    { shape: [1, 3, 2, 3], data: ramp(18) },
  ];
  const message = await runError(
    {
      list: { class_type: 'TestImageList', inputs: { json: JSON.stringify(mixed) } },
      re: { class_type: 'RebatchImages', inputs: { images: link('list'), batch_size: 2 } },
    },
    're',
  );
  assert.match(message, /a batch would hold images of 2x2x3 and 2x3x3 \(width x height x channels\); resize them to one size first/);
});

// --- masks ------------------------------------------------------------------------------------------------------

test('LoadImageMask reads alpha inverted (transparent = 1) and red as it is, from a real PNG', async () => {
  mkdirSync(join(host.paths.input, 'masks'), { recursive: true });
  // 3x2 RGBA: red 0, 51, 102, ...; alpha 255, 0, 128, 255, 64, 255.
  const pixels = Buffer.alloc(3 * 2 * 4);
  const alpha = [255, 0, 128, 255, 64, 255];
  for (let p = 0; p < 6; p++) pixels.set([p * 51, 200, 10, alpha[p]!], p * 4);
  writeFileSync(join(host.paths.input, 'masks', 'rgba.png'), await sharp(pixels, { raw: { width: 3, height: 2, channels: 4 } }).png().toBuffer());
  writeFileSync(join(host.paths.input, 'masks', 'opaque.png'), await sharp(pixels, { raw: { width: 3, height: 2, channels: 4 } }).removeAlpha().png().toBuffer());
  const out = await run(
    {
      a: { class_type: 'LoadImageMask', inputs: { image: 'masks/rgba.png', channel: 'alpha' } },
      r: { class_type: 'LoadImageMask', inputs: { image: 'masks/rgba.png', channel: 'red' } },
      o: { class_type: 'LoadImageMask', inputs: { image: 'masks/opaque.png', channel: 'alpha' } },
    },
    { a: link('a'), r: link('r'), o: link('o') },
  );
  const a = out.a![0] as Tensor;
  assert.deepEqual(a.shape, [1, 2, 3]);
  assert.deepEqual([...a.data].map((v) => Math.round(v * 255)), alpha.map((v) => 255 - v));
  assert.deepEqual([...(out.r![0] as Tensor).data].map((v) => Math.round(v * 255)), [0, 51, 102, 153, 204, 255]);
  assert.deepEqual([...(out.o![0] as Tensor).data], [0, 0, 0, 0, 0, 0], 'no alpha: opaque, nothing masked, at the image size');
  const listed = objectInfo(await registry(), { context: { paths: host.paths } }).LoadImageMask!.input.required!.image as [string[]];
  assert.ok(listed[0].includes('masks/rgba.png'), 'the image combo lists the input folder');
});

test('ImageToMask, MaskToImage, SolidMask and InvertMask convert as ComfyUI', async () => {
  const out = await run(
    {
      img: image([1, 1, 2, 3], (i) => i / 10),
      red: { class_type: 'ImageToMask', inputs: { image: link('img'), channel: 'blue' } },
      back: { class_type: 'MaskToImage', inputs: { mask: link('red') } },
      solid: { class_type: 'SolidMask', inputs: { value: 0.25, width: 3, height: 2 } },
      inv: { class_type: 'InvertMask', inputs: { mask: link('solid') } },
    },
    { red: link('red'), back: link('back'), solid: link('solid'), inv: link('inv') },
  );
  const red = out.red![0] as Tensor;
  assert.deepEqual(red.shape, [1, 1, 2]);
  near(red.data[1]!, 5 / 10, 'blue of pixel 1');
  const back = out.back![0] as Tensor;
  assert.deepEqual(back.shape, [1, 1, 2, 3]);
  assert.deepEqual([...back.data.subarray(3)].map((v) => Math.round(v * 10)), [5, 5, 5]);
  assert.deepEqual((out.solid![0] as Tensor).shape, [1, 2, 3]);
  assert.ok((out.inv![0] as Tensor).data.every((v) => v === 0.75));
  const message = await runError(
    { img: image([1, 1, 2, 3]), m: { class_type: 'ImageToMask', inputs: { image: link('img'), channel: 'alpha' } } },
    'm',
  );
  assert.match(message, /image has 3 channels, so it has no alpha channel/);
});

test('sizes that cannot fit in memory are refused with a message naming the input, before anything is allocated', async () => {
  const saved = process.env.GATEGRAPH_MAX_ACTIVATION_MB;
  process.env.GATEGRAPH_MAX_ACTIVATION_MB = '4';
  try {
    const empty = await runError({ e: { class_type: 'EmptyImage', inputs: { width: 16384, height: 16384, batch_size: 4096, color: 0 } } }, 'e');
    assert.match(empty, /the empty image batch would be \[4096, 16384, 16384, 3\]: 12\.0 TiB of memory, above the limit of 4\.0 MiB \(GATEGRAPH_MAX_ACTIVATION_MB\); lower batch_size, width or height/);
    const up = await runError(
      { src: latent([1, 4, 64, 64]), up: { class_type: 'LatentUpscaleBy', inputs: { samples: link('src'), upscale_method: 'bislerp', scale_by: 8 } } },
      'up',
    );
    assert.match(up, /the upscaled latent would be \[1, 4, 512, 512\].*lower scale_by/);
  } finally {
    if (saved === undefined) delete process.env.GATEGRAPH_MAX_ACTIVATION_MB;
    else process.env.GATEGRAPH_MAX_ACTIVATION_MB = saved;
  }
});

test('with the embedded model: resized latents and images go back through the sampler and the VAE; an upscaled empty latent is sampled at its new size', { skip: noModel }, async () => {
  // The embedded model was exported for 64x64 pixels only (16 cells at 4 pixels per cell), so every resize here
  // comes back to that size before the model sees it.
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  const sampler = prompt['3']!.inputs;
  sampler.steps = 4;
  Object.assign(prompt, {
    up: { class_type: 'LatentUpscaleBy', inputs: { samples: link('3'), upscale_method: 'bislerp', scale_by: 2 } },
    down: { class_type: 'LatentUpscaleBy', inputs: { samples: link('up'), upscale_method: 'area', scale_by: 0.5 } },
    again: { class_type: 'KSampler', inputs: { ...sampler, latent_image: link('down'), denoise: 0.5 } },
    decoded: { class_type: 'VAEDecode', inputs: { samples: link('again'), vae: link('4', 2) } },
    big: { class_type: 'ImageScaleBy', inputs: { image: link('decoded'), upscale_method: 'lanczos', scale_by: 2 } },
    back: { class_type: 'ImageScale', inputs: { image: link('big'), upscale_method: 'area', width: 64, height: 64, crop: 'disabled' } },
    encoded: { class_type: 'VAEEncode', inputs: { pixels: link('back'), vae: link('4', 2) } },
    small: { class_type: 'EmptyLatentImage', inputs: { width: 32, height: 32, batch_size: 1 } },
    doubled: { class_type: 'LatentUpscaleBy', inputs: { samples: link('small'), upscale_method: 'nearest-exact', scale_by: 2 } },
    fresh: { class_type: 'KSampler', inputs: { ...sampler, latent_image: link('doubled') } },
    freshImage: { class_type: 'VAEDecode', inputs: { samples: link('fresh'), vae: link('4', 2) } },
  });
  const out = await run(prompt, { up: link('up'), decoded: link('decoded'), big: link('big'), encoded: link('encoded'), fresh: link('freshImage') });
  const [, channels] = (out.up![0] as Latent).samples.shape;
  assert.deepEqual((out.up![0] as Latent).samples.shape, [1, channels, 32, 32]);
  assert.deepEqual((out.decoded![0] as Tensor).shape, [1, 64, 64, 3]);
  assert.deepEqual((out.big![0] as Tensor).shape, [1, 128, 128, 3]);
  assert.deepEqual((out.encoded![0] as Latent).samples.shape, [1, channels, 16, 16]);
  // The empty latent stood for 32x32 pixels; doubled, it stands for 64x64, which the sampler makes at its model's factor.
  assert.deepEqual((out.fresh![0] as Tensor).shape, [1, 64, 64, 3]);
});

// --- object_info ------------------------------------------------------------------------------------------------

// Read from ComfyUI's nodes.py, comfy_extras/nodes_mask.py, nodes_images.py, nodes_post_processing.py and
// nodes_rebatch.py: input names in order with their type (a list = a combo's options) and, for widgets,
// [default, min, max, step]; outputs; category.
type Spec = [string, string | string[], number[]?];
const UPSCALE_IMAGE = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'];
const UPSCALE_LATENT = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'];
const CROP = ['disabled', 'center'];
const COMFYUI: Record<string, { inputs: Spec[]; optional?: Spec[]; output: string[]; category: string; list?: boolean }> = {
  LatentUpscale: {
    inputs: [['samples', 'LATENT'], ['upscale_method', UPSCALE_LATENT], ['width', 'INT', [512, 0, 16384, 8]], ['height', 'INT', [512, 0, 16384, 8]], ['crop', CROP]],
    output: ['LATENT'],
    category: 'latent',
  },
  LatentUpscaleBy: { inputs: [['samples', 'LATENT'], ['upscale_method', UPSCALE_LATENT], ['scale_by', 'FLOAT', [1.5, 0.01, 8, 0.01]]], output: ['LATENT'], category: 'latent' },
  LatentComposite: {
    inputs: [['samples_to', 'LATENT'], ['samples_from', 'LATENT'], ['x', 'INT', [0, 0, 16384, 8]], ['y', 'INT', [0, 0, 16384, 8]], ['feather', 'INT', [0, 0, 16384, 8]]],
    output: ['LATENT'],
    category: 'latent',
  },
  LatentCompositeMasked: {
    inputs: [['destination', 'LATENT'], ['source', 'LATENT'], ['x', 'INT', [0, 0, 16384, 8]], ['y', 'INT', [0, 0, 16384, 8]], ['resize_source', 'BOOLEAN']],
    optional: [['mask', 'MASK']],
    output: ['LATENT'],
    category: 'latent',
  },
  LatentFromBatch: { inputs: [['samples', 'LATENT'], ['batch_index', 'INT', [0, 0, 63]], ['length', 'INT', [1, 1, 64]]], output: ['LATENT'], category: 'latent/batch' },
  RepeatLatentBatch: { inputs: [['samples', 'LATENT'], ['amount', 'INT', [1, 1, 64]]], output: ['LATENT'], category: 'latent/batch' },
  RebatchLatents: { inputs: [['latents', 'LATENT'], ['batch_size', 'INT', [1, 1, 4096]]], output: ['LATENT'], category: 'latent/batch', list: true },
  ImageScale: {
    inputs: [['image', 'IMAGE'], ['upscale_method', UPSCALE_IMAGE], ['width', 'INT', [512, 0, 16384, 1]], ['height', 'INT', [512, 0, 16384, 1]], ['crop', CROP]],
    output: ['IMAGE'],
    category: 'image/upscaling',
  },
  ImageScaleBy: { inputs: [['image', 'IMAGE'], ['upscale_method', UPSCALE_IMAGE], ['scale_by', 'FLOAT', [1, 0.01, 8, 0.01]]], output: ['IMAGE'], category: 'image/upscaling' },
  ImageScaleToTotalPixels: {
    inputs: [['image', 'IMAGE'], ['upscale_method', UPSCALE_IMAGE], ['megapixels', 'FLOAT', [1, 0.01, 16, 0.01]], ['resolution_steps', 'INT', [1, 1, 256]]],
    output: ['IMAGE'],
    category: 'image/upscaling',
  },
  ImageInvert: { inputs: [['image', 'IMAGE']], output: ['IMAGE'], category: 'image' },
  ImageBatch: { inputs: [['image1', 'IMAGE'], ['image2', 'IMAGE']], output: ['IMAGE'], category: 'image' },
  ImageCrop: {
    inputs: [['image', 'IMAGE'], ['width', 'INT', [512, 1, 16384, 1]], ['height', 'INT', [512, 1, 16384, 1]], ['x', 'INT', [0, 0, 16384, 1]], ['y', 'INT', [0, 0, 16384, 1]]],
    output: ['IMAGE'],
    category: 'image/transform',
  },
  EmptyImage: {
    inputs: [['width', 'INT', [512, 1, 16384, 1]], ['height', 'INT', [512, 1, 16384, 1]], ['batch_size', 'INT', [1, 1, 4096]], ['color', 'INT', [0, 0, 0xffffff, 1]]],
    output: ['IMAGE'],
    category: 'image',
  },
  ImagePadForOutpaint: {
    inputs: [['image', 'IMAGE'], ['left', 'INT', [0, 0, 16384, 8]], ['top', 'INT', [0, 0, 16384, 8]], ['right', 'INT', [0, 0, 16384, 8]], ['bottom', 'INT', [0, 0, 16384, 8]], ['feathering', 'INT', [40, 0, 16384, 1]]],
    output: ['IMAGE', 'MASK'],
    category: 'image',
  },
  RebatchImages: { inputs: [['images', 'IMAGE'], ['batch_size', 'INT', [1, 1, 4096]]], output: ['IMAGE'], category: 'image/batch', list: true },
  LoadImageMask: { inputs: [['image', 'COMBO'], ['channel', ['alpha', 'red', 'green', 'blue']]], output: ['MASK'], category: 'mask' },
  ImageToMask: { inputs: [['image', 'IMAGE'], ['channel', ['red', 'green', 'blue', 'alpha']]], output: ['MASK'], category: 'mask' },
  MaskToImage: { inputs: [['mask', 'MASK']], output: ['IMAGE'], category: 'mask' },
  SolidMask: { inputs: [['value', 'FLOAT', [1, 0, 1, 0.01]], ['width', 'INT', [512, 1, 16384, 1]], ['height', 'INT', [512, 1, 16384, 1]]], output: ['MASK'], category: 'mask' },
  InvertMask: { inputs: [['mask', 'MASK']], output: ['MASK'], category: 'mask' },
};

test("object_info: ComfyUI's input names, order, types, widget ranges, outputs and categories; every node and input documented", async () => {
  const info = objectInfo(await registry());
  for (const [name, expected] of Object.entries(COMFYUI)) {
    const entry = info[name];
    assert.ok(entry, `${name} is registered`);
    assert.equal(entry.category, expected.category, `${name} category`);
    assert.deepEqual(entry.output, expected.output, `${name} outputs`);
    assert.deepEqual(entry.output_is_list, expected.output.map(() => expected.list === true), `${name} output_is_list`);
    assert.ok(entry.description.length > 20, `${name} has a description`);
    for (const [group, specs] of [['required', expected.inputs], ['optional', expected.optional ?? []]] as const) {
      const inputs: Record<string, unknown> = entry.input[group] ?? {};
      assert.deepEqual(Object.keys(inputs), specs.map((s) => s[0]), `${name} ${group} inputs`);
      for (const [input, type, range] of specs) {
        const [actualType, options] = inputs[input] as [string | string[], Record<string, unknown> | undefined];
        if (type !== 'COMBO') assert.deepEqual(actualType, type, `${name}.${input} type`);
        if (range) assert.deepEqual(['default', 'min', 'max', 'step'].slice(0, range.length).map((k) => options?.[k]), range, `${name}.${input} range`);
        assert.ok(typeof options?.tooltip === 'string' && options.tooltip.length > 5, `${name}.${input} has a tooltip`);
      }
    }
  }
  assert.equal(info.LoadImageMask!.input.required!.image![1]!.image_upload, true);
  assert.equal(info.ImageBatch!.deprecated, true);
});
