/**
 * VAEDecodeTiled / VAEEncodeTiled (src/vae-tiles.ts, src/nodes/vae-tiled.ts).
 *
 * How close a tiled decode is to a plain one depends on the VAE: a tile sees only its own cells, so (1) near a tile
 * border that is not the image's border, the VAE's convolutions see zero padding instead of the neighbouring cells,
 * and (2) a VAE with GroupNorm normalises each tile with the tile's statistics, not the image's. (1) is what the
 * feathered blending hides; (2) changes values everywhere and depends on the weights (SD's VAE is mildly affected;
 * the embedded tiny-sd's small VAE strongly: its whole-image and tiled decodes of a 192x128 mosaic differ by 0.02 to
 * 0.2 on average, with 32- and 16-cell tiles). So the equality is tested where it is exact: on a VAE without global
 * normalisation (two convolutions around the up/down-sampling, built here as ONNX), whose output at a pixel depends on
 * a known neighbourhood of latent cells. Wherever every tile covering a pixel holds that whole neighbourhood, the
 * tiled result must equal the plain one up to float32 rounding (the blend weights sum to 1): 1e-6 is 8 float32 ulps
 * of values below 1 (the measured worst is 1 ulp). At the other pixels (the seams) it must differ, or the test would prove nothing.
 * The blending itself is checked against a direct port of ComfyUI's tiled_scale (sum of masked tiles divided by
 * the sum of masks), and the memory bound on the embedded model's real VAE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineNode, socket, string, type ExecutionContext } from '@gategraph/core';
import { decodeLatents, decodePng, encodeImage, encodePng, openVaeFolder, type Tensor } from '@gategraph/diffusion';
import { decodeModel, encodeModel, makeValueInfo, valueInfoType } from '@gategraph/onnx-graph';
import { DT, GraphBuilder } from '@gategraph/onnx-graph/build';
import { blendTiles, comfyTilings, featherProfile, tileCount, tileSpans, type Span, type Tiling } from '../src/vae-tiles.ts';
import { decodeTiled, encodeTiled } from '../src/nodes/vae-tiled.ts';
import { VaeRef } from '../src/types.ts';
import { host, noModel, packRegistry, repoRoot, testModelDir, validateAndRun } from './helpers.ts';

/** Deterministic values in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

function randomTensor(shape: number[], seed: number): Tensor {
  const next = random(seed);
  return { data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), shape };
}

/** A context for calling the tiled functions directly: records progress. */
function progressContext(): { ctx: ExecutionContext; steps: Array<[number, number]> } {
  const steps: Array<[number, number]> = [];
  return { ctx: { progress: (value: number, max: number) => void steps.push([value, max]) } as unknown as ExecutionContext, steps };
}

test("tile positions, feather masks and the three tilings are ComfyUI's", () => {
  // tiled_scale_multidim: range(0, size - overlap, tile - overlap), each tile cut at the edge.
  assert.deepEqual(tileSpans(100, 64, 16), [
    { start: 0, length: 64 },
    { start: 48, length: 52 },
  ]);
  assert.deepEqual(
    tileSpans(130, 32, 8).map((s) => [s.start, s.length]),
    [
      [0, 32],
      [24, 32],
      [48, 32],
      [72, 32],
      [96, 32],
      [120, 10],
    ],
  );
  assert.deepEqual(tileSpans(64, 64, 16), [{ start: 0, length: 64 }], 'an axis no longer than the tile is one tile');
  // (t + 1) / feather from each end; ramps multiply where they meet; not feathered when feather >= length.
  assert.deepEqual([...featherProfile(8, 3)], [1 / 3, 2 / 3, 1, 1, 1, 1, 2 / 3, 1 / 3]);
  assert.deepEqual([...featherProfile(4, 3)], [1 / 3, 2 / 3, 2 / 3, 1 / 3]);
  assert.deepEqual([...featherProfile(3, 3)], [1, 1, 1]);
  // decode_tiled_: (tile/2 wide, tile*2 high), (tile*2 wide, tile/2 high), (tile, tile), a third each.
  const three = comfyTilings(40, 40, 16, 4);
  assert.deepEqual(
    three.map((t) => [t.rows[0]!.length, t.cols[0]!.length, t.weight]),
    [
      [32, 8, 1 / 3],
      [8, 32, 1 / 3],
      [16, 16, 1 / 3],
    ],
  );
  // A latent inside every tile: one tile, run once, with the whole weight.
  const one = comfyTilings(10, 12, 64, 8);
  assert.equal(one.length, 1);
  assert.equal(one[0]!.weight, 1);
  assert.equal(tileCount(one), 1);
});

