/**
 * A model that is another model with another UNet (ModelMergeSimple's merged weights, FreeU's patched graph), as
 * a model folder openModelFolder opens like any other:
 *
 *   <root>/<kind>-<key>/
 *       unet/model.onnx (+ its data)     the variant's UNet, written once by the recipe
 *       unet/config.json                 the base UNet's, copied (what planners read of the architecture)
 *       text_encoder, vae_decoder, ...   symlinks to the base folder's real components: the session pool keys
 *                                        sessions by real path, so the base's text encoder and VAE are shared
 *       model_index.json                 the base's, with `_gategraph_variant` saying what the folder is
 *
 * The key hashes the recipe's kind and settings and the content of the UNet files it reads (their .onnx bytes,
 * and the real path, size and modification time of their external data: gigabytes are not hashed), so a change
 * of either makes a new folder. Folders are written under a temporary name and renamed into place, so a reader
 * (another process) never sees half of one. The least recently used folders beyond MAX_VARIANTS are deleted.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureCacheDir, externalDataFiles, loadModel as loadOnnx, modelFileSha256 } from '@gategraph/onnx-graph';
import type { DiffusionModel } from './model-folder.ts';

/** Bump when a folder's layout or a recipe's output changes for the same inputs. */
const VARIANT_VERSION = 1;

/** Variant folders kept per root: each merge holds a UNet's weights (gigabytes for SD), so they are bounded. */
export const MAX_VARIANTS = 6;

/** The components a variant takes from its base as they are. */
const SHARED_COMPONENTS = ['text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'vae_decoder', 'vae_encoder', 'scheduler'];

/** Marks a folder's last use (outside what the model cache stamps, so marking it does not reopen the model). */
const USED_MARKER = '.last-used';

export interface UnetVariantRecipe {
  /** What kind of variant ('merge', 'freeu'): the folder's name starts with it. */
  readonly kind: string;
  /** Its settings (JSON values): part of the key and of the record. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The UNet files it is made from: their content is part of the key. */
  readonly sources: readonly string[];
  /** Writes the variant's UNet at `path` (a model.onnx; its external data next to it). */
  write(path: string): void | Promise<void>;
}

/** The content of a UNet file as the key sees it: its bytes' sha256 and its external data files' identity. */
async function fileIdentity(path: string): Promise<unknown> {
  const file = loadOnnx(path);
  const data = externalDataFiles(file.proto, file.baseDir).map((f) => {
    const st = statSync(f);
    return { path: realpathSync(f), size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  });
  return { sha256: await modelFileSha256(path), data };
}

/** The variant's key: its recipe and the content of its sources. */
export async function unetVariantKey(recipe: Pick<UnetVariantRecipe, 'kind' | 'settings' | 'sources'>): Promise<string> {
  const sources = [];
  for (const source of recipe.sources) sources.push(await fileIdentity(source));
  const payload = JSON.stringify({ v: VARIANT_VERSION, kind: recipe.kind, settings: recipe.settings, sources });
  return createHash('sha256').update(payload).digest('hex').slice(0, 24);
}

const building = new Map<string, Promise<string>>();

/**
 * The folder of `base` with the UNet `recipe` writes, under `root`; written on first use (and when the base or
 * a source changed). Returns its path and whether it was written now.
 */
export async function unetVariantFolder(base: DiffusionModel, root: string, recipe: UnetVariantRecipe): Promise<{ dir: string; built: boolean }> {
  const dir = join(root, `${recipe.kind}-${await unetVariantKey(recipe)}`);
  if (isComplete(dir)) {
    markUsed(dir);
    return { dir, built: false };
  }
  // One build per folder in this process; another process building it too renames into place first or second.
  let pending = building.get(dir);
  if (!pending) {
    pending = build(base, root, dir, recipe).finally(() => building.delete(dir));
    building.set(dir, pending);
  }
  await pending;
  return { dir, built: true };
}

function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'model_index.json')) && existsSync(join(dir, 'unet', 'model.onnx'));
}

function markUsed(dir: string): void {
  const marker = join(dir, USED_MARKER);
  try {
    if (!existsSync(marker)) writeFileSync(marker, '');
    const now = new Date();
    utimesSync(marker, now, now);
  } catch {
    // A read-only cache still works; it is only never pruned.
  }
}

async function build(base: DiffusionModel, root: string, dir: string, recipe: UnetVariantRecipe): Promise<string> {
  ensureCacheDir(root);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'unet'), { recursive: true });
  try {
    for (const name of SHARED_COMPONENTS) {
      const source = join(base.dir, name);
      if (existsSync(source)) symlinkSync(realpathSync(source), join(tmp, name), 'dir');
    }
    const config = join(base.dir, 'unet', 'config.json');
    if (existsSync(config)) copyFileSync(config, join(tmp, 'unet', 'config.json'));
    await recipe.write(join(tmp, 'unet', 'model.onnx'));
    // The base's own record of what it was built from (a single-file checkpoint) no longer describes this UNet:
    // a LoRA loader must not rebuild the model from that checkpoint and lose the variant.
    const index = JSON.parse(readFileSync(join(base.dir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    delete index._gategraph;
    const record = { kind: recipe.kind, settings: recipe.settings, base: base.dir, baseName: base.name, sources: recipe.sources };
    writeFileSync(join(tmp, 'model_index.json'), `${JSON.stringify({ ...index, _gategraph_variant: record }, null, 2)}\n`);
    writeFileSync(join(tmp, USED_MARKER), '');
    try {
      renameSync(tmp, dir);
    } catch (err) {
      if (!isComplete(dir)) throw err; // another process put the same folder in place first: theirs is the same
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  evictVariants(root, dir);
  return dir;
}

/** Deletes the least recently used variant folders of `root` beyond MAX_VARIANTS, never `keep`. */
function evictVariants(root: string, keep: string): void {
  const folders: Array<{ dir: string; used: number }> = [];
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (dir === keep || name.includes('.tmp-') || !isComplete(dir)) continue;
    const used = statSync(existsSync(join(dir, USED_MARKER)) ? join(dir, USED_MARKER) : join(dir, 'model_index.json')).mtimeMs;
    folders.push({ dir, used });
  }
  folders.sort((a, b) => b.used - a.used);
  // Sessions already open keep their weights (onnxruntime loaded them); a later use of a deleted variant rebuilds it.
  for (const { dir } of folders.slice(MAX_VARIANTS - 1)) rmSync(dir, { recursive: true, force: true });
}

/** What a variant folder records about itself, or undefined for any other model. */
export function unetVariantOf(model: Pick<DiffusionModel, 'index'>): { kind: string; settings: Record<string, unknown>; baseName: string } | undefined {
  const record = model.index._gategraph_variant as { kind?: unknown; settings?: unknown; baseName?: unknown } | undefined;
  if (!record || typeof record.kind !== 'string') return undefined;
  return { kind: record.kind, settings: (record.settings ?? {}) as Record<string, unknown>, baseName: String(record.baseName ?? '') };
}
