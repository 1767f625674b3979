/**
 * PNG text metadata (PNG spec 3rd ed., 11.3.3): reading tEXt, zTXt and iTXt chunks and writing tEXt / iTXt.
 *
 * ComfyUI stores the API prompt and the UI workflow as tEXt chunks `prompt` and `workflow`, whose values are
 * JSON dumped with Python's default ensure_ascii (every non-ASCII character escaped as \uXXXX), so they are
 * pure ASCII. We write pure-ASCII values as tEXt (what ComfyUI and every reader expect) and anything else as
 * iTXt, UTF-8, the chunk made for Unicode text (tEXt is Latin-1 only; readers differ on bytes >= 0x80:
 * several decode them as UTF-8 or windows-1252). Reading accepts all three; tEXt/zTXt are decoded as true
 * ISO-8859-1, iTXt as UTF-8, compressed ones inflated.
 */
import { unzlibSync } from 'fflate';

export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / zlib), as PNG chunk CRCs use. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, seed = 0): number {
  let c = ~seed >>> 0;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export interface PngChunk {
  type: string;
  data: Uint8Array;
}

export function hasPngSignature(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Splits a PNG into its chunks (CRCs checked). Stops after IEND. */
export function readChunks(bytes: Uint8Array): PngChunk[] {
  if (!hasPngSignature(bytes)) throw new Error('Not a PNG file: the 8-byte PNG signature is missing');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: PngChunk[] = [];
  let pos = 8;
  while (pos + 12 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    const dataStart = pos + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > bytes.length) throw new Error(`Truncated PNG: chunk ${type} at byte ${pos} runs past the end of the file`);
    const expected = view.getUint32(dataEnd);
    if (crc32(bytes, pos + 4, dataEnd) !== expected) throw new Error(`Corrupt PNG: bad CRC in chunk ${type} at byte ${pos}`);
    chunks.push({ type, data: bytes.subarray(dataStart, dataEnd) });
    pos = dataEnd + 4;
    if (type === 'IEND') break;
  }
  return chunks;
}

/** Serialises chunks (signature, then length / type / data / CRC for each). */
export function writeChunks(chunks: readonly PngChunk[]): Uint8Array {
  const total = 8 + chunks.reduce((s, c) => s + 12 + c.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(PNG_SIGNATURE, 0);
  let pos = 8;
  for (const c of chunks) {
    view.setUint32(pos, c.data.length);
    for (let i = 0; i < 4; i++) out[pos + 4 + i] = c.type.charCodeAt(i);
    out.set(c.data, pos + 8);
    view.setUint32(pos + 8 + c.data.length, crc32(out, pos + 4, pos + 8 + c.data.length));
    pos += 12 + c.data.length;
  }
  return out;
}

function latin1Decode(bytes: Uint8Array): string {
  // String.fromCharCode maps byte b to U+00b: true ISO-8859-1 (TextDecoder('latin1') is windows-1252).
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function latin1Encode(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function nul(data: Uint8Array, from: number): number {
  const i = data.indexOf(0, from);
  return i < 0 ? data.length : i;
}

/** Decodes one tEXt / zTXt / iTXt chunk to [keyword, text], or undefined for other chunks or bad ones. */
export function decodeTextChunk(chunk: PngChunk): [string, string] | undefined {
  const d = chunk.data;
  const k = nul(d, 0);
  if (k === 0 || k >= d.length) return undefined;
  const keyword = latin1Decode(d.subarray(0, k));
  try {
    if (chunk.type === 'tEXt') return [keyword, latin1Decode(d.subarray(k + 1))];
    if (chunk.type === 'zTXt') return [keyword, latin1Decode(unzlibSync(d.subarray(k + 2)))];
    if (chunk.type === 'iTXt') {
      const compressed = d[k + 1] === 1;
      const langEnd = nul(d, k + 3);
      const translatedEnd = nul(d, langEnd + 1);
      const body = d.subarray(translatedEnd + 1);
      return [keyword, utf8.decode(compressed ? unzlibSync(body) : body)];
    }
  } catch {
    return undefined; // a damaged compressed text chunk should not make the image unreadable
  }
  return undefined;
}

/** All text metadata of a PNG, without decoding its pixels (later chunks win on duplicate keywords). */
export function readPngText(bytes: Uint8Array): Record<string, string> {
  const text: Record<string, string> = {};
  for (const c of readChunks(bytes)) {
    if (c.type !== 'tEXt' && c.type !== 'zTXt' && c.type !== 'iTXt') continue;
    const kv = decodeTextChunk(c);
    if (kv) text[kv[0]] = kv[1];
  }
  return text;
}

function checkKeyword(keyword: string): void {
  // 1-79 Latin-1 printable characters, no leading/trailing/double spaces (PNG spec 11.3.3.2)
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || /^ | $| {2}/.test(keyword)) {
    throw new RangeError(
      `PNG text keyword ${JSON.stringify(keyword)} is invalid: use 1-79 Latin-1 printable characters without leading, trailing or double spaces`,
    );
  }
}

/** A tEXt chunk for ASCII text, otherwise an iTXt chunk (UTF-8, uncompressed, no language tag). */
export function encodeTextChunk(keyword: string, text: string): PngChunk {
  checkKeyword(keyword);
  if (text.includes('\0')) throw new RangeError(`PNG text "${keyword}" contains a NUL character, which PNG text chunks cannot hold`);
  const key = latin1Encode(keyword);
  if (/^[\x01-\x7f]*$/.test(text)) {
    const data = new Uint8Array(key.length + 1 + text.length);
    data.set(key, 0);
    data.set(latin1Encode(text), key.length + 1);
    return { type: 'tEXt', data };
  }
  const body = new TextEncoder().encode(text);
  // keyword \0 compression-flag(0) method(0) language-tag "" \0 translated-keyword "" \0 text
  const data = new Uint8Array(key.length + 5 + body.length);
  data.set(key, 0);
  data.set(body, key.length + 5);
  return { type: 'iTXt', data };
}

/** Inserts text chunks right after IHDR (before the image data, where PIL / ComfyUI put them). */
export function withTextChunks(png: Uint8Array, text: Record<string, string>): Uint8Array {
  const chunks = readChunks(png);
  const entries = Object.entries(text);
  if (entries.length === 0) return png;
  const ihdr = chunks.findIndex((c) => c.type === 'IHDR');
  const textChunks = entries.map(([k, v]) => encodeTextChunk(k, v));
  chunks.splice(ihdr + 1, 0, ...textChunks);
  return writeChunks(chunks);
}

/**
 * JSON for a PNG text value the way ComfyUI writes it (Python json.dumps defaults: ", " and ": " separators
 * are not reproduced, but every non-ASCII character is escaped as \uXXXX), so the value stays ASCII and is
 * stored as a tEXt chunk every ComfyUI-compatible reader understands.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
