// The resampling methods against what ComfyUI computes with them: PyTorch's interpolate, ComfyUI's bislerp and
// Pillow's Lanczos, through common_upscale with and without the centre crop (fixtures/make_resample_refs.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bislerp, centerCrop, commonUpscale, interpolate, lanczos, roundHalfEven, type CropMethod, type Layout, type Tensor, type UpscaleMethod } from '../src/index.ts';

interface Case {
  name: string;
  method: UpscaleMethod;
  crop: CropMethod;
  layout: Layout;
  width: number;
  height: number;
  inShape: number[];
  input: string;
  outShape: number[];
  output: string;
}

const refs = JSON.parse(readFileSync(new URL('./fixtures/resample_refs.json', import.meta.url), 'utf8')) as { torch: string; pillow: string; cases: Case[] };

function float32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** Largest difference and where it is. */
function worst(actual: Float32Array, expected: Float32Array): { diff: number; at: number } {
  let diff = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d > diff || Number.isNaN(d)) {
      diff = d;
      at = i;
    }
  }
  return { diff, at };
}

test(`common_upscale matches torch ${refs.torch} and Pillow ${refs.pillow} within 1e-5 for every method`, () => {
  assert.ok(refs.cases.length > 50);
  const methods = new Set<string>();
  for (const c of refs.cases) {
    const input: Tensor = { data: float32(c.input), shape: c.inShape };
    const out = commonUpscale(input, c.width, c.height, c.method, c.crop, c.layout);
    assert.deepEqual(out.shape, c.outShape, `${c.name}: shape`);
    const expected = float32(c.output);
    const { diff, at } = worst(out.data, expected);
    assert.ok(diff <= 1e-5, `${c.name}: element ${at} is ${out.data[at]}, PyTorch/Pillow give ${expected[at]} (|diff| ${diff})`);
    assert.notEqual(out.data, input.data, `${c.name}: a new tensor`);
    methods.add(c.method);
  }
  assert.deepEqual([...methods].sort(), ['area', 'bicubic', 'bilinear', 'bislerp', 'lanczos', 'nearest-exact']);
});

test('lanczos results are on 1/255 steps and clipped to 0..1, like the 8-bit images Pillow resizes', () => {
  const image: Tensor = { data: Float32Array.from({ length: 2 * 3 * 5 * 3 }, (_, i) => (i % 7) / 3 - 0.5), shape: [2, 3, 5, 3] };
  const out = lanczos(image, 8, 4, 'nhwc');
  for (const v of out.data) {
    assert.ok(v >= 0 && v <= 1, `${v} in 0..1`);
    assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-4, `${v} is a multiple of 1/255`);
  }
});

test('the two layouts give the same pixels: an IMAGE is resized without moving its channels', () => {
  const nchw: Tensor = { data: Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => Math.sin(i)), shape: [2, 3, 4, 5] };
  const nhwc: Tensor = { data: new Float32Array(nchw.data.length), shape: [2, 4, 5, 3] };
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let p = 0; p < 20; p++) nhwc.data[(b * 20 + p) * 3 + c] = nchw.data[(b * 3 + c) * 20 + p]!;
  for (const method of ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] as const) {
    const a = commonUpscale(nchw, 7, 3, method, 'center', 'nchw');
    const b = commonUpscale(nhwc, 7, 3, method, 'center', 'nhwc');
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 21; p++) assert.ok(Math.abs(a.data[c * 21 + p]! - b.data[p * 3 + c]!) < 1e-6, `${method} channel ${c} pixel ${p}`);
    }
  }
});

test('bislerp keeps the length of blended latent vectors where a straight blend shrinks it', () => {
  // Two orthogonal unit vectors side by side: halfway, a straight blend has length 0.707, a slerp length 1.
  const t: Tensor = { data: Float32Array.from([1, 0, 0, 1]), shape: [1, 2, 1, 2] };
  const slerped = bislerp(t, 3, 1);
  const straight = interpolate(t, 3, 1, 'bilinear');
  const length = (u: Tensor, x: number) => Math.hypot(u.data[x]!, u.data[3 + x]!);
  assert.ok(Math.abs(length(slerped, 1) - 1) < 1e-6, `slerp length ${length(slerped, 1)}`);
  assert.ok(length(straight, 1) < 0.99, `straight length ${length(straight, 1)}`);
});

test("Python's round, as ComfyUI sizes images: halves go to the even neighbour", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 7.5, 10.5, 2.4999, 2.5001, -0.5, -1.5].map(roundHalfEven), [0, 2, 2, 8, 10, 2, 3, 0, -2]);
});

test('centerCrop cuts the longer side evenly and returns the input when the aspect already matches', () => {
  const t: Tensor = { data: Float32Array.from({ length: 10 }, (_, i) => i), shape: [1, 1, 1, 10] };
  assert.deepEqual([...centerCrop(t, 4, 1).data], [3, 4, 5, 6]);
  assert.equal(centerCrop(t, 20, 2), t);
});

test('sizes that are not sizes are refused with the shape in the message', () => {
  const t: Tensor = { data: new Float32Array(4), shape: [1, 1, 2, 2] };
  assert.throws(() => interpolate(t, 0, 3, 'bilinear'), /0x3 is not a size/);
  assert.throws(() => lanczos({ data: new Float32Array(4), shape: [4] }, 2, 2), /expected \[batch, channels, height, width\], got \[4\]/);
});
