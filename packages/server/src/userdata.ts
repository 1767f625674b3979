/**
 * ComfyUI's user-data routes, which its frontend (and ours) uses to keep workflows on the server:
 *
 *   GET    /userdata?dir=workflows[&recurse=true][&full_info=true]  files under a folder (relative paths)
 *   GET    /userdata/<path>                                          one file
 *   POST   /userdata/<path>[?overwrite=false][&full_info=true]      write the raw body (409 if it exists and
 *                                                                   overwrite is false)
 *   DELETE /userdata/<path>                                          remove one file
 *
 * `<path>` is one URL segment with its slashes encoded (`workflows%2Fmy%20graph.json`), as ComfyUI's clients
 * send it. Everything lives in one folder (`<root>/user/default`, ComfyUI's layout for its single user); a path
 * is refused (400) when it is absolute, has `..`, backslashes or NUL, and (403) when it resolves outside the
 * folder, symbolic links included. A missing listing folder is an empty list, so a fresh server just has no
 * saved workflows yet.
 */
import { mkdir, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import express, { type Request, type Response } from 'express';
import { FileRequestError } from './files.ts';

export interface UserdataOptions {
  /** The folder holding the user's files. */
  dir: string;
  /** Largest accepted file, bytes. */
  maxBytes: number;
}

export function userdataRouter(options: UserdataOptions): express.Router {
  const root = resolve(options.dir);
  const router = express.Router({ caseSensitive: true });
  const raw = express.raw({ type: () => true, limit: options.maxBytes });

  router.get('/userdata', async (req: Request, res: Response) => {
    const dir = typeof req.query.dir === 'string' ? req.query.dir : '';
    if (dir === '') throw new FileRequestError(400, 'Give the folder to list: /userdata?dir=workflows');
    const folder = await safePath(root, dir);
    const recurse = req.query.recurse === 'true';
    const fullInfo = req.query.full_info === 'true';
    let entries;
    try {
      entries = await readdir(folder, { recursive: recurse, withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return void res.json([]);
      throw error;
    }
    const files = entries
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => relative(folder, join(e.parentPath ?? e.path, e.name)).split(sep).join('/'))
      .sort();
    if (!fullInfo) return void res.json(files);
    res.json(
      await Promise.all(
        files.map(async (path) => {
          const info = await stat(join(folder, path));
          return { path, size: info.size, modified: info.mtimeMs / 1000 };
        }),
      ),
    );
  });

  router.get('/userdata/:file', async (req: Request, res: Response) => {
    const path = await safePath(root, String(req.params.file));
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new FileRequestError(404, `No user file ${JSON.stringify(req.params.file)}`);
    await new Promise<void>((done, fail) => res.sendFile(path, { dotfiles: 'allow', maxAge: 0 }, (error) => (error && !res.headersSent ? fail(error) : done())));
  });

  router.post('/userdata/:file', raw, async (req: Request, res: Response) => {
    const name = String(req.params.file);
    const path = await safePath(root, name);
    const exists = await stat(path).then(
      (info) => info.isFile(),
      () => false,
    );
    if (exists && req.query.overwrite === 'false') {
      res.status(409).json({ error: { type: 'exists', message: `${name} already exists; send overwrite=true to replace it` } });
      return;
    }
    const body: unknown = req.body;
    const data = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
    await mkdir(dirname(path), { recursive: true });
    await safePath(root, name); // the parent may have been created through a link meanwhile
    await writeFile(path, data);
    const relativePath = relative(root, path).split(sep).join('/');
    if (req.query.full_info === 'true') {
      const info = await stat(path);
      res.json({ path: relativePath, size: info.size, modified: info.mtimeMs / 1000 });
    } else res.json(relativePath);
  });

  router.delete('/userdata/:file', async (req: Request, res: Response) => {
    const path = await safePath(root, String(req.params.file));
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new FileRequestError(404, `No user file ${JSON.stringify(req.params.file)}`);
    await rm(path);
    res.status(204).end();
  });

  return router;
}

/** The absolute path of a user file, or a FileRequestError when the name could leave the folder. */
async function safePath(root: string, name: string): Promise<string> {
  if (name === '' || name.includes('\0') || name.includes('\\') || name.startsWith('/') || /^[a-zA-Z]:/.test(name)) {
    throw new FileRequestError(400, `Invalid user file path ${JSON.stringify(name)}: use a relative path like workflows/name.json`);
  }
  if (name.split('/').some((part) => part === '..' || part === '.')) {
    throw new FileRequestError(400, `Invalid user file path ${JSON.stringify(name)}: "." and ".." are not allowed`);
  }
  const target = resolve(root, name);
  if (!isInside(root, target)) throw new FileRequestError(403, `${JSON.stringify(name)} is outside the user folder`);
  // Follow links of the part that exists: a link inside the folder must not lead out of it.
  await mkdir(root, { recursive: true });
  const realRoot = await realpath(root);
  let existing = target;
  for (;;) {
    const real = await realpath(existing).catch(() => undefined);
    if (real !== undefined) {
      if (!isInside(realRoot, real)) throw new FileRequestError(403, `${JSON.stringify(name)} leads outside the user folder`);
      break;
    }
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  return target;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && !/^[a-zA-Z]:/.test(rel));
}
