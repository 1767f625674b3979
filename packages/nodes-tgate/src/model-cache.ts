/**
 * Open checkpoints, shared across nodes, runs and executors of this process.
 *
 * Two CheckpointLoaderSimple nodes (or two prompts, or the server's next run after a cache eviction) asking
 * for the same folder get the same `DiffusionModel`, so its ONNX sessions are opened once (the engine's
 * SessionPool shares and ref-counts them; the server's /free closes them and they reopen on next use).
 *
 * A folder whose files changed (re-exported, retrained) is opened again and the old handle released: the
 * key is the folder plus a stamp of its files' sizes and modification times. The same stamp is the loader's
 * fingerprint, so the executor's cache re-runs the loader when the files change.
 */
import type { DiffusionModel } from '@gategraph/diffusion';
import { openModelFolder, openTextEncoderFolder, openVaeFolder, type OpenedTextEncoder, type OpenedVae } from '@gategraph/diffusion';
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const COMPONENT_DIRS = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'tokenizer', 'scheduler'];

/** Sizes and mtimes of the files that make up a model folder; '' for a folder that does not exist. */
export function modelFolderStamp(dir: string): string {
  const parts: string[] = [];
  const add = (path: string, label: string) => {
    try {
      const s = statSync(path);
      if (s.isFile()) parts.push(`${label}:${s.size}:${s.mtimeMs}`);
    } catch {
      // missing file: leaves no entry, which changes the stamp too
    }
  };
  add(join(dir, 'model_index.json'), 'model_index.json');
  for (const sub of COMPONENT_DIRS) {
    let files: string[] = [];
    try {
      files = readdirSync(join(dir, sub)).sort();
    } catch {
      continue;
    }
    for (const file of files) add(join(dir, sub, file), `${sub}/${file}`);
  }
  return parts.join('|');
}

interface OpenModel {
  stamp: string;
  model: Promise<DiffusionModel>;
  /** The model once `model` resolved. */
  opened?: DiffusionModel;
}

const open = new Map<string, OpenModel>();

/** The shared, open model of `dir`; opened now if needed (or again if its files changed). */
export async function loadModel(dir: string): Promise<DiffusionModel> {
  // By real path: the same folder reached through a symlink (models/tiny-sd -> /data/tiny-sd) is one model.
  const folder = realFolder(dir);
  const stamp = modelFolderStamp(folder);
  const current = open.get(folder);
  if (current && current.stamp === stamp) return current.model;
  if (current) {
    open.delete(folder);
    // Values already handed out keep working until their sessions are released; new runs get the new files.
    void current.model.then((m) => m.release()).catch(() => {});
  }
  // Opened by the name asked for, so messages say "tiny-sd" even when that is a symlink to "tiny-sd-v3".
  const model = openModelFolder(dir);
  const entry: OpenModel = { stamp, model };
  open.set(folder, entry);
  model.then(
    (opened) => {
      entry.opened = opened;
    },
    () => {
      // A failed open is not cached: the next run retries (the user may have fixed the files meanwhile).
      if (open.get(folder) === entry) open.delete(folder);
    },
  );
  return model;
}

/**
 * The model of `dir` if it is open now with the same files, without opening anything (validation reads its
 * facts; its sessions may have been freed since, the facts stay).
 */
export function loadedModel(dir: string): DiffusionModel | undefined {
  const folder = realFolder(dir);
  const current = open.get(folder);
  return current?.opened && current.stamp === modelFolderStamp(folder) ? current.opened : undefined;
}

function realFolder(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir); // missing: openModelFolder reports it
  }
}

/** Opens a part of a model on its own (a VAE, a text encoder), shared like loadModel's models by real folder. */
class PartCache<T extends { release(): Promise<void> }> {
  readonly #entries = new Map<string, { stamp: string; part: Promise<T> }>();
  constructor(readonly open: (dir: string, name: string) => Promise<T>) {}

  load(dir: string, name: string): Promise<T> {
    const folder = realFolder(dir);
    const stamp = modelFolderStamp(folder);
    const current = this.#entries.get(folder);
    if (current && current.stamp === stamp) return current.part;
    if (current) void current.part.then((p) => p.release()).catch(() => {});
    const part = this.open(dir, name);
    const entry = { stamp, part };
    this.#entries.set(folder, entry);
    part.catch(() => {
      if (this.#entries.get(folder) === entry) this.#entries.delete(folder);
    });
    return part;
  }

  async releaseAll(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => e.part.then((p) => p.release()).catch(() => {})));
  }
}

const vaes = new PartCache<OpenedVae>((dir, name) => openVaeFolder(dir, { name }));
const textEncoders = new PartCache<OpenedTextEncoder>((dir, name) => openTextEncoderFolder(dir, { name }));

/** A VAE opened alone (VAELoader's folder of vae_decoder/ + vae_encoder/), shared like loadModel's models. */
export function loadVae(dir: string, name: string): Promise<OpenedVae> {
  return vaes.load(dir, name);
}

/** A text encoder opened alone (CLIPLoader's folder of text_encoder/ + tokenizer/), shared the same way. */
export function loadTextEncoder(dir: string, name: string): Promise<OpenedTextEncoder> {
  return textEncoders.load(dir, name);
}

/** Releases every model this pack opened (tests, shutdown). */
export async function releaseAllModels(): Promise<void> {
  const entries = [...open.values()];
  open.clear();
  await Promise.all([...entries.map((e) => e.model.then((m) => m.release()).catch(() => {})), vaes.releaseAll(), textEncoders.releaseAll()]);
}
