/**
 * PNG encode / decode (pixels by fast-png; text metadata by png-text.ts) and conversions between 8-bit
 * pixels and our IMAGE convention: float32 [B, H, W, C] in 0..1, as ComfyUI's IMAGE.
 */
import { convertIndexedToRgb, decode, encode, type DecodedPng } from 'fast-png';
import { readChunks, decodeTextChunk, withTextChunks } from './png-text.ts';
import type { Tensor } from './tensor.ts';

/** 8-bit interleaved pixels, row-major: data[(y * width + x) * channels + c]. Channels 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA). */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export interface DecodedImage extends RawImage {
  /** Text metadata (tEXt, zTXt, iTXt): ComfyUI's `prompt` and `workflow` JSON, A1111's `parameters`... */
  text: Record<string, string>;
}

function checkRaw(image: RawImage): void {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`PNG size ${width}x${height} is invalid: width and height must be whole numbers >= 1`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new RangeError(`PNG channels must be 1, 2, 3 or 4 (got ${channels})`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`Pixel data has ${data.length} bytes; ${width}x${height}x${channels} needs ${width * height * channels}`);
  }
}

/** Encodes 8-bit pixels as a PNG, with optional text metadata (ASCII values as tEXt, others as iTXt). */
export function encodePng(image: RawImage, text: Record<string, string> = {}): Uint8Array {
  checkRaw(image);
  const png = encode({ width: image.width, height: image.height, channels: image.channels, depth: 8, data: image.data });
  return withTextChunks(png, text);
}

/** Unpacks 1/2/4-bit grayscale rows (each row starts on a byte boundary) to one byte per sample, scaled to 0..255. */
function unpackLowDepth(packed: Uint8Array, width: number, height: number, channels: number, depth: number): Uint8Array {
  const perRow = Math.ceil((width * channels * depth) / 8);
  const max = (1 << depth) - 1;
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < width * channels; i++) {
      const bit = i * depth;
      const byte = packed[y * perRow + (bit >> 3)]!;
      const v = (byte >> (8 - depth - (bit & 7))) & max;
      out[y * width * channels + i] = Math.round((v * 255) / max);
    }
  }
  return out;
}

function to8Bit(png: DecodedPng): { channels: number; data: Uint8Array } {
  if (png.palette) {
    // fast-png folds tRNS into the palette entries: [r, g, b] or [r, g, b, a]
    const rgb = convertIndexedToRgb(png);
    return { channels: png.palette[0]?.length ?? 3, data: rgb };
  }
  if (png.depth === 16) {
    const src = png.data;
    const out = new Uint8Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = Math.round(src[i]! / 257);
    return { channels: png.channels, data: out };
  }
  if (png.depth < 8) return { channels: png.channels, data: unpackLowDepth(png.data as Uint8Array, png.width, png.height, png.channels, png.depth) };
  const d = png.data;
  return { channels: png.channels, data: d instanceof Uint8Array ? d : Uint8Array.from(d) };
}

/**
 * Decodes a PNG to 8-bit pixels (palette images expanded to RGB/RGBA, 16-bit rounded to 8, low bit depths
 * scaled) plus its text metadata.
 */
export function decodePng(bytes: Uint8Array): DecodedImage {
  const chunks = readChunks(bytes); // validates signature and CRCs with a clear error
  const png = decode(bytes);
  const text: Record<string, string> = {};
  for (const c of chunks) {
    const kv = c.type === 'tEXt' || c.type === 'zTXt' || c.type === 'iTXt' ? decodeTextChunk(c) : undefined;
    if (kv) text[kv[0]] = kv[1];
  }
  const { channels, data } = to8Bit(png);
  return { width: png.width, height: png.height, channels, data, text };
}

export interface ToRgb8Options {
  /**
   * 'round' (default): round half up, unbiased. 'truncate': floor, what ComfyUI's SaveImage does
   * (np.clip(255 * x, 0, 255).astype(uint8)); pick it to reproduce ComfyUI's files byte for byte.
   */
  rounding?: 'round' | 'truncate';
}

/** float in 0..1 -> byte: clamp to [0, 255] after scaling, NaN -> 0. */
function toByte(v: number, truncate: boolean): number {
  const s = v * 255;
  if (!(s > 0)) return 0; // also NaN
  if (s >= 255) return 255;
  return truncate ? Math.floor(s) : Math.floor(s + 0.5);
}

/** IMAGE tensor [B, H, W, C] (0..1) -> one 8-bit image per batch item, same channel count (1-4). */
export function imageToRgb8(image: Tensor, options: ToRgb8Options = {}): RawImage[] {
  const [batch, height, width, channels] = image.shape;
  if (image.shape.length !== 4 || !batch || !height || !width || !channels || channels > 4) {
    throw new RangeError(`IMAGE tensors are [batch, height, width, channels<=4]; got [${image.shape.join(', ')}]`);
  }
  const truncate = options.rounding === 'truncate';
  const per = height * width * channels;
  const out: RawImage[] = [];
  for (let b = 0; b < batch; b++) {
    const data = new Uint8Array(per);
    const src = image.data.subarray(b * per, (b + 1) * per);
    for (let i = 0; i < per; i++) data[i] = toByte(src[i]!, truncate);
    out.push({ width, height, channels, data });
  }
  return out;
}

/**
 * 8-bit images -> IMAGE tensor [B, H, W, 3] in 0..1 (byte / 255), as ComfyUI's LoadImage: gray is expanded
 * to RGB and alpha dropped (ComfyUI turns alpha into a separate MASK). All images must share one size.
 */
export function rgb8ToImage(images: RawImage | readonly RawImage[]): Tensor {
  const list = Array.isArray(images) ? images : [images as RawImage];
  const first = list[0];
  if (!first) throw new RangeError('rgb8ToImage: no image given');
  const { width, height } = first;
  const per = width * height * 3;
  const data = new Float32Array(per * list.length);
  list.forEach((img, b) => {
    checkRaw(img);
    if (img.width !== width || img.height !== height) {
      throw new RangeError(`rgb8ToImage: image ${b} is ${img.width}x${img.height}, expected ${width}x${height} like image 0`);
    }
    const c = img.channels;
    const src = img.data;
    const gray = c < 3;
    let o = b * per;
    for (let p = 0; p < width * height; p++) {
      const s = p * c;
      const r = src[s]!;
      data[o++] = r / 255;
      data[o++] = (gray ? r : src[s + 1]!) / 255;
      data[o++] = (gray ? r : src[s + 2]!) / 255;
    }
  });
  return { data, shape: [list.length, height, width, 3] };
}
