import { readFileSync, writeFileSync } from 'node:fs';
import pngjs from 'pngjs';

/** RGB pixels, row-major, HxWx3. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export function decodePng(buf: Uint8Array): RgbImage {
  const png = pngjs.PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
  const { width, height } = png;
  const data = new Uint8Array(width * height * 3);
  for (let k = 0; k < width * height; k++) {
    data[k * 3] = png.data[k * 4]!;
    data[k * 3 + 1] = png.data[k * 4 + 1]!;
    data[k * 3 + 2] = png.data[k * 4 + 2]!;
  }
  return { width, height, data };
}

export function readPng(path: string): RgbImage {
  return decodePng(readFileSync(path));
}

export function encodePng(img: RgbImage): Buffer {
  const png = new pngjs.PNG({ width: img.width, height: img.height });
  for (let k = 0; k < img.width * img.height; k++) {
    png.data[k * 4] = img.data[k * 3]!;
    png.data[k * 4 + 1] = img.data[k * 3 + 1]!;
    png.data[k * 4 + 2] = img.data[k * 3 + 2]!;
    png.data[k * 4 + 3] = 255;
  }
  return pngjs.PNG.sync.write(png);
}

export function writePng(path: string, img: RgbImage): void {
  writeFileSync(path, encodePng(img));
}
