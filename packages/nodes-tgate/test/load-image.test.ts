// LoadImage reads what ComfyUI's LoadImage reads (PNG, JPEG, WebP, GIF, TIFF; EXIF orientation; 16-bit and
// greyscale; animated frames as a batch) and decodes off the event loop, so a large image does not hold up
// the server's other requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { listInputImages } from '../src/folders.ts';
import { host, packRegistry } from './helpers.ts';

type Tensor = { data: Float32Array; shape: number[] };

async function load(name: string, bytes: Buffer): Promise<[Tensor, Tensor]> {
  mkdirSync(join(host.paths.input, 'formats'), { recursive: true });
  writeFileSync(join(host.paths.input, 'formats', name), bytes);
  const definition = (await packRegistry()).get('LoadImage')!;
  const ctx = { paths: host.paths } as Parameters<typeof definition.execute>[1];
  return (await definition.execute({ image: `formats/${name}` }, ctx)) as [Tensor, Tensor];
}

/** A 4x2 RGBA picture: pixel p = (30p, 255-30p, 100), pixel 5 transparent. */
function rgba(): Buffer {
  const pixels = Buffer.alloc(4 * 2 * 4);
  for (let p = 0; p < 8; p++) pixels.set([p * 30, 255 - p * 30, 100, p === 5 ? 0 : 255], p * 4);
  return pixels;
}
const raw = { raw: { width: 4, height: 2, channels: 4 as const } };

test('LoadImage reads lossless WebP and TIFF with their alpha as the MASK, and lists them', async () => {
  for (const [name, bytes] of [
    ['tile.webp', await sharp(rgba(), raw).webp({ lossless: true }).toBuffer()],
    ['tile.tiff', await sharp(rgba(), raw).tiff({ compression: 'lzw' }).toBuffer()],
  ] as const) {
    const [image, mask] = await load(name, bytes);
    assert.deepEqual(image.shape, [1, 2, 4, 3], name);
    assert.deepEqual([...image.data.subarray(0, 6)].map((v) => Math.round(v * 255)), [0, 255, 100, 30, 225, 100], name);
    assert.deepEqual([...mask.data], [0, 0, 0, 0, 0, 1, 0, 0], name);
  }
  const listed = listInputImages({ paths: host.paths });
  assert.ok(listed.includes('formats/tile.webp') && listed.includes('formats/tile.tiff'), `the image combo lists them: ${listed.join(', ')}`);
});

test('LoadImage converts a 16-bit greyscale PNG with alpha to 8-bit RGB and a mask', async () => {
  const grey = await sharp({ create: { width: 3, height: 2, channels: 4, background: { r: 128, g: 128, b: 128, alpha: 0.5 } } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  assert.equal((await sharp(grey).metadata()).depth, 'ushort', 'the test file is 16-bit');
  const [image, mask] = await load('grey16.png', grey);
  assert.deepEqual(image.shape, [1, 2, 3, 3]);
  for (const v of image.data) assert.ok(Math.abs(v - 128 / 255) < 2 / 255, `grey level ${v * 255}`);
  for (const v of mask.data) assert.ok(Math.abs(v - 0.5) < 2 / 255, `mask ${v}`);
});

test('LoadImage applies EXIF orientation (as ComfyUI\'s exif_transpose)', async () => {
  // Stored 4 wide and 2 high, tagged "rotate 90 degrees clockwise to display" (orientation 6).
  const jpeg = await sharp(rgba(), raw).removeAlpha().jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
  const [image, mask] = await load('rotated.jpg', jpeg);
  assert.deepEqual(image.shape, [1, 4, 2, 3], 'shown 2 wide and 4 high');
  assert.deepEqual(mask.shape, [1, 64, 64], 'no alpha: an empty 64x64 mask, as ComfyUI');
});

test('the frames of an animated GIF become a batch, each with its mask', async () => {
  const frames = Buffer.concat([rgba(), Buffer.from(rgba().map((v, i) => (i % 4 === 3 ? v : 255 - v)))]);
  const gif = await sharp(frames, { raw: { width: 4, height: 4, channels: 4, pageHeight: 2 } as never }).gif({ loop: 0 }).toBuffer();
  assert.equal((await sharp(gif, { pages: -1 }).metadata()).pages, 2, 'the test file has two frames');
  const [image, mask] = await load('two-frames.gif', gif);
  assert.deepEqual(image.shape, [2, 2, 4, 3]);
  assert.deepEqual(mask.shape, [2, 2, 4]);
  assert.equal(mask.data[5], 1, 'frame 0 pixel 5 is transparent');
  assert.equal(mask.data[8 + 5], 1, 'frame 1 pixel 5 is transparent');
  assert.ok(image.data[0]! < 0.1 && image.data[24]! > 0.9, 'the frames differ (frame 1 is inverted)');
});

test('an SVG is refused as a document, not decoded', async () => {
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
  await assert.rejects(load('drawing.gif', svg), /it is a SVG file; LoadImage reads PNG, JPEG, WebP, GIF and TIFF images/);
});

test('a large image decodes off the event loop: timers keep firing while LoadImage decodes it', async () => {
  const big = await sharp({ create: { width: 8192, height: 4096, channels: 3, background: { r: 10, g: 20, b: 30 } } })
    .png({ compressionLevel: 1 })
    .toBuffer();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    const [image] = await load('big.png', big);
    assert.deepEqual(image.shape, [1, 4096, 8192, 3]);
  } finally {
    clearInterval(timer);
  }
  // Decoding 33 megapixels takes far longer than a few 5 ms intervals; a decode on the event loop lets none fire.
  assert.ok(ticks >= 3, `the event loop ran ${ticks} timer callbacks during the decode`);
});
