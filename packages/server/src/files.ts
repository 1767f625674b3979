/**
 * Files the API reads and writes: `/view` and `/upload/image`, confined to the output, input and temp folders.
 *
 * Names are checked before any path is built: a filename must be a plain name (no separators, no NUL, not
 * `.`/`..`); a subfolder may have `/` segments but no NUL, and is refused (403) when it resolves outside its
 * folder, symbolic links included. Uploads never overwrite unless asked: a clash with different content
 * becomes `name (1).ext`, identical content reuses the existing file (as ComfyUI does), and the final name is
 * claimed with a hard link, which fails instead of replacing when another upload took it meanwhile.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, realpath, rename, rm, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve } from 'node:path';
import { imageSize } from 'image-size';
import type { HostPaths } from '@gategraph/core';

export type FolderType = 'output' | 'input' | 'temp';
export const FOLDER_TYPES: readonly FolderType[] = ['output', 'input', 'temp'];

/** A refused file request: `status` is the HTTP status to answer with. */
export class FileRequestError extends Error {
  override name = 'FileRequestError';
  constructor(
    readonly status: 400 | 403 | 404 | 413,
    message: string,
  ) {
    super(message);
  }
}

export function folderOf(paths: HostPaths, type: string | undefined, fallback: FolderType): string {
  const chosen = type === undefined || type === '' ? fallback : type;
  if (!(FOLDER_TYPES as readonly string[]).includes(chosen)) {
    throw new FileRequestError(400, `type must be one of ${FOLDER_TYPES.join(', ')} (got ${JSON.stringify(type)})`);
  }
  return paths[chosen as FolderType];
}

/** ComfyUI's annotated names: `cat.png [input]` means cat.png in the input folder. */
export function splitAnnotation(filename: string): { filename: string; type?: FolderType } {
  const match = /^(.*) \[(output|input|temp)\]$/.exec(filename);
  return match ? { filename: match[1]!, type: match[2] as FolderType } : { filename };
}

/** Throws 400 unless `name` is a plain file name. */
export function checkFilename(name: string | undefined, what = 'filename'): string {
  if (name === undefined || name === '') throw new FileRequestError(400, `${what} is required`);
  if (name.includes('\0')) throw new FileRequestError(400, `${what} must not contain a NUL character`);
  if (isAbsolute(name) || /^[a-zA-Z]:/.test(name)) {
    throw new FileRequestError(400, `${what} must be a plain name, not an absolute path (got ${JSON.stringify(name)})`);
  }
  if (name.split(/[\\/]/).includes('..')) {
    throw new FileRequestError(400, `${what} must not contain ".." (got ${JSON.stringify(name)})`);
  }
  if (name.includes('/') || name.includes('\\')) {
    throw new FileRequestError(400, `${what} must not contain "/" or "\\"; put folders in "subfolder" (got ${JSON.stringify(name)})`);
  }
  if (name === '.' || name.length > 255) throw new FileRequestError(400, `${what} is not a valid file name (got ${JSON.stringify(name)})`);
  return name;
}

/** Resolves `subfolder` inside `base`; 403 when it would leave it, 400 for a NUL byte. */
export function resolveSubfolder(base: string, subfolder: string | undefined): string {
  const sub = (subfolder ?? '').replace(/\\/g, '/');
  if (sub.includes('\0')) throw new FileRequestError(400, 'subfolder must not contain a NUL character');
  const dir = resolve(base, sub.startsWith('/') ? `.${sub}` : sub);
  if (sub.startsWith('/') || !isInside(base, dir)) {
    throw new FileRequestError(403, `subfolder ${JSON.stringify(subfolder)} is outside the folder`);
  }
  return dir;
}