/**
 * ComfyUI's tiled_scale for one batch item, written as it is there: every tile's output times its mask added to an
 * accumulator, the masks to another, the image their quotient; then the tilings averaged. CHW layout.
 */
function comfyReference(tilings: readonly Tiling[], h: number, w: number, C: number, scale: number, overlap: number, run: (r: Span, c: Span) => Float32Array): Float32Array {
  const H = h * scale;
  const W = w * scale;
  const result = new Float32Array(C * H * W);
  const feather = overlap * scale;
  for (const tiling of tilings) {
    const out = new Float64Array(C * H * W);
    const div = new Float64Array(C * H * W);
    for (const r of tiling.rows) {
      for (const c of tiling.cols) {
        const tile = run(r, c);
        const th = r.length * scale;
        const tw = c.length * scale;
        const mask = new Float64Array(th * tw).fill(1);
        // The mask, narrowed and multiplied along each axis as ComfyUI does it.
        if (feather < th) {
          for (let t = 0; t < feather; t++) for (let x = 0; x < tw; x++) {
            mask[t * tw + x]! *= (t + 1) / feather;
            mask[(th - 1 - t) * tw + x]! *= (t + 1) / feather;
          }
        }
        if (feather < tw) {
          for (let t = 0; t < feather; t++) for (let y = 0; y < th; y++) {
            mask[y * tw + t]! *= (t + 1) / feather;
            mask[y * tw + tw - 1 - t]! *= (t + 1) / feather;
          }
        }
        for (let ch = 0; ch < C; ch++) for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
          const o = ch * H * W + (r.start * scale + y) * W + c.start * scale + x;
          out[o]! += tile[ch * th * tw + y * tw + x]! * mask[y * tw + x]!;
          div[o]! += mask[y * tw + x]!;
        }
      }
    }
    for (let i = 0; i < result.length; i++) result[i]! += (out[i]! / div[i]!) * tiling.weight;
  }
  return result;
}

test("blending equals ComfyUI's accumulate-and-divide, for a tile function that is not local", async () => {
  const [C, h, w, scale, overlap] = [3, 37, 29, 4, 3];
  const input = randomTensor([C, h, w], 7);
  // Each output value: its cell's input plus the tile's mean (a stand-in for a VAE's per-tile normalisation), so
  // tiles disagree everywhere and the weights matter at every pixel.
  const run = (r: Span, c: Span): Float32Array => {
    let mean = 0;
    for (let y = 0; y < r.length; y++) for (let x = 0; x < c.length; x++) mean += input.data[(r.start + y) * w + c.start + x]!;
    mean /= r.length * c.length;
    const th = r.length * scale;
    const tw = c.length * scale;
    const out = new Float32Array(C * th * tw);
    for (let ch = 0; ch < C; ch++) for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
      out[ch * th * tw + y * tw + x] = input.data[ch * h * w + (r.start + Math.floor(y / scale)) * w + c.start + Math.floor(x / scale)]! + mean;
    }
    return out;
  };
  for (const tile of [8, 12, 64]) {
    const tilings = comfyTilings(h, w, tile, overlap);
    const expected = comfyReference(tilings, h, w, C, scale, overlap, run);
    const target = { data: new Float32Array(C * h * scale * w * scale), height: h * scale, width: w * scale, channels: C, interleaved: false };
    let tiles = 0;
    await blendTiles({ tilings, scale, overlap, target, run: async (r, c) => run(r, c), onTile: () => tiles++ });
    assert.equal(tiles, tileCount(tilings));
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(expected[i]! - target.data[i]!));
    assert.ok(worst < 1e-5, `tile ${tile}: max difference ${worst}`);
  }
});

