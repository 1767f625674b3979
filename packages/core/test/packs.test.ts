import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  NodeRegistry,
  NodeInputError,
  checkNodeDefinition,
  defineNode,
  extensionUrlPrefix,
  listWebExtensions,
  loadPacks,
  socket,
  string,
  type Logger,
  type PackLoadReport,
} from '../src/index.ts';

/** Writes `files` (path relative to `root` -> content) and returns `root`. */
async function writeTree(root: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

/** A pack module source defining no-op nodes with the given ids, importing the host's core by package name. */
const packSource = (ids: string[], extra = '') => `
import { definePack, defineNode, string } from '@gategraph/core';
export default definePack({
  ${extra}
  nodes: ${JSON.stringify(ids)}.map((id) =>
    defineNode({ id, inputs: { text: string() }, outputs: [{ type: 'STRING' }], execute: ({ text }) => [text] as [string] }),
  ),
});
`;

let tmp: string;
let customNodes: string;
let report: PackLoadReport;
const registry = new NodeRegistry();
const logged: string[] = [];
const logger: Logger = {
  debug: (m) => logged.push(`debug ${m}`),
  info: (m) => logged.push(`info ${m}`),
  warn: (m) => logged.push(`warn ${m}`),
  error: (m) => logged.push(`error ${m}`),
  child: () => logger,
};

before(async () => {
  // realpath: on some systems the temp dir is a symlink, and stack traces name the real path.
  tmp = await realpath(await mkdtemp(join(tmpdir(), 'gategraph-packs-')));
  // Packs are ESM; a package.json above them says so (custom_nodes/ in the repo inherits the root's).
  await writeTree(tmp, { 'package.json': '{ "type": "module" }' });
  customNodes = join(tmp, 'custom_nodes');
  await writeTree(customNodes, {
    // A folder pack whose package.json names a nested entry, with a web folder.
    'good-folder/package.json': JSON.stringify({ name: 'good-folder-pkg', type: 'module', exports: { '.': { import: './src/main.ts' } } }),
    'good-folder/src/main.ts': `
      import { definePack, defineNode, socket, NodeInputError } from '@gategraph/core';
      const Shout = defineNode({
        id: 'FixtureShout',
        inputs: { text: socket('STRING') },
        outputs: [{ type: 'STRING' }],
        execute: ({ text }) => {
          if (text === '') throw new NodeInputError('text is empty', 'text');
          return [text.toUpperCase()] as [string];
        },
      });
      const Echo = defineNode({ id: 'FixtureEcho', inputs: {}, outputs: [], execute: () => [] as [] });
      export default definePack({ nodes: [Shout, Echo], webDirectory: 'web' });
    `,
    'good-folder/web/main.js': 'export default { name: "fixture", setup() {} };',
    'good-folder/web/widgets/extra.js': 'export default { name: "fixture.extra" };',
    'good-folder/web/style.css': '.x {}',
    'good-folder/web/.draft.js': '',
    // A plain-JS single-file pack exporting `pack` instead of a default.
    'single.mjs': `export const pack = { nodes: [{ id: 'FixtureSingle', inputs: {}, outputs: [{ type: 'INT' }], execute: () => [42] }] };`,
    // Disabled packs: never imported (importing these would throw).
    'off.disabled/index.ts': `throw new Error('a disabled pack was imported');`,
    'old.ts.disabled': `throw new Error('a disabled pack was imported');`,
    // Broken packs.
    'throws/index.ts': `
      import { definePack } from '@gategraph/core';
      const config: Record<string, string> = {};
      if (!config.apiKey) throw new Error('FIXTURE_API_KEY is not set');
      export default definePack({ nodes: [] });
    `,
    'syntax.ts': `export default { nodes: [ };\n`,
    'syntax-js.mjs': `export const pack = {\n  nodes: [ };\n`,
    'no-nodes/index.ts': `export const helper = 1;\nexport default { hello: 'world' };\n`,
    'invalid/index.ts': `
      import { definePack, defineNode } from '@gategraph/core';
      const ok = defineNode({ id: 'FixtureInvalidPackOk', inputs: {}, outputs: [], execute: () => [] as [] });
      export default definePack({ nodes: [
        ok,
        { id: 'FixtureNoExecute', inputs: {}, outputs: [] } as any,
        { id: 'FixtureOutputsObject', inputs: {}, outputs: { type: 'INT' }, execute() {} } as any,
        { id: 'FixtureUnknownKind', inputs: { steps: { kind: 'INTEGER' } }, outputs: [], execute() {} } as any,
      ] });
    `,
    'commonjs/package.json': JSON.stringify({ name: 'commonjs', main: 'index.ts' }),
    'commonjs/index.ts': packSource(['FixtureCommonJs']),
    'no-entry/notes.md': 'a folder without an entry module',
    // Two packs defining the same id: the first in name order wins.
    'dup-a/index.ts': packSource(['FixtureShared', 'FixtureOnlyInA']),
    'dup-b/index.ts': packSource(['FixtureOnlyInB', 'FixtureShared']),
    // Web folder problems do not stop the nodes from loading.
    'web-missing/index.ts': packSource(['FixtureWebMissing'], `webDirectory: 'web',`),
    'web-outside/index.ts': packSource(['FixtureWebOutside'], `webDirectory: '../good-folder/web',`),
    // Not packs at all.
    '.git/index.ts': `throw new Error('a dot folder was imported');`,
    '__pycache__/x.pyc': '',
    'README.md': '# my custom nodes',
    'notes.txt': '',
    'types.d.ts': 'export {};',
  });
  // A pack given by absolute path, outside custom_nodes: loaded before custom_nodes.
  await writeTree(join(tmp, 'workspace-pack'), { 'index.ts': packSource(['FixtureWorkspace'], `name: 'workspace-pack',`) });

  report = await loadPacks({ customNodesDir: customNodes, packages: [join(tmp, 'workspace-pack')], registry, logger });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const failure = (name: string) => report.failed.find((f) => f.name === name)?.error ?? assert.fail(`no failure for ${name}`);

test('good packs load: workspace packages first, then custom_nodes in name order', () => {
  assert.deepEqual(
    report.loaded.map((p) => p.name),
    ['workspace-pack', 'dup-a', 'good-folder-pkg', 'single', 'web-missing', 'web-outside'],
  );
  const good = report.loaded.find((p) => p.name === 'good-folder-pkg')!;
  assert.equal(good.root, join(customNodes, 'good-folder'));
  assert.deepEqual(good.nodes, ['FixtureShout', 'FixtureEcho']);
  assert.equal(good.webDirectory, join(customNodes, 'good-folder', 'web'));
  assert.ok(good.ms >= 0);
  assert.deepEqual(report.loaded.find((p) => p.name === 'single')?.nodes, ['FixtureSingle']);
  assert.equal(registry.sourceOf('FixtureShout')?.pack, 'good-folder-pkg');
});

test('loaded nodes run, and a pack importing @gategraph/core shares the host copy (same NodeInputError)', async () => {
  const shout = registry.get('FixtureShout')!;
  assert.deepEqual(await shout.execute({ text: 'hi' } as never, {} as never), ['HI']);
  await assert.rejects(
    async () => shout.execute({ text: '' } as never, {} as never),
    (error: unknown) => error instanceof NodeInputError && error.inputName === 'text',
  );
  assert.deepEqual(await registry.get('FixtureSingle')!.execute({} as never, {} as never), [42]);
});

test('.disabled packs are skipped without being imported; dotfiles, READMEs and other files are ignored', () => {
  assert.deepEqual(report.skipped, [
    { name: 'off', root: join(customNodes, 'off.disabled'), reason: 'disabled' },
    { name: 'old', root: join(customNodes, 'old.ts.disabled'), reason: 'disabled' },
  ]);
  const seen = [...report.loaded, ...report.failed, ...report.skipped].map((p) => p.root);
  for (const ignored of ['.git', '__pycache__', 'README.md', 'notes.txt', 'types.d.ts']) {
    assert.ok(!seen.includes(join(customNodes, ignored)), `${ignored} should be ignored`);
  }
  assert.ok(!logged.some((line) => line.includes('a disabled pack was imported')));
});

test('a pack that throws at import is reported with the message and where in the pack it threw', () => {
  const error = failure('throws');
  assert.match(error, /^import failed: FIXTURE_API_KEY is not set/);
  assert.ok(error.includes(`${join(customNodes, 'throws', 'index.ts')}:4:`), error);
  assert.ok(logged.some((line) => line.startsWith('error pack "throws" failed to load') && line.includes('FIXTURE_API_KEY')));
});

test('a pack with a syntax error is reported with file and line, TypeScript or JavaScript', () => {
  assert.equal(failure('syntax'), `import failed: syntax error at ${join(customNodes, 'syntax.ts')}:1:26: Unexpected "}"`);
  assert.equal(
    failure('syntax-js'),
    `import failed: SyntaxError: Unexpected token '}' (at ${join(customNodes, 'syntax-js.mjs')}:2)`,
  );
});

test('a pack exporting no nodes says what it should export and what it does export', () => {
  const error = failure('no-nodes');
  assert.match(error, /^exports no nodes: .*definePack\(\{ nodes: \[\.\.\.\] \}\)/);
  assert.match(error, /"helper"/);
});

test('a pack compiled as CommonJS is told to declare "type": "module"', () => {
  assert.match(failure('commonjs'), /Cannot find module '@gategraph\/core'.*add "type": "module" to its package\.json/);
});

test('a folder with no entry module is reported with what to add', () => {
  assert.match(failure('no-entry'), /no entry module in .*no-entry: add an index\.ts/);
});

test('an invalid definition fails its whole pack with every problem named, and registers none of it', () => {
  const error = failure('invalid');
  assert.match(error, /node "FixtureNoExecute": has no execute function/);
  assert.match(error, /node "FixtureOutputsObject": "outputs" must be an array/);
  assert.match(error, /node "FixtureUnknownKind": input "steps" has unknown kind "INTEGER"/);
  assert.equal(registry.has('FixtureInvalidPackOk'), false);
});

test('a duplicate node id names both packs; the first pack keeps it and the second loads nothing', () => {
  const error = failure('dup-b');
  assert.match(error, /Duplicate node id "FixtureShared": defined by pack "dup-a" and by pack "dup-b"/);
  assert.equal(registry.sourceOf('FixtureShared')?.pack, 'dup-a');
  assert.equal(registry.has('FixtureOnlyInA'), true);
  assert.equal(registry.has('FixtureOnlyInB'), false);
});

test('failed packs are exactly the broken ones', () => {
  assert.deepEqual(report.failed.map((f) => f.name).sort(), ['commonjs', 'dup-b', 'invalid', 'no-entry', 'no-nodes', 'syntax', 'syntax-js', 'throws']);
});

test('web folders: listed with their .js files; a missing or escaping web folder is a warning, not a failure', () => {
  assert.deepEqual(listWebExtensions(report), [
    {
      pack: 'good-folder-pkg',
      urlPrefix: '/extensions/good-folder-pkg/',
      dir: join(customNodes, 'good-folder', 'web'),
      files: ['main.js', 'widgets/extra.js'],
    },
  ]);
  const missing = report.loaded.find((p) => p.name === 'web-missing')!;
  assert.equal(missing.webDirectory, undefined);
  assert.match(missing.warnings?.[0] ?? '', /webDirectory "web" does not exist/);
  const outside = report.loaded.find((p) => p.name === 'web-outside')!;
  assert.equal(outside.webDirectory, undefined);
  assert.match(outside.warnings?.[0] ?? '', /points outside the pack/);
  assert.equal(extensionUrlPrefix('@scope/my pack'), '/extensions/@scope/my%20pack/');
});

test('packages are found by name in a pnpm workspace; an unknown name is reported, not thrown', async () => {
  const ws = await writeTree(join(tmp, 'ws'), {
    'pnpm-workspace.yaml': 'packages:\n  - "libs/*"\n  - tools # a literal folder\n',
    'libs/first/package.json': JSON.stringify({ name: '@fixture/first', type: 'module', main: 'lib/entry.mjs' }),
    'libs/first/lib/entry.mjs': `export default { nodes: [{ id: 'FixtureFromWorkspace', inputs: {}, outputs: [], execute: () => [] }] };`,
    'tools/package.json': JSON.stringify({ name: '@fixture/tools', type: 'module' }),
    'tools/index.ts': packSource(['FixtureTools']),
  });
  const wsRegistry = new NodeRegistry();
  const result = await loadPacks({
    packages: ['@fixture/tools', '@fixture/first', '@fixture/missing'],
    resolveFrom: join(ws, 'libs'),
    registry: wsRegistry,
  });
  assert.deepEqual(
    result.loaded.map((p) => [p.name, p.root, p.nodes]),
    [
      ['@fixture/tools', join(ws, 'tools'), ['FixtureTools']],
      ['@fixture/first', join(ws, 'libs', 'first'), ['FixtureFromWorkspace']],
    ],
  );
  assert.equal(result.failed.length, 1);
  assert.equal(result.failed[0]?.name, '@fixture/missing');
  assert.match(result.failed[0]?.error ?? '', /cannot find package "@fixture\/missing"/);
});

test('a missing custom_nodes folder holds no packs', async () => {
  const result = await loadPacks({ customNodesDir: join(tmp, 'nowhere'), registry: new NodeRegistry() });
  assert.deepEqual(result, { loaded: [], failed: [], skipped: [] });
});

test('checkNodeDefinition accepts a defineNode definition and names each problem of a bad one', () => {
  const good = defineNode({
    id: 'Good',
    inputs: { text: string({ default: 'a' }), other: socket('STRING', { optional: true }) },
    outputs: [{ type: 'STRING' }],
    execute: ({ text }) => [text] as [string],
  });
  assert.deepEqual(checkNodeDefinition(good), []);
  assert.deepEqual(checkNodeDefinition(null), ['a node definition must be an object made with defineNode(), got null']);
  const problems = checkNodeDefinition({
    id: '',
    inputs: {
      seed: { kind: 'INT', default: 1.5, min: 10, max: 0 },
      mode: { kind: 'COMBO', options: ['a', 'b'], default: 'c' },
      model: { kind: 'SOCKET' },
    },
    hidden: { seed: 'PROMPT', id: 'NODE_ID' },
    outputs: [{ name: 'no type' }],
    execute: () => [],
    validate: true,
  });
  assert.deepEqual(problems, [
    '"id" must be a non-empty string, got ""',
    '"validate" must be a function, got boolean',
    'input "seed": default 1.5 is not an integer',
    'input "seed": min 10 is greater than max 0',
    'input "seed": default 1.5 is outside min..max (10..0)',
    'input "mode": default "c" is not one of the options (a, b)',
    `input "model": a socket needs a non-empty "type" such as 'MODEL', got undefined`,
    '"seed" is declared both as an input and as a hidden input',
    'hidden input "id" has unknown kind "NODE_ID" (expected one of PROMPT, EXTRA_PNGINFO, UNIQUE_ID, DYNPROMPT)',
    'output 0 must be an object with a non-empty "type" such as \'LATENT\', got object',
  ]);
});
