/**
 * Editor extensions shipped by packs: which folders the server serves and which scripts the editor imports.
 * ComfyUI serves a pack's WEB_DIRECTORY at `/extensions/<pack>/` and lists the JS URLs at `GET /extensions`;
 * we do the same, so the server needs only `app.use(ext.urlPrefix, express.static(ext.dir))` per entry and
 * `ext.files.map((f) => ext.urlPrefix + f)` for the listing.
 */
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { PackLoadReport } from './packs.ts';

export interface WebExtension {
  /** The pack's name. */
  pack: string;
  /** Where the server mounts `dir`, e.g. `/extensions/example-pack/`; always ends with `/`. */
  urlPrefix: string;
  /** Absolute path of the pack's web folder. */
  dir: string;
  /** The `.js` files under `dir`, relative to it with `/` separators, sorted: the modules the editor imports. */
  files: string[];
}

/**
 * The web folders of the loaded packs that declare one. Reads the folders now (call it again to see files
 * added since). Scoped names keep their scope as a path segment: `/extensions/@scope/name/`.
 */
export function listWebExtensions(report: Pick<PackLoadReport, 'loaded'>): WebExtension[] {
  const extensions: WebExtension[] = [];
  for (const pack of report.loaded) {
    if (pack.webDirectory === undefined) continue;
    extensions.push({
      pack: pack.name,
      urlPrefix: extensionUrlPrefix(pack.name),
      dir: pack.webDirectory,
      files: listJsFiles(pack.webDirectory),
    });
  }
  return extensions;
}

/** `/extensions/<pack>/`, each path segment of the name URL-encoded (a leading `@` is left readable). */
export function extensionUrlPrefix(packName: string): string {
  const segments = packName.split('/').map((segment) => encodeURIComponent(segment).replace(/^%40/, '@'));
  return `/extensions/${segments.join('/')}/`;
}

function listJsFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { recursive: true, withFileTypes: true });
  } catch {
    return []; // removed since the packs were loaded
  }
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.js'))
    .map((entry) => relative(dir, join(entry.parentPath ?? entry.path, entry.name)).split(sep).join('/'))
    .filter((file) => !file.split('/').some((part) => part === 'node_modules' || part.startsWith('.')))
    .sort();
}