/** Writes an ONNX model of `build`'s graph. */
function writeGraph(path: string, build: (g: GraphBuilder) => void): void {
  const g = new GraphBuilder();
  build(g);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, encodeModel(g.build().model));
}

const LOCAL_F = 4;
const LOCAL_CHANNELS = 4;

/**
 * A VAE folder whose decoder is conv 3x3 (latent) -> tanh -> nearest x4 -> conv 3x3 (pixels) and whose encoder is
 * conv 4x4 stride 4 (patches) -> tanh -> conv 3x3 (latent), random weights, any size: the output at a point depends
 * on the latent cells around it and nothing else.
 */
function localVaeFolder(dir: string): string {
  const rand = (shape: number[], seed: number) => randomTensor(shape, seed).data.map((v) => v * 0.3);
  const conv = (g: GraphBuilder, x: string, name: string, out: number, inC: number, k: number, seed: number, attrs: Record<string, number[]>) =>
    g.op('Conv', [x, g.tensor(`${name}.weight`, rand([out, inC, k, k], seed), [out, inC, k, k]), g.tensor(`${name}.bias`, rand([out], seed + 1), [out])], attrs);
  writeGraph(join(dir, 'vae_decoder', 'model.onnx'), (g) => {
    const z = g.input('latent_sample', DT.float, ['batch', LOCAL_CHANNELS, 'height', 'width']);
    const a = g.op('Tanh', [conv(g, z, 'conv_in', 8, LOCAL_CHANNELS, 3, 11, { pads: [1, 1, 1, 1] })]);
    const up = g.op('Resize', [a, '', g.constant([1, 1, LOCAL_F, LOCAL_F])], { mode: 'nearest' });
    g.output(conv(g, up, 'conv_out', 3, 8, 3, 13, { pads: [1, 1, 1, 1] }), 'sample', DT.float, ['batch', 3, 'out_height', 'out_width']);
  });
  writeGraph(join(dir, 'vae_encoder', 'model.onnx'), (g) => {
    const x = g.input('sample', DT.float, ['batch', 3, 'height', 'width']);
    const a = g.op('Tanh', [conv(g, x, 'patch', 8, 3, LOCAL_F, 17, { strides: [LOCAL_F, LOCAL_F] })]);
    g.output(conv(g, a, 'conv_out', LOCAL_CHANNELS, 8, 3, 19, { pads: [1, 1, 1, 1] }), 'latent_sample', DT.float, ['batch', LOCAL_CHANNELS, 'lh', 'lw']);
  });
  // block_out_channels: 3 blocks, so 4 pixels per cell; the scaling factor is arbitrary (latents are scaled by it).
  const config = JSON.stringify({ block_out_channels: [8, 8, 8], latent_channels: LOCAL_CHANNELS, scaling_factor: 0.5 });
  writeFileSync(join(dir, 'vae_decoder', 'config.json'), config);
  writeFileSync(join(dir, 'vae_encoder', 'config.json'), config);
  return dir;
}

/**
 * The points (output units: pixels or cells) of an axis whose value, in every tile covering them, is computed from
 * the cells `need(point)` inside that tile: there the tiled result must equal the plain one.
 */
function exactPoints(tilings: readonly Tiling[], axis: 'rows' | 'cols', size: number, cells: number, scale: number, need: (p: number) => [number, number]): boolean[] {
  return Array.from({ length: size }, (_, p) => {
    const [lo, hi] = need(p);
    const first = Math.max(0, lo);
    const last = Math.min(cells - 1, hi);
    return tilings.every((t) =>
      t[axis]
        .filter((s) => p >= s.start * scale && p < (s.start + s.length) * scale)
        .every((s) => first >= s.start && last < s.start + s.length),
    );
  });
}

