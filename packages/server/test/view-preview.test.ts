import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { parsePreviewRequest } from '../src/view-preview.ts';
import { makePng, startTestServer, type TestServer } from './helpers.ts';

let server: TestServer;
/** 48x32 RGB with a gradient, so lossy qualities give different sizes. */
let rgbPng: Buffer;

/** 16x16 RGBA: left half opaque blue, right half fully transparent *red* (the colour a drop must keep). */
async function rgbaPng(): Promise<Buffer> {
  const raw = Buffer.alloc(16 * 16 * 4);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) raw.set(x < 8 ? [0, 0, 255, 255] : [255, 0, 0, 0], (y * 16 + x) * 4);
  }
  return sharp(raw, { raw: { width: 16, height: 16, channels: 4 } }).png().toBuffer();
}

before(async () => {
  server = await startTestServer({ webExtensions: [] });
  rgbPng = makePng(48, 32, 7);
  writeFileSync(join(server.config.paths.output, 'rgb.png'), rgbPng);
  writeFileSync(join(server.config.paths.output, 'rgba.png'), await rgbaPng());
  mkdirSync(join(server.config.paths.input, 'sub'), { recursive: true });
  writeFileSync(join(server.config.paths.input, 'sub', 'in.png'), makePng(4, 6, 1));
  writeFileSync(join(server.config.paths.temp, 'notes.txt'), 'not an image');
});
after(async () => {
  await server.dispose();
});

async function view(query: string): Promise<{ status: number; type: string | null; disposition: string | null; body: Buffer }> {
  const response = await fetch(`${server.url}/view?${query}`);
  return {
    status: response.status,
    type: response.headers.get('content-type'),
    disposition: response.headers.get('content-disposition'),
    body: Buffer.from(await response.arrayBuffer()),
  };
}

const isWebp = (b: Buffer) => b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP';
const isJpeg = (b: Buffer) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

test('preview=webp;90 and preview=jpeg;80 re-encode the image at its size, named as the original', async () => {
  const source = await sharp(rgbPng).raw().toBuffer();
  for (const [query, check, type] of [
    ['preview=webp;90', isWebp, 'image/webp'],
    ['preview=jpeg;80', isJpeg, 'image/jpeg'],
  ] as const) {
    const r = await view(`filename=rgb.png&type=output&${query}`);
    assert.equal(r.status, 200, query);
    assert.equal(r.type, type, `${query} answers ${type}`);
    assert.ok(check(r.body), `${query} sends ${type} bytes`);
    assert.match(r.disposition ?? '', /filename="rgb\.png"/, 'Content-Disposition keeps the original file name, as ComfyUI does');
    const { data, info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [48, 32, 3]);
    const meanError = data.reduce((sum, v, i) => sum + Math.abs(v - source[i]!), 0) / data.length;
    assert.ok(meanError < 8, `${query} shows the same picture (mean error ${meanError.toFixed(2)})`);
  }
});