function isInside(base: string, path: string): boolean {
  const rel = relative(base, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Throws 403 if a symbolic link makes `path` (which exists) point outside `base`. */
async function checkRealPath(base: string, path: string): Promise<void> {
  const [realBase, realPath] = await Promise.all([realpath(base), realpath(path)]);
  if (!isInside(realBase, realPath)) throw new FileRequestError(403, 'the file is outside the folder');
}

export interface ViewQuery {
  filename?: string;
  subfolder?: string;
  type?: string;
}

/** The absolute path of an existing file `/view` may send. */
export async function resolveViewFile(paths: HostPaths, query: ViewQuery): Promise<string> {
  const annotated = splitAnnotation(query.filename ?? '');
  const filename = checkFilename(annotated.filename || query.filename);
  const base = folderOf(paths, annotated.type ?? query.type, 'output');
  const dir = resolveSubfolder(base, query.subfolder);
  const file = join(dir, filename);
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new FileRequestError(404, `No file ${JSON.stringify(filename)} in ${query.type || 'output'}${query.subfolder ? `/${query.subfolder}` : ''}`);
  await checkRealPath(base, file);
  return file;
}

/** Throws 413 when `data` is an image (PNG, JPEG, WebP, ...) larger than the limit in either dimension. */
export function checkImageDimensions(data: Uint8Array, maxDimension: number, name: string, maxPixels = Number.POSITIVE_INFINITY): void {
  let size: { width?: number; height?: number } | undefined;
  try {
    size = imageSize(data);
  } catch {
    return; // Not an image format we can read: ComfyUI accepts any file on this route, so do we.
  }
  const width = size.width ?? 0;
  const height = size.height ?? 0;
  if (width > maxDimension || height > maxDimension) {
    throw new FileRequestError(
      413,
      `${name} is ${width}x${height} pixels; the server accepts images up to ${maxDimension} pixels on each side (--max-image-dimension)`,
    );
  }
  if (width * height > maxPixels) {
    throw new FileRequestError(
      413,
      `${name} is ${width}x${height} pixels (${((width * height) / 1e6).toFixed(1)} megapixels); the server accepts images of up to ${(maxPixels / 1e6).toFixed(1)} megapixels (--max-image-pixels)`,
    );
  }
}

export interface SavedUpload {
  name: string;
  subfolder: string;
  type: FolderType;
}

export interface UploadRequest {
  paths: HostPaths;
  filename: string;
  /** The received file on disk (an upload is streamed there, never held in memory whole). */
  file: string;
  subfolder?: string;
  type?: string;
  /** Replace a file of the same name (ComfyUI's `overwrite=true`). */
  overwrite?: boolean;
}

/** Saves an upload without ever replacing a different file unless `overwrite` is set. */
export async function saveUpload(request: UploadRequest): Promise<SavedUpload> {
  const filename = checkFilename(request.filename, 'the uploaded file name');
  const type = (request.type || 'input') as FolderType;
  const base = folderOf(request.paths, type, 'input');
  const dir = resolveSubfolder(base, request.subfolder);
  await mkdir(dir, { recursive: true });
  await checkRealPath(base, dir);

  // Copied to a temporary name in the target folder first (the received file may be on another disk), so a
  // reader never sees a half-written file under the final name.
  const tmp = join(dir, `.upload-${randomBytes(8).toString('hex')}.tmp`);
  await copyFile(request.file, tmp, fsConstants.COPYFILE_EXCL);
  const handle = await open(tmp, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (request.overwrite) {
      await rename(tmp, join(dir, filename));
      return { name: filename, subfolder: request.subfolder ?? '', type };
    }
    const ext = extname(filename);
    const stem = filename.slice(0, filename.length - ext.length);
    const digest = await fileSha256(tmp);
    for (let i = 0; i < 10000; i++) {
      const candidate = i === 0 ? filename : `${stem} (${i})${ext}`;
      const target = join(dir, candidate);
      try {
        await link(tmp, target);
        return { name: candidate, subfolder: request.subfolder ?? '', type };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      // The name is taken: the same bytes mean the same image, reuse it.
      const existing = await fileSha256(target).catch(() => undefined);
      if (existing === digest) return { name: candidate, subfolder: request.subfolder ?? '', type };
    }
    throw new FileRequestError(400, `Too many files named like ${JSON.stringify(filename)} in this folder`);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The sha256 of a file, streamed (an upload may be 100 MiB). */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Bytes of a file's start read for its image header (JPEG headers can sit behind large EXIF blocks). */
const HEADER_BYTES = 1024 * 1024;

/** The first HEADER_BYTES of a file. */
export async function fileHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEADER_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