test('on a VAE whose output is local, tiled decode and encode equal the plain ones away from the seams and differ only at them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-local-vae-'));
  const model = await openVaeFolder(localVaeFolder(join(dir, 'local-vae')));
  try {
    const vae = new VaeRef(model);
    const [h, w, tileSize, overlapPx] = [40, 52, 64, 16]; // tiles of 16 cells, 4 cells of overlap
    const f = LOCAL_F;
    const tilings = comfyTilings(h, w, tileSize / f, overlapPx / f);

    const latent = randomTensor([2, LOCAL_CHANNELS, h, w], 3);
    const plain = await decodeLatents(model, latent);
    const { ctx, steps } = progressContext();
    const tiled = await decodeTiled(vae, latent, tileSize, overlapPx, ctx);
    assert.deepEqual(tiled.shape, plain.shape);
    assert.equal(steps.length, 2 * tileCount(tilings), 'progress once per tile of each batch item');
    assert.deepEqual(steps.at(-1), [2 * tileCount(tilings), 2 * tileCount(tilings)]);
    // Output pixel p reads upsampled pixels p-1..p+1, which come from cells floor((p-1)/f)..floor((p+1)/f), each
    // computed from its neighbours: one cell more on each side.
    const decodeNeed = (p: number): [number, number] => [Math.floor((p - 1) / f) - 1, Math.floor((p + 1) / f) + 1];
    const rows = exactPoints(tilings, 'rows', h * f, h, f, decodeNeed);
    const cols = exactPoints(tilings, 'cols', w * f, w, f, decodeNeed);
    compare(plain, tiled, (i) => {
      const pixel = Math.floor(i / 3) % (h * f * w * f);
      return rows[Math.floor(pixel / (w * f))]! && cols[pixel % (w * f)]!;
    }, 'decode');

    const pixels: Tensor = { data: plain.data, shape: plain.shape };
    const encoded = await encodeImage(model, pixels);
    const encodedTiled = await encodeTiled(vae, pixels, tileSize, overlapPx, progressContext().ctx);
    assert.deepEqual(encodedTiled.shape, encoded.shape);
    // A cell is computed from its neighbours' patches.
    const encodeNeed = (p: number): [number, number] => [p - 1, p + 1];
    const erows = exactPoints(tilings, 'rows', h, h, 1, encodeNeed);
    const ecols = exactPoints(tilings, 'cols', w, w, 1, encodeNeed);
    compare(encoded, encodedTiled, (i) => {
      const cell = i % (h * w);
      return erows[Math.floor(cell / w)]! && ecols[cell % w]!;
    }, 'encode');
  } finally {
    await model.release();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Equal within float32 rounding where `exact(i)`, different somewhere else (the seams exist and are blended). */
function compare(plain: Tensor, tiled: Tensor, exact: (i: number) => boolean, what: string): void {
  let worstExact = 0;
  let worstSeam = 0;
  let exactCount = 0;
  for (let i = 0; i < plain.data.length; i++) {
    const d = Math.abs(plain.data[i]! - tiled.data[i]!);
    if (exact(i)) {
      exactCount++;
      worstExact = Math.max(worstExact, d);
    } else worstSeam = Math.max(worstSeam, d);
  }
  assert.ok(exactCount > plain.data.length / 8 && exactCount < plain.data.length, `${what}: ${exactCount} of ${plain.data.length} values away from the seams`);
  assert.ok(worstExact < 1e-6, `${what}: away from the seams the tiled result differs by up to ${worstExact}`);
  assert.ok(worstSeam > 1e-3, `${what}: at the seams the tiled result should differ from the plain one (it differs by up to ${worstSeam})`);
}

// --- The embedded model's VAE, through the nodes ---

const kept = new Map<string, Tensor>();
/** The embedded model with its VAE declared for any size (its graph takes any: the sizes are only declared). */
const DYNAMIC = 'tiny-sd-any-size';

/** Rewrites a VAE graph's declared input and output sizes as symbolic, keeping the channel count. */
function anySize(file: string): void {
  const model = decodeModel(readFileSync(file));
  const graph = model.graph!;
  const symbolic = (names: string[]) => (vi: (typeof graph.input)[number]) => {
    const { elemType, dims } = valueInfoType(vi);
    return makeValueInfo(vi.name, elemType, names.map((name, k) => (k === 1 ? (dims![1] as number) : name)));
  };
  graph.input = graph.input.map(symbolic(['batch', 'channels', 'height', 'width']));
  graph.output = graph.output.map(symbolic(['batch', 'channels', 'out_height', 'out_width']));
  graph.valueInfo = [];
  writeFileSync(file, encodeModel(model));
}

/** The keeper node, the any-size copy of the model and the input image: made once, by the tests that use them. */
let prepared: Promise<void> | undefined;
const prepare = (): Promise<void> => (prepared ??= prepareModelTests());

async function prepareModelTests(): Promise<void> {
  const registry = await packRegistry();
  registry.register(
    defineNode({
      id: 'KeepImage',
      inputs: { images: socket('IMAGE'), key: string() },
      outputs: [],
      outputNode: true,
      execute({ images, key }) {
        kept.set(key, images as Tensor);
        return { ui: { kept: [key] } };
      },
    }),
  );
  const dir = join(host.paths.models, DYNAMIC);
  cpSync(testModelDir, dir, { recursive: true });
  anySize(join(dir, 'vae_decoder', 'model.onnx'));
  anySize(join(dir, 'vae_encoder', 'model.onnx'));
  // 4 x 4 of the model's own 64x64 pictures (the contact sheet shows them 3x, above their captions): 256x256.
  const sheet = decodePng(readFileSync(join(repoRoot, 'models', 'tiny-sd', 'contact-sheet.png')));
  const size = 256;
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [cx, cy] = [Math.floor(x / 64) * 192, Math.floor(y / 64) * 226];
      const from = ((cy + (y % 64) * 3 + 1) * sheet.width + cx + (x % 64) * 3 + 1) * sheet.channels;
      for (let c = 0; c < 3; c++) data[(y * size + x) * 3 + c] = sheet.data[from + c]!;
    }
  }
  writeFileSync(join(host.paths.input, 'mosaic.png'), encodePng({ width: size, height: size, channels: 3, data }));
}

