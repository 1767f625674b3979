/**
 * Files between machines without a shared folder: uploads and outputs are copied into Redis (a key per file,
 * with a time to live), and a process that needs a file it does not have writes it into its own folder from
 * there: the worker before running a prompt (the inputs it names), the API instance for `/view` (any worker's
 * output). Why Redis and not an object store: it is already there, durable with the deployment's AOF settings,
 * and the files are images of a few MB; what it costs is memory (docs/scaling.md sizes it), so files expire
 * (`--file-ttl`, default 7 days) and one larger than `maxFileBytes` is not copied (its prompt's output stays on
 * its worker, and /view says where). With `--shared-files` (every process sees the same output/input folders,
 * e.g. over NFS) nothing is copied.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import type { HostPaths, Logger } from '@gategraph/core';
import { checkFilename, folderOf, resolveSubfolder, splitAnnotation, type FolderType } from '../files.ts';
import type { HistoryEntry } from '../store.ts';
import type { RedisKeys } from './keys.ts';

export interface FileStoreOptions {
  /** Seconds a copied file is kept. */
  ttlSeconds: number;
  /** Files above this are not copied. */
  maxFileBytes: number;
}

export const DEFAULT_FILE_TTL_SECONDS = 7 * 24 * 3600;
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

export class RedisFileStore {
  constructor(
    readonly redis: Redis,
    readonly keys: RedisKeys,
    readonly paths: HostPaths,
    readonly options: FileStoreOptions,
    readonly logger: Logger,
  ) {}

  /** The local path of a file a client names; throws files.ts's FileRequestError for a bad name. */
  localPath(type: FolderType, subfolder: string, filename: string): string {
    return join(resolveSubfolder(folderOf(this.paths, type, 'output'), subfolder), checkFilename(filename));
  }

  /** Copies a local file into Redis; false when it is too large to copy. */
  async put(type: FolderType, subfolder: string, filename: string): Promise<boolean> {
    const path = this.localPath(type, subfolder, filename);
    const info = await stat(path);
    if (info.size > this.options.maxFileBytes) {
      this.logger.warn(`${type}/${subfolder ? `${subfolder}/` : ''}${filename} is ${info.size} bytes, over the ${this.options.maxFileBytes} copied between machines: it stays on this machine`);
      return false;
    }
    await this.redis.set(this.keys.file(type, subfolder, filename), await readFile(path), 'EX', this.options.ttlSeconds);
    // Every API instance lists the input folder for LoadImage's choices: each writes the upload into its own.
    if (type === 'input') await this.redis.publish(this.keys.uploaded, JSON.stringify({ subfolder, filename }));
    return true;
  }

  /** Writes every copied upload this machine lacks into its input folder (an API instance starting). */
  async materializeAllInputs(): Promise<number> {
    const prefix = this.keys.file('input', '', '');
    let cursor = '0';
    let written = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.keys.filePattern('input'), 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        const rel = key.slice(prefix.length);
        const slash = rel.lastIndexOf('/');
        try {
          if (await this.materialize('input', slash >= 0 ? rel.slice(0, slash) : '', rel.slice(slash + 1))) written++;
        } catch (error) {
          this.logger.warn(`upload ${rel} not copied here: ${(error as Error).message}`);
        }
      }
    } while (cursor !== '0');
    return written;
  }

  /**
   * Writes the file from Redis into the local folder unless it is there already (same size); true when the
   * local file exists afterwards.
   */
  async materialize(type: FolderType, subfolder: string, filename: string): Promise<boolean> {
    const path = this.localPath(type, subfolder, filename);
    const bytes = await this.redis.getBuffer(this.keys.file(type, subfolder, filename));
    const local = await stat(path).catch(() => undefined);
    if (!bytes) return local?.isFile() ?? false;
    if (local?.isFile() && local.size === bytes.byteLength) return true;
    await mkdir(dirname(path), { recursive: true });
    // Written aside and renamed: a reader never sees half a file.
    const tmp = `${path}.${process.pid}.part`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
    return true;
  }

  /** `/view`'s file, written here from Redis when this machine does not have it (any worker's output). */
  async materializeForView(query: { filename?: string | undefined; subfolder?: string | undefined; type?: string | undefined }): Promise<void> {
    const annotated = splitAnnotation(query.filename ?? '');
    const type = annotated.type ?? (query.type || 'output');
    if (type !== 'output' && type !== 'input' && type !== 'temp') return; // /view refuses it itself
    try {
      await this.materialize(type, query.subfolder ?? '', annotated.filename || (query.filename ?? ''));
    } catch {
      // a bad name or Redis away: /view answers as for any missing file
    }
  }

  /** Copies every file a history entry's outputs list (images, gifs, ...: {filename, subfolder, type}). */
  async putOutputs(entry: HistoryEntry): Promise<void> {
    for (const file of outputFiles(entry)) {
      try {
        await this.put(file.type, file.subfolder, file.filename);
      } catch (error) {
        this.logger.warn(`could not copy output ${file.filename} to Redis: ${(error as Error).message}`);
      }
    }
  }

  /**
   * Writes the uploads a prompt names (any string input that is a file in Redis's input files, ComfyUI's
   * `name [input]` annotation understood) into this machine's input folder before it runs.
   */
  async materializeInputs(prompt: Record<string, { inputs?: Record<string, unknown> }>): Promise<void> {
    const names = new Set<string>();
    for (const node of Object.values(prompt)) {
      for (const value of Object.values(node.inputs ?? {})) if (typeof value === 'string' && value.length <= 1024) names.add(value);
    }
    for (const value of names) {
      const { filename: annotated, type } = splitAnnotation(value);
      if (type && type !== 'input') continue;
      const slash = annotated.lastIndexOf('/');
      const subfolder = slash >= 0 ? annotated.slice(0, slash) : '';
      const filename = slash >= 0 ? annotated.slice(slash + 1) : annotated;
      try {
        checkFilename(filename);
        await this.materialize('input', subfolder, filename);
      } catch {
        // not a file name: an ordinary text input
      }
    }
  }
}

/** The files a history entry's outputs list. */
export function outputFiles(entry: HistoryEntry): Array<{ filename: string; subfolder: string; type: FolderType }> {
  const files: Array<{ filename: string; subfolder: string; type: FolderType }> = [];
  for (const output of Object.values(entry.outputs ?? {})) {
    for (const list of Object.values(output as Record<string, unknown>)) {
      if (!Array.isArray(list)) continue;
      for (const item of list) {
        const f = item as { filename?: unknown; subfolder?: unknown; type?: unknown };
        if (typeof f?.filename !== 'string') continue;
        const type = f.type === 'temp' || f.type === 'input' ? f.type : 'output';
        files.push({ filename: f.filename, subfolder: typeof f.subfolder === 'string' ? f.subfolder : '', type });
      }
    }
  }
  return files;
}
