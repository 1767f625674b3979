/**
 * One server per data folder. A second server started on the same folder (another terminal, a service manager
 * restarting too early) would replay, rewrite and prune the store under the running one, losing its history.
 * The lock is a file created exclusively (O_EXCL) before the store is read, holding the owner's pid; a lock
 * whose process is gone (the server was killed) is taken over, so a crash never needs a manual clean-up.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'server.lock';

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `Another gategraph server (process ${pid}) is using the data folder ${dir}. Stop it first, or give this one its own ` +
        `folder with --data-directory. If no such server runs, delete ${join(dir, LOCK_FILE)}.`,
    );
  }
}

interface LockOwner {
  pid: number;
  host: string;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return typeof value.pid === 'number' && typeof value.host === 'string' ? { pid: value.pid, host: value.host } : undefined;
  } catch {
    return undefined; // half-written by a process that died while creating it, or damaged: not an owner
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DataDirLock {
  release(): void;
}

/** Locks this process holds (two servers of one process, as tests and embedders start them, are refused too). */
const held = new Set<string>();

/** Takes the data folder's lock or throws DataDirLockedError naming the process that holds it. */
export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, LOCK_FILE);
  if (held.has(path)) throw new DataDirLockedError(dir, process.pid);
  // The lock appears with its content in one step (a hard link to a file written first), so no other process
  // ever reads a lock without an owner in it.
  const draft = join(dir, `.${LOCK_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const fd = openSync(draft, 'wx', 0o644);
  try {
    writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }));
  } finally {
    closeSync(fd);
  }
  try {
    takeLock(dir, path, draft);
  } finally {
    rmSync(draft, { force: true });
  }
  held.add(path);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      held.delete(path);
      if (readOwner(path)?.pid === process.pid) rmSync(path, { force: true });
    },
  };
}

function takeLock(dir: string, path: string, draft: string): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      linkSync(draft, path);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readOwner(path);
    // A lock of another machine (a data folder on a shared disk) cannot be checked: it is respected.
    if (owner && (owner.host !== hostname() || (owner.pid !== process.pid && isAlive(owner.pid)))) throw new DataDirLockedError(dir, owner.pid);
    rmSync(path, { force: true }); // stale: its process is gone (or the file is damaged)
  }
  throw new Error(`Could not take the lock ${path}: it keeps being recreated by another process`);
}