const TILE_INPUTS = { temporal_size: 64, temporal_overlap: 8 };

test('an image over the activation limit encodes and decodes tiled, where VAEEncode and VAEDecode refuse it', { skip: noModel }, async () => {
  await prepare();
  // tiny-sd's VAE estimate is ~13.5 KiB per latent cell: 256x256 pixels (64x64 cells) need ~54 MiB, tiles of
  // 128 pixels (1024 cells, whichever their shape) ~13.5 MiB.
  const previous = process.env.GATEGRAPH_MAX_ACTIVATION_MB;
  process.env.GATEGRAPH_MAX_ACTIVATION_MB = '24';
  try {
    const load = { class_type: 'LoadImage', inputs: { image: 'mosaic.png' } };
    const ckpt = { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DYNAMIC } };
    const events: string[] = [];
    const tiled = await validateAndRun(
      {
        ckpt,
        load,
        enc: { class_type: 'VAEEncodeTiled', inputs: { pixels: ['load', 0], vae: ['ckpt', 2], tile_size: 128, overlap: 32, ...TILE_INPUTS } },
        dec: { class_type: 'VAEDecodeTiled', inputs: { samples: ['enc', 0], vae: ['ckpt', 2], tile_size: 128, overlap: 32, ...TILE_INPUTS } },
        keep: { class_type: 'KeepImage', inputs: { images: ['dec', 0], key: 'big' } },
      },
      { onEvent: (e) => e.type === 'progress' && events.push(`${e.data.node}:${e.data.value}/${e.data.max}`) },
    );
    assert.equal(tiled.result.status, 'success', JSON.stringify(tiled.result.error));
    const image = kept.get('big')!;
    assert.deepEqual(image.shape, [1, 256, 256, 3]);
    assert.ok(image.data.every((v) => v >= 0 && v <= 1));
    // 64 cells, tiles of 32 with 8 of overlap: 3 x 3 square tiles, 1 x 7 and 7 x 1 for the 64 x 16 ones: 23 per pass.
    assert.equal(tileCount(comfyTilings(64, 64, 32, 8)), 23);
    assert.equal(events.filter((e) => e.startsWith('dec:')).at(-1), 'dec:23/23');
    assert.equal(events.filter((e) => e.startsWith('enc:')).at(-1), 'enc:23/23');

    const plain = await validateAndRun({
      ckpt,
      load,
      enc: { class_type: 'VAEEncodeTiled', inputs: { pixels: ['load', 0], vae: ['ckpt', 2], tile_size: 128, overlap: 32, ...TILE_INPUTS } },
      dec: { class_type: 'VAEDecode', inputs: { samples: ['enc', 0], vae: ['ckpt', 2] } },
      keep: { class_type: 'KeepImage', inputs: { images: ['dec', 0], key: 'plain' } },
    });
    assert.equal(plain.result.error?.node_type, 'VAEDecode');
    assert.match(plain.result.error?.message ?? '', /needs an estimated .* of activations, above the limit of 24\.0 MiB/);

    // Tiles as large as the image do not help: the message says which tile size fits.
    const large = await validateAndRun({
      ckpt,
      load,
      enc: { class_type: 'VAEEncodeTiled', inputs: { pixels: ['load', 0], vae: ['ckpt', 2], tile_size: 512, overlap: 64, ...TILE_INPUTS } },
      dec: { class_type: 'VAEDecodeTiled', inputs: { samples: ['enc', 0], vae: ['ckpt', 2], tile_size: 128, overlap: 32, ...TILE_INPUTS } },
      keep: { class_type: 'KeepImage', inputs: { images: ['dec', 0], key: 'unused' } },
    });
    assert.equal(large.result.error?.node_type, 'VAEEncodeTiled');
    assert.match(large.result.error?.message ?? '', /^tile_size 512 makes tiles of 256x256 pixels: encoding one .* Lower tile_size to 168 or less\.$/);
  } finally {
    if (previous === undefined) delete process.env.GATEGRAPH_MAX_ACTIVATION_MB;
    else process.env.GATEGRAPH_MAX_ACTIVATION_MB = previous;
  }
});

