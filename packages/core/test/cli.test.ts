// The `gategraph` command as a user runs it: a real process, a real pack in a custom_nodes folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/gategraph.mjs', import.meta.url));
let dir: string;

const PACK = `
import { defineNode, definePack, string, NodeInputError } from '@gategraph/core';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
export default definePack({
  name: 'cli-fixture',
  nodes: [
    defineNode({ id: 'Text', category: 'test', inputs: { text: string({ default: 'hi' }) }, outputs: [{ type: 'STRING' }],
      execute: ({ text }) => [text] }),
    defineNode({ id: 'Explode', category: 'test', inputs: { text: string() }, outputs: [{ type: 'STRING' }],
      execute: ({ text }) => { throw new NodeInputError('cannot explode "' + text + '"', 'text'); } }),
    defineNode({ id: 'WriteText', category: 'test', outputNode: true, inputs: { text: string({ forceInput: true }) }, outputs: [],
      execute: ({ text }, ctx) => {
        mkdirSync(ctx.paths.output, { recursive: true });
        writeFileSync(join(ctx.paths.output, 'out.txt'), text);
        ctx.progress(1, 2); ctx.progress(2, 2);
        return { ui: { images: [{ filename: 'out.txt', subfolder: '', type: 'output' }] } };
      } }),
  ],
});
`;

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args, '--custom-nodes', join(dir, 'custom_nodes'), '--output-dir', join(dir, 'out')], {
    cwd: dir,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function workflow(name: string, prompt: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(prompt));
  return path;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gategraph-cli-'));
  mkdirSync(join(dir, 'custom_nodes'));
  writeFileSync(join(dir, 'custom_nodes', 'fixture.mjs'), PACK);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('run: executes the workflow, shows progress and prints the files it wrote (exit 0)', () => {
  const wf = workflow('ok.json', {
    '1': { class_type: 'Text', inputs: { text: 'written by the cli' } },
    '2': { class_type: 'WriteText', inputs: { text: ['1', 0] } },
  });
  const r = run('run', wf);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WriteText #2/);
  assert.match(r.stderr, /step 2\/2/);
  assert.equal(resolve(dir, r.stdout.trim()), join(dir, 'out', 'out.txt'));
  assert.equal(readFileSync(join(dir, 'out', 'out.txt'), 'utf8'), 'written by the cli');
});

test('run: an invalid workflow exits 2 and says which node and input is wrong', () => {
  const wf = workflow('bad.json', {
    '1': { class_type: 'Text', inputs: { text: 'x' } },
    '2': { class_type: 'WriteText', inputs: { text: ['9', 0] } },
  });
  const r = run('run', wf);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /WriteText #2: .*node 9/);
  assert.ok(!existsSync(join(dir, 'out', 'never.txt')));
});

test('run: unreadable JSON exits 2 with the position of the problem', () => {
  const path = join(dir, 'broken.json');
  writeFileSync(path, '{"1": {"class_type": "Text",,}}');
  const r = run('run', path);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /broken\.json/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace for a user error');
});

test('run: a node failing at run time exits 1 with the node and its message', () => {
  const wf = workflow('fail.json', {
    '1': { class_type: 'Explode', inputs: { text: 'boom' } },
    '2': { class_type: 'WriteText', inputs: { text: ['1', 0] } },
  });
  const r = run('run', wf);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Explode #1 failed: cannot explode "boom"/);
});

test('validate and nodes: report without running', () => {
  const wf = workflow('v.json', {
    '1': { class_type: 'Text', inputs: { text: 'x' } },
    '2': { class_type: 'WriteText', inputs: { text: ['1', 0] } },
  });
  const v = run('validate', wf);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /valid \(2 nodes, outputs 2\)/);
  const n = run('nodes', '--json');
  assert.equal(n.code, 0, n.stderr);
  const info = JSON.parse(n.stdout) as Record<string, { category: string }>;
  assert.equal(info.WriteText?.category, 'test');
});

test('usage errors exit 64, on the program and on every subcommand, with the usage', () => {
  const wf = workflow('usage.json', { '1': { class_type: 'Text', inputs: { text: 'x' } } });
  const cases: string[][] = [
    ['no-such-command'],
    ['--no-such-flag'],
    ['run'],
    ['run', wf, 'extra.json'],
    ['run', wf, '--no-such-flag'],
    ['validate'],
    ['validate', wf, '--bogus'],
    ['convert'],
    ['nodes', 'extra'],
  ];
  for (const args of cases) {
    const r = run(...args);
    assert.equal(r.code, 64, `gategraph ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /error: [\s\S]*Usage: gategraph/, `gategraph ${args.join(' ')} says what is wrong and how to call it`);
  }
  assert.equal(run('run', '--help').code, 0);
});

test('run takes ComfyUI\'s cache flags; a bad value or two of them is a usage error', () => {
  const wf = workflow('cache-flags.json', { '1': { class_type: 'Text', inputs: { text: 'x' } }, '2': { class_type: 'WriteText', inputs: { text: ['1', 0] } } });
  for (const flags of [['--cache-classic'], ['--cache-lru', '3'], ['--cache-none'], ['--cache-ram'], ['--cache-ram', '0.5']]) {
    const r = run('run', wf, ...flags);
    assert.equal(r.code, 0, `${flags.join(' ')}: ${r.stderr}`);
  }
  const bad = run('run', wf, '--cache-lru', '-1');
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /--cache-lru takes a whole number of node results, got "-1"/);
  const two = run('run', wf, '--cache-none', '--cache-lru', '2');
  assert.equal(two.code, 64);
  assert.match(two.stderr, /use one cache flag at a time \(got --cache-lru, --cache-none\)/);
});

test('a workflow that makes the checks themselves fail still exits 2, with one line and no stack trace', () => {
  // A link to a node id that is an Object.prototype key ("constructor") has made validation itself throw.
  const wf = workflow('proto.json', { '1': { class_type: 'WriteText', inputs: { text: ['constructor', 0] } } });
  for (const command of ['validate', 'run']) {
    const r = run(command, wf);
    assert.equal(r.code, 2, `${command}: ${r.stderr}`);
    assert.match(r.stderr, /proto\.json/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
});
