/**
 * Textual-inversion embeddings named in prompts (`embedding:NAME`), found and read as ComfyUI's load_embed
 * (comfy/sd1_clip.py) finds and reads them, except that only safetensors files are read:
 *
 * - NAME is looked up in every embeddings folder and, as ComfyUI expands the folder list with every subfolder,
 *   in their subfolders (a folder first, then its subfolders in name order; ComfyUI's order among subfolders is
 *   a set's, i.e. unspecified). In each folder, `NAME` itself when it is a file, else `NAME.safetensors`,
 *   `NAME.pt`, `NAME.bin`, in that order; the first folder with a match wins. A NAME that leaves the folder
 *   (`../x`) is not looked up there.
 * - `.pt` / `.bin` (and any other file that is not safetensors) are PyTorch pickles, which can run code when
 *   loaded: they are refused with a sentence, never unpickled.
 * - Which tensor of a safetensors file: the one named after the text encoder (`clip_l` for SD-1.x, `clip_h` for
 *   SD-2.x: the keys of SDXL-style embedding files), else the `bundle_emb.<name>.string_to_param.*` tensors (a
 *   literal `*`) of a LoRA with bundled embeddings, concatenated, else `bundle_emb.<name>.<key>`, else the first
 *   tensor of the file (in data order, as safetensors' current load_file returns them; older versions returned
 *   them in name order, which is the same order for files of one dtype). A1111's `emb_params` is the only tensor
 *   of its files. Its last dimension is the width;
 *   the others count vectors.
 */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { EmbeddingVectors } from './prompt-chunks.ts';
import { SafetensorsError, SafetensorsFile } from './safetensors.ts';

/** ComfyUI's load_embed extensions, in its order. */
export const EMBEDDING_EXTENSIONS: readonly string[] = ['.safetensors', '.pt', '.bin'];

/** Thrown for an embedding file that exists but is not read (a pickle, a malformed file, no usable tensor). */
export class EmbeddingFileError extends Error {
  override name = 'EmbeddingFileError';
  constructor(readonly file: string, message: string) {
    super(message);
  }
}

/** The file `embedding:NAME` names, or undefined when no folder has one. */
export function findEmbeddingFile(name: string, folders: readonly string[]): string | undefined {
  for (const folder of expandFolders(folders)) {
    const base = resolve(folder, name);
    const rel = relative(folder, base);
    if (name === '' || rel === '' || rel.split(sep)[0] === '..' || isAbsolute(rel)) continue;
    if (isFile(base)) return base;
    for (const ext of EMBEDDING_EXTENSIONS) if (isFile(base + ext)) return base + ext;
  }
  return undefined;
}

/**
 * The vectors of an embedding file, [n, width] flattened to n rows. `key` is the text encoder's name in
 * SDXL-style files ('clip_l', 'clip_h').
 */
export function readEmbeddingFile(file: string, name: string, key: string): EmbeddingVectors {
  const ext = extname(file).toLowerCase();
  if (ext !== '.safetensors') {
    throw new EmbeddingFileError(
      file,
      `embedding:${name} is ${basename(file)}, a PyTorch pickle (${ext || 'no extension'}), which can run code when loaded: gategraph reads embeddings from .safetensors files only; convert it (e.g. with safetensors.torch.save_file) and put the .safetensors file beside it`,
    );
  }
  const rows: Float32Array[] = [];
  try {
    const st = SafetensorsFile.open(file);
    for (const tensorName of tensorsFor(st, key)) {
      const t = st.readFloat32(tensorName);
      const width = t.shape[t.shape.length - 1];
      if (width === undefined || width === 0) throw new EmbeddingFileError(file, `embedding:${name}: tensor "${tensorName}" has shape [${t.shape.join(', ')}], not [vectors, width]`);
      for (let i = 0; i < t.data.length; i += width) rows.push(t.data.slice(i, i + width));
    }
  } catch (err) {
    if (err instanceof SafetensorsError) throw new EmbeddingFileError(file, `embedding:${name}: ${err.message}`);
    throw err;
  }
  if (rows.length === 0) throw new EmbeddingFileError(file, `embedding:${name}: ${basename(file)} holds no vectors`);
  return { name, vectors: rows };
}

/** Which tensors hold the embedding, in ComfyUI's order of preference. */
function tensorsFor(st: SafetensorsFile, key: string): string[] {
  const names = st.names();
  if (names.length === 0) return [];
  if (names.includes(key)) return [key];
  const bundled = names.filter((n) => n.startsWith('bundle_emb.') && n.endsWith('.string_to_param.*'));
  if (bundled.length) return bundled;
  const bundledKey = names.filter((n) => n.startsWith('bundle_emb.') && n.endsWith(`.${key}`));
  if (bundledKey.length) return bundledKey;
  return [st.tensors()[0]!.name];
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Each folder followed by its subfolders (depth first, in name order), each real folder once. */
function expandFolders(folders: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const walk = (dir: string) => {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      return;
    }
    if (seen.has(real)) return; // a folder reached twice, or a link back up the tree
    seen.add(real);
    out.push(dir);
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const entry of entries) {
      const sub = join(dir, entry);
      try {
        if (statSync(sub).isDirectory()) walk(sub);
      } catch {
        // unreadable entry: skip it, as os.walk does
      }
    }
  };
  for (const folder of folders) if (existsSync(folder)) walk(resolve(folder));
  return out;
}