test('on the embedded VAE (exported for 64x64 only): one tile is VAEDecode exactly; tiles of other sizes are refused', { skip: noModel }, async () => {
  await prepare();
  const ckpt = { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } };
  const same = await validateAndRun({
    ckpt,
    empty: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    noise: { class_type: 'KSampler', inputs: { model: ['ckpt', 0], positive: ['pos', 0], negative: ['pos', 0], latent_image: ['empty', 0], seed: 3, steps: 2, cfg: 1, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
    pos: { class_type: 'CLIPTextEncode', inputs: { clip: ['ckpt', 1], text: 'a red circle' } },
    plain: { class_type: 'VAEDecode', inputs: { samples: ['noise', 0], vae: ['ckpt', 2] } },
    tiled: { class_type: 'VAEDecodeTiled', inputs: { samples: ['noise', 0], vae: ['ckpt', 2], tile_size: 512, overlap: 64, ...TILE_INPUTS } },
    k1: { class_type: 'KeepImage', inputs: { images: ['plain', 0], key: 'plain64' } },
    k2: { class_type: 'KeepImage', inputs: { images: ['tiled', 0], key: 'tiled64' } },
  });
  assert.equal(same.result.status, 'success', JSON.stringify(same.result.error));
  assert.deepEqual(kept.get('tiled64')!.data, kept.get('plain64')!.data);

  const refused = await validateAndRun({
    ckpt,
    empty: { class_type: 'EmptyLatentImage', inputs: { width: 128, height: 128, batch_size: 1 } },
    tiled: { class_type: 'VAEDecodeTiled', inputs: { samples: ['empty', 0], vae: ['ckpt', 2], tile_size: 64, overlap: 16, ...TILE_INPUTS } },
    k: { class_type: 'KeepImage', inputs: { images: ['tiled', 0], key: 'refused' } },
  });
  assert.equal(refused.result.error?.node_type, 'VAEDecodeTiled');
  assert.match(refused.result.error?.message ?? '', /^tile_size: tiny-sd's VAE was exported for 64x64 pixels only, so it cannot decode tiles of 32x128 /);
});
