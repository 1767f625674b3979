import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { asciiJson, decodePng, encodePng, imageToRgb8, readPngText, rgb8ToImage, tensor, type RawImage } from '../src/index.ts';
import { readChunks } from '../src/png-text.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
/** Written by make_png_refs.py with Pillow, the way ComfyUI's SaveImage writes its PNGs. */
const refs = JSON.parse(readFileSync(new URL('./fixtures/png_refs.json', import.meta.url), 'utf8')) as {
  rgb_pixels: number[][];
  palette_rgba: number[][];
  gray16: number[];
  prompt: Record<string, unknown>;
  workflow: Record<string, unknown>;
};

function gradient(width: number, height: number, channels: number): RawImage {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 255;
  return { width, height, channels, data };
}

test('encode -> decode round-trips pixels for gray, gray+alpha, RGB and RGBA', () => {
  for (const channels of [1, 2, 3, 4]) {
    const img = gradient(17, 5, channels);
    const back = decodePng(encodePng(img));
    assert.equal(back.width, 17);
    assert.equal(back.height, 5);
    assert.equal(back.channels, channels);
    assert.deepEqual(back.data, img.data);
    assert.deepEqual(back.text, {});
  }
});

test('text round-trips, non-ASCII included: ASCII as tEXt, the rest as UTF-8 iTXt, all before the image data', () => {
  const text = {
    prompt: asciiJson({ '6': { inputs: { text: 'un chat dans un café, 東京の夜, 🐱' } } }),
    workflow: '{"nodes":[]}',
    parameters: 'a café at night, 東京, 🐱\nSteps: 20',
    latin1: 'crème brûlée',
  };
  const png = encodePng(gradient(3, 2, 3), text);
  assert.deepEqual(decodePng(png).text, text);
  assert.deepEqual(readPngText(png), text);
  const chunks = readChunks(png);
  const types = chunks.map((c) => c.type);
  assert.deepEqual(types.slice(0, 5), ['IHDR', 'tEXt', 'tEXt', 'iTXt', 'iTXt']);
  assert.ok(types.indexOf('IDAT') > 4);
  const promptChunk = new TextDecoder('latin1').decode(chunks[1]!.data);
  assert.ok(promptChunk.startsWith('prompt\0{"6"'), 'keyword, NUL, then the JSON');
  assert.match(promptChunk, /caf\\u00e9, \\u6771\\u4eac\\u306e\\u591c, \\ud83d\\udc31/, 'escaped like Python json.dumps');
});

test('a ComfyUI SaveImage PNG (written by Pillow) gives back its pixels, prompt and workflow', () => {
  const png = decodePng(fixture('comfyui_saveimage.png'));
  assert.equal(png.width, 4);
  assert.equal(png.height, 3);
  assert.equal(png.channels, 3);
  assert.deepEqual(Array.from(png.data), refs.rgb_pixels.flat());
  assert.deepEqual(JSON.parse(png.text['prompt']!), refs.prompt);
  assert.deepEqual(JSON.parse(png.text['workflow']!), refs.workflow);
  assert.equal((JSON.parse(png.text['workflow']!) as { nodes: { widgets_values: string[] }[] }).nodes[0]!.widgets_values[0], 'un chat dans un café, 東京の夜, 🐱');
});

test('tEXt (Latin-1), iTXt, zTXt and compressed iTXt written by Pillow are all read', () => {
  const text = readPngText(fixture('pillow_text_chunks.png'));
  assert.equal(text['latin1'], 'café crème');
  assert.equal(text['unicode'], '東京の夜 🐱');
  assert.equal(text['zipped'], 'squeezed '.repeat(20));
  assert.equal(text['zipped_unicode'], '圧縮された '.repeat(20));
});

test('palette and 16-bit PNGs decode to 8-bit pixels', () => {
  const pal = decodePng(fixture('palette.png'));
  assert.equal(pal.channels, 4);
  assert.deepEqual(Array.from(pal.data), refs.palette_rgba.flat());
  const g = decodePng(fixture('gray16.png'));
  assert.equal(g.channels, 1);
  assert.deepEqual(Array.from(g.data), refs.gray16.map((v) => Math.round(v / 257)));
});

test('IMAGE tensor -> 8-bit: x 255, round half up, clamp, NaN -> 0; truncate like ComfyUI on request', () => {
  const img = tensor([0, 0.5 / 255, 0.49 / 255, 1, 1.2, -0.1, NaN, 127.5 / 255], [1, 1, 2, 4]);
  const [rounded] = imageToRgb8(img);
  assert.deepEqual(Array.from(rounded!.data), [0, 1, 0, 255, 255, 0, 0, 128]);
  assert.deepEqual({ w: rounded!.width, h: rounded!.height, c: rounded!.channels }, { w: 2, h: 1, c: 4 });
  const [truncated] = imageToRgb8(img, { rounding: 'truncate' });
  assert.deepEqual(Array.from(truncated!.data), [0, 0, 0, 255, 255, 0, 0, 127]);
  assert.throws(() => imageToRgb8(tensor([0, 0, 0], [1, 3])), /IMAGE tensors are \[batch, height, width, channels<=4\]; got \[1, 3\]/);
});

test('8-bit -> IMAGE tensor [B, H, W, 3] in 0..1 and back is lossless; gray expands, alpha drops', () => {
  const all: RawImage = { width: 256, height: 1, channels: 3, data: new Uint8Array(768).map((_, i) => Math.floor(i / 3)) };
  const t = rgb8ToImage(all);
  assert.deepEqual(t.shape, [1, 1, 256, 3]);
  assert.equal(t.data[3 * 255], 1);
  assert.deepEqual(imageToRgb8(t)[0]!.data, all.data);
  const gray = rgb8ToImage({ width: 1, height: 1, channels: 2, data: Uint8Array.of(51, 7) });
  assert.deepEqual(Array.from(gray.data), [0.2, 0.2, 0.2].map(Math.fround));
  const batch = rgb8ToImage([gradient(2, 2, 4), gradient(2, 2, 3)]);
  assert.deepEqual(batch.shape, [2, 2, 2, 3]);
  assert.throws(() => rgb8ToImage([gradient(2, 2, 3), gradient(3, 2, 3)]), /image 1 is 3x2, expected 2x2 like image 0/);
});

test('IMAGE batch -> PNG files -> IMAGE again', () => {
  const t = rgb8ToImage([gradient(5, 4, 3), gradient(5, 4, 4)]);
  const files = imageToRgb8(t).map((raw) => encodePng(raw));
  const back = rgb8ToImage(files.map((f) => decodePng(f)));
  assert.deepEqual(back.data, t.data);
});

test('bad input is reported clearly', () => {
  assert.throws(() => decodePng(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), /Not a PNG file/);
  const png = encodePng(gradient(2, 2, 3), { a: 'b' });
  png[42] = png[42]! ^ 0xff; // inside the tEXt chunk
  assert.throws(() => decodePng(png), /Corrupt PNG: bad CRC in chunk tEXt/);
  assert.throws(() => encodePng(gradient(2, 2, 3), { ' lead': 'x' }), /PNG text keyword " lead" is invalid/);
  assert.throws(() => encodePng(gradient(2, 2, 3), { ['k'.repeat(80)]: 'x' }), /is invalid: use 1-79 Latin-1/);
  assert.throws(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) }), /Pixel data has 5 bytes; 2x2x3 needs 12/);
});
