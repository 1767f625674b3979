// `serve` as a person runs it: the README's command in a real process, stopped the way a terminal stops it, and
// the page a checkout without a built editor shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/index.ts';
import { getJson, postJson, testRegistry, until, workspaceRoot } from './helpers.ts';
import { silentLogger, type ApiPrompt } from '@gategraph/core';

const pnpm = (JSON.parse(readFileSync(join(workspaceRoot, 'package.json'), 'utf8')) as { packageManager: string }).packageManager;

interface Stopped {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/**
 * Starts `npx -y <pnpm> serve` in the workspace, in a process group of its own as a terminal runs a
 * foreground command, writing only into a temporary folder; resolves with its URL once it listens.
 */
async function startServeCommand(dir: string) {
  const child = spawn(
    'npx',
    [
      '-y', pnpm, 'serve', '--port', '0',
      '--data-directory', join(dir, 'data'), '--output-directory', join(dir, 'output'), '--input-directory', join(dir, 'input'),
      '--temp-directory', join(dir, 'temp'), '--custom-nodes', join(dir, 'custom_nodes'),
    ],
    { cwd: workspaceRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const stopped = new Promise<Stopped>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, output })));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(child.pid);
      reject(new Error(`serve did not start within 60 s:\n${output}`));
    }, 60_000);
    const check = () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout.on('data', check);
    void stopped.then(() => reject(new Error(`serve exited before listening:\n${output}`)));
  });
  return { child, url, stopped };
}

/** Whatever a failed test left of the command's process group (a server orphaned by a shell that died). */
function killGroup(pid: number | undefined): void {
  try {
    if (pid) process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

test('the README\'s serve command opens the built editor on the first request, and Ctrl+C stops it with exit 0', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-serve-'));
  let pid: number | undefined;
  try {
    const { child, url, stopped } = await startServeCommand(dir);
    pid = child.pid;
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.equal(await page.text(), readFileSync(join(workspaceRoot, 'packages', 'editor', 'dist', 'index.html'), 'utf8'));

    // A long generation is running when the person presses Ctrl+C.
    const prompt = JSON.parse(readFileSync(join(workspaceRoot, 'workflows', 'default.json'), 'utf8')) as ApiPrompt;
    prompt['3']!.inputs.steps = 10000;
    assert.equal((await postJson(`${url}/prompt`, { prompt })).status, 200);
    await until(async () => (await getJson(`${url}/queue`)).json.queue_running.length === 1, 60_000);

    // Ctrl+C in a terminal signals the whole foreground process group: npx, its shell, pnpm and node; npm and
    // pnpm pass it on to the server as well, so it arrives more than once.
    process.kill(-child.pid!, 'SIGINT');
    const { code, signal, output } = await stopped;
    assert.equal(signal, null, output);
    assert.equal(code, 0, output);
    assert.match(output, /interrupted[\s\S]*gategraph server stopped/);
    assert.doesNotMatch(output, /again: quitting now/, 'one Ctrl+C is one stop, not a forced quit');
    assert.doesNotMatch(output, /ELIFECYCLE|Command failed/);
  } finally {
    killGroup(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM to the serve command (a service manager stopping it) also exits 0 after saying it stopped', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-serve-'));
  let pid: number | undefined;
  try {
    const { child, stopped } = await startServeCommand(dir);
    pid = child.pid;
    child.kill('SIGTERM');
    const { code, output } = await stopped;
    assert.equal(code, 0, output);
    assert.match(output, /SIGTERM: stopping[\s\S]*gategraph server stopped/);
    assert.doesNotMatch(output, /ELIFECYCLE|Command failed/);
  } finally {
    killGroup(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a built editor, / names the install command and turns into the editor once a build appears, without a restart', async () => {
  // A workspace root of its own, so the editor folder is the default one (packages/editor/dist) and missing.
  const root = mkdtempSync(join(tmpdir(), 'gg-not-built-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'x', private: true, packageManager: 'pnpm@10.34.9' }));
  const server = await startServer({ root, host: '127.0.0.1', port: 0, env: {}, registry: testRegistry(), logger: silentLogger, fsync: false });
  try {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    const html = await page.text();
    assert.match(html, /editor is not built/);
    assert.match(html, /<code>npx -y pnpm@10\.34\.9 install<\/code>/);
    assert.match(html, /<meta http-equiv="refresh" content="\d+">/, 'the page reloads itself');
    assert.doesNotMatch(html, new RegExp(root), 'the page does not show server paths');

    const dist = join(root, 'packages', 'editor', 'dist');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>the editor</title>');
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log("app")');
    assert.equal(await (await fetch(`${server.url}/`)).text(), '<!doctype html><title>the editor</title>');
    assert.equal(await (await fetch(`${server.url}/assets/app.js`)).text(), 'console.log("app")');
  } finally {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  }
});