test('the quality is the number after the last ";", 90 when there is none, and changes the encoding', async () => {
  const noisy = Buffer.alloc(64 * 64 * 3);
  for (let i = 0; i < noisy.length; i++) noisy[i] = (i * 7919) % 251;
  writeFileSync(join(server.config.paths.output, 'noisy.png'), await sharp(noisy, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer());

  for (const format of ['jpeg', 'webp']) {
    const low = await view(`filename=noisy.png&preview=${format};10`);
    const high = await view(`filename=noisy.png&preview=${format};95`);
    assert.ok(low.body.length < high.body.length, `${format} quality 10 is smaller than 95 (${low.body.length} vs ${high.body.length})`);
    const ninety = (await view(`filename=noisy.png&preview=${format};90`)).body;
    assert.deepEqual((await view(`filename=noisy.png&preview=${format}`)).body, ninety, `${format} without a quality is quality 90`);
    assert.deepEqual((await view(`filename=noisy.png&preview=${format};high`)).body, ninety, `${format} with a non-numeric quality is quality 90`);
    const hundred = (await view(`filename=noisy.png&preview=${format};100`)).body;
    assert.deepEqual((await view(`filename=noisy.png&preview=${format};1000`)).body, hundred, 'a quality above 100 is taken as 100');
  }
});

test('formats other than webp and jpeg give WebP, as in ComfyUI', async () => {
  for (const preview of ['png;80', 'jpg', 'gif', 'avif;50', 'WEBP', '']) {
    const r = await view(`filename=rgb.png&preview=${encodeURIComponent(preview)}`);
    assert.equal(r.status, 200, preview);
    assert.equal(r.type, 'image/webp', `preview=${preview} answers WebP`);
    assert.ok(isWebp(r.body));
  }
  const bare = await view('filename=rgb.png&preview');
  assert.equal(bare.type, 'image/webp', 'a bare ?preview asks for a preview too');
  assert.deepEqual((await view('filename=rgb.png&preview=png;80')).body, (await view('filename=rgb.png&preview=webp;80')).body);
});

test('transparency: WebP keeps it, JPEG and channel=rgb drop the alpha channel keeping colours, channel with "a" forces WebP', async () => {
  const decode = async (body: Buffer) => sharp(body).raw().toBuffer({ resolveWithObject: true });
  const pixel = (data: Buffer, channels: number, x: number) => [...data.subarray(x * channels, x * channels + channels)];

  const webp = await view('filename=rgba.png&preview=webp;100');
  const w = await decode(webp.body);
  assert.equal(w.info.channels, 4, 'WebP keeps the alpha channel');
  assert.ok(pixel(w.data, 4, 12)[3]! < 10, 'the transparent half stays transparent');

  const jpeg = await view('filename=rgba.png&preview=jpeg;100');
  assert.equal(jpeg.type, 'image/jpeg');
  const j = await decode(jpeg.body);
  assert.equal(j.info.channels, 3, 'JPEG has no alpha');
  const [r, g, b] = pixel(j.data, 3, 12);
  assert.ok(r! > 200 && g! < 60 && b! < 60, `a dropped alpha keeps the hidden colour (red), not a background: got ${[r, g, b]}`);

  const rgb = await view('filename=rgba.png&preview=webp;100&channel=rgb');
  assert.equal(rgb.type, 'image/webp');
  assert.equal((await decode(rgb.body)).info.channels, 3, 'channel=rgb drops alpha from WebP too');

  for (const channel of ['rgba', 'a']) {
    const forced = await view(`filename=rgba.png&preview=jpeg;80&channel=${channel}`);
    assert.equal(forced.type, 'image/webp', `channel=${channel} turns a JPEG request into WebP`);
    assert.equal((await decode(forced.body)).info.channels, 4, 'and keeps the alpha');
  }
});

test('previews carry no metadata, and the full file is unchanged without preview', async () => {
  // rgb.png with a prompt chunk after IHDR (signature 8 + IHDR 25 bytes), as SaveImage writes it.
  const text = Buffer.concat([Buffer.from('prompt\0', 'latin1'), Buffer.from('{"secret-prompt":1}', 'latin1')]);
  const chunk = Buffer.alloc(12 + text.length);
  chunk.writeUInt32BE(text.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  text.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + text.length)), 8 + text.length);
  const png = Buffer.concat([rgbPng.subarray(0, 33), chunk, rgbPng.subarray(33)]);
  writeFileSync(join(server.config.paths.output, 'meta.png'), png);

  assert.deepEqual((await view('filename=meta.png')).body, png, 'without preview the bytes are the file');
  for (const format of ['webp', 'jpeg']) {
    const r = await view(`filename=meta.png&preview=${format}`);
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes('secret-prompt'), `the ${format} preview does not carry the prompt`);
  }
});

test('previews obey the same folder rules as /view, under / and /api', async () => {
  for (const prefix of ['', '/api']) {
    const input = await fetch(`${server.url}${prefix}/view?filename=in.png&subfolder=sub&type=input&preview=jpeg;70`);
    assert.equal(input.status, 200);
    assert.equal(input.headers.get('content-type'), 'image/jpeg');
    const info = await sharp(Buffer.from(await input.arrayBuffer())).metadata();
    assert.deepEqual([info.width, info.height], [4, 6]);
  }
  assert.equal((await view('filename=missing.png&preview=webp')).status, 404);
  assert.equal((await view(`filename=${encodeURIComponent('../rgb.png')}&preview=webp`)).status, 400);
  assert.equal((await view('filename=rgb.png&subfolder=..&preview=webp')).status, 403);
});

