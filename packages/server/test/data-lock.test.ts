// One server per data folder: a second one refuses before it reads or writes anything, and a lock left by a
// killed server does not stand in the way of the next start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataDirLockedError, startServer } from '../src/index.ts';
import { getJson, postJson, slowPrompt, spawnChildServer, testServerOptions, until, workspaceRoot } from './helpers.ts';

/** Every file of the store folder with a digest of its bytes. */
function storeFiles(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((name) => [name, createHash('sha256').update(readFileSync(join(dir, name))).digest('hex')]),
  );
}

/** Queues one prompt per seed and waits until the history holds `total` entries. */
async function runPrompts(url: string, seeds: number[], total: number): Promise<void> {
  for (const seed of seeds) assert.equal((await postJson(`${url}/prompt`, { prompt: slowPrompt(seed, 1, 0) })).status, 200);
  await until(async () => Object.keys((await getJson(`${url}/history`)).json).length >= total, 20_000);
}

test('a second server on the same data folder refuses with one sentence and leaves the first one\'s store as it was', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-lock-'));
  const { child: first, url } = await spawnChildServer(dir);
  try {
    await runPrompts(url, [1, 2, 3], 3);
    const dataDir = join(dir, 'data');
    const before = storeFiles(dataDir);

    // `pnpm serve` on the same folder, as a person would start it in another terminal.
    const serve = fileURLToPath(new URL('../bin/serve.mjs', import.meta.url));
    const second = spawn(process.execPath, [serve, '--port', '0', '--data-directory', dataDir, '--custom-nodes', join(dir, 'none')], {
      cwd: workspaceRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    second.stdout.on('data', (chunk: Buffer) => (output += chunk));
    second.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => second.on('exit', resolve));
    assert.equal(code, 1, output);
    assert.match(output, new RegExp(`Another gategraph server \\(process ${first.pid}\\) is using the data folder .*data\\. Stop it first`));
    assert.doesNotMatch(output, /^\s+at /m, 'no stack trace');
    assert.deepEqual(storeFiles(dataDir), before, 'the store files are untouched');

    // The first server goes on as if nothing happened.
    await runPrompts(url, [4], 4);
    assert.equal(Object.keys((await getJson(`${url}/history`)).json).length, 4);
  } finally {
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
  }

  // Killed without a chance to remove its lock: the next server takes the folder over, with the history.
  const next = await spawnChildServer(dir);
  try {
    assert.equal(Object.keys((await getJson(`${next.url}/history`)).json).length, 4);
  } finally {
    next.child.kill('SIGKILL');
    await new Promise((resolve) => next.child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two servers of one process on one data folder: the second is refused; after a close the folder is free again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-lock-'));
  const first = await startServer({ ...testServerOptions(dir), fsync: false });
  try {
    await assert.rejects(startServer({ ...testServerOptions(dir), fsync: false }), DataDirLockedError);
  } finally {
    await first.close();
  }
  const again = await startServer({ ...testServerOptions(dir), fsync: false });
  await again.close();
  rmSync(dir, { recursive: true, force: true });
});