test('a file that is not an image gets a 400 saying so with preview, and its bytes without', async () => {
  const r = await view('filename=notes.txt&type=temp&preview=webp;90');
  assert.equal(r.status, 400);
  const error = JSON.parse(r.body.toString()).error;
  assert.equal(error.type, 'invalid_image');
  assert.match(error.message, /"notes\.txt".*not an image.*without "preview"/);
  assert.equal((await view('filename=notes.txt&type=temp')).body.toString(), 'not an image');
});

test('parsePreviewRequest follows ComfyUI’s reading of preview and channel', () => {
  const cases: Array<[string, string | undefined, ReturnType<typeof parsePreviewRequest>]> = [
    ['webp;90', undefined, { format: 'webp', quality: 90, dropAlpha: false }],
    ['jpeg;80', undefined, { format: 'jpeg', quality: 80, dropAlpha: true }],
    ['jpeg', undefined, { format: 'jpeg', quality: 90, dropAlpha: true }],
    ['png;40', undefined, { format: 'webp', quality: 40, dropAlpha: false }],
    ['75', undefined, { format: 'webp', quality: 75, dropAlpha: false }],
    ['webp;50;x', undefined, { format: 'webp', quality: 90, dropAlpha: false }],
    ['webp;x;50', undefined, { format: 'webp', quality: 50, dropAlpha: false }],
    ['webp;', undefined, { format: 'webp', quality: 90, dropAlpha: false }],
    ['webp;-5', undefined, { format: 'webp', quality: 90, dropAlpha: false }],
    ['webp;0', undefined, { format: 'webp', quality: 1, dropAlpha: false }],
    ['jpeg;80', 'rgba', { format: 'webp', quality: 80, dropAlpha: false }],
    ['jpeg;80', 'rgb', { format: 'jpeg', quality: 80, dropAlpha: true }],
    ['webp;80', 'rgb', { format: 'webp', quality: 80, dropAlpha: true }],
  ];
  for (const [preview, channel, expected] of cases) {
    assert.deepEqual(parsePreviewRequest(preview, channel), expected, `preview=${preview} channel=${channel}`);
  }
});

test('channel=rgb and channel=a without preview give the colours and the alpha as PNGs, as ComfyUI does', async () => {
  const decode = async (body: Buffer) => sharp(body).raw().toBuffer({ resolveWithObject: true });
  const isPng = (b: Buffer) => b.toString('latin1', 1, 4) === 'PNG';

  const rgb = await view('filename=rgba.png&channel=rgb');
  assert.equal(rgb.status, 200);
  assert.equal(rgb.type, 'image/png');
  assert.ok(isPng(rgb.body));
  assert.match(rgb.disposition ?? '', /filename="rgba\.png"/);
  const colours = await decode(rgb.body);
  assert.equal(colours.info.channels, 3, 'channel=rgb drops the alpha channel');
  assert.deepEqual([...colours.data.subarray(0, 3)], [0, 0, 255], 'the opaque half keeps its blue');
  assert.deepEqual([...colours.data.subarray(12 * 3, 12 * 3 + 3)], [255, 0, 0], 'the transparent half keeps its hidden red');

  const alpha = await decode((await view('filename=rgba.png&channel=a')).body);
  assert.equal(alpha.info.channels, 4);
  assert.deepEqual([...alpha.data.subarray(0, 4)], [0, 0, 0, 255], 'opaque pixels: black with alpha 255');
  assert.deepEqual([...alpha.data.subarray(12 * 4, 12 * 4 + 4)], [0, 0, 0, 0], 'transparent pixels: alpha 0');

  const opaque = await decode((await view('filename=rgb.png&channel=a')).body);
  assert.deepEqual([opaque.info.width, opaque.info.height], [48, 32]);
  assert.ok([...opaque.data].every((v, i) => (i % 4 === 3 ? v === 255 : v === 0)), 'an image without alpha is fully opaque');

  const sourceFile = (await view('filename=rgba.png')).body;
  assert.deepEqual((await view('filename=rgba.png&channel=rgba')).body, sourceFile, 'channel=rgba is the file as it is');
  assert.deepEqual((await view('filename=rgba.png&channel=other')).body, sourceFile, 'an unknown channel is the file as it is');

  const notImage = await view('filename=notes.txt&type=temp&channel=a');
  assert.equal(notImage.status, 400);
  assert.match(JSON.parse(notImage.body.toString()).error.message, /channel "a" of "notes\.txt".*not an image/);
  assert.equal((await view(`filename=${encodeURIComponent('../rgba.png')}&channel=rgb`)).status, 400, 'traversal is refused as usual');
});
