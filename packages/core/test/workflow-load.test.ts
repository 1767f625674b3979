import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  WorkflowFormatError,
  detectWorkflowFormat,
  loadWorkflow,
  loadWorkflowFile,
  parseWorkflowFile,
} from '../src/index.ts';
import { baseNodeRegistry } from './fixtures/base-nodes.ts';

const fixturePath = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);
const fixture = (name: string): Record<string, any> =>
  JSON.parse(readFileSync(fixturePath(name), 'utf8')) as Record<string, any>;
const registry = baseNodeRegistry();
const expectedPrompt = () => fixture('default-workflow.api.json');

function formatError(fn: () => unknown): WorkflowFormatError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof WorkflowFormatError, `expected a WorkflowFormatError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a WorkflowFormatError');
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof WorkflowFormatError);
    assert.match(error.message, pattern);
    return true;
  });
}

test('format detection: API prompt, UI 0.4, UI 1, POST /prompt body, and nothing for non-objects', () => {
  assert.equal(detectWorkflowFormat(fixture('default-workflow.api.json')), 'api');
  assert.equal(detectWorkflowFormat(fixture('default-workflow.ui.json')), 'ui-0.4');
  assert.equal(detectWorkflowFormat(fixture('default-workflow.ui-v1.json')), 'ui-1');
  assert.equal(detectWorkflowFormat({ prompt: fixture('default-workflow.api.json') }), 'prompt-request');
  // A node that happens to be called "prompt" does not make a request body.
  assert.equal(detectWorkflowFormat({ prompt: { class_type: 'KSampler', inputs: {} } }), 'api');
  assert.equal(detectWorkflowFormat([]), undefined);
  assert.equal(detectWorkflowFormat('{}'), undefined);
  assert.equal(detectWorkflowFormat(null), undefined);
});

test('an API prompt is validated and returned as is, without a UI workflow', () => {
  const json = fixture('default-workflow.api.json');
  const loaded = loadWorkflow(json, registry);
  assert.equal(loaded.format, 'api');
  assert.equal(loaded.prompt, json);
  assert.equal(loaded.workflow, undefined);
  assert.deepStrictEqual(loaded.warnings, []);
});

test('UI workflows of both versions are converted, and the UI graph is kept for embedding into PNGs', () => {
  for (const [name, format] of [
    ['default-workflow.ui.json', 'ui-0.4'],
    ['default-workflow.ui-v1.json', 'ui-1'],
  ] as const) {
    const json = fixture(name);
    const loaded = loadWorkflow(json, registry);
    assert.equal(loaded.format, format);
    assert.deepStrictEqual(loaded.prompt, expectedPrompt());
    assert.equal(loaded.workflow, json, 'the original graph, not a normalised copy');
    assert.deepStrictEqual(loaded.warnings, []);
  }
});

test('a saved POST /prompt body yields its prompt and the UI workflow it carries', () => {
  const workflow = fixture('default-workflow.ui.json');
  const loaded = loadWorkflow(
    { prompt: expectedPrompt(), client_id: 'abc', extra_data: { extra_pnginfo: { workflow } } },
    registry,
  );
  assert.equal(loaded.format, 'prompt-request');
  assert.deepStrictEqual(loaded.prompt, expectedPrompt());
  assert.equal(loaded.workflow, workflow);
});

test('conversion warnings are passed on (unknown node type)', () => {
  const json = fixture('default-workflow.ui.json');
  json.nodes.find((n: { id: number }) => n.id === 9).type = 'SaveAnimatedWEBP_Custom';
  const loaded = loadWorkflow(json, registry);
  assert.equal(loaded.prompt['9']!.class_type, 'SaveAnimatedWEBP_Custom');
  assert.equal(loaded.warnings.length, 1);
  assert.match(loaded.warnings[0]!, /unknown node type "SaveAnimatedWEBP_Custom"/);
});

test('schema failures throw a WorkflowFormatError whose message lists every problem', () => {
  const prompt = expectedPrompt();
  delete prompt['4'].class_type;
  prompt['3'].inputs.model = ['4', 'zero'];
  const error = formatError(() => loadWorkflow(prompt, registry, 'my-prompt.json'));
  assert.equal(error.format, 'api');
  assert.equal(
    error.message,
    [
      'my-prompt.json is not a valid API prompt (2 problems):',
      '  - 3.inputs.model[1]: must be integer (got "zero")',
      '  - 4.class_type: is required',
    ].join('\n'),
  );
  assert.deepStrictEqual(
    error.errors.map((e) => e.path),
    ['3.inputs.model[1]', '4.class_type'],
  );
});

test('a UI workflow of an unknown version is refused with the versions we read', () => {
  const json = fixture('default-workflow.ui.json');
  json.version = 2;
  const error = formatError(() => loadWorkflow(json, registry, 'future.json'));
  assert.equal(error.format, 'ui-0.4');
  assert.match(error.message, /^future\.json: unsupported UI workflow version 2; gategraph reads versions 0\.4 and 1\n {2}- version: must be 0\.4 \(got 2\)$/);
});

test('a broken version 1 workflow names the format and the place', () => {
  const json = fixture('default-workflow.ui-v1.json');
  json.links[3].origin_slot = -1;
  const error = formatError(() => loadWorkflow(json, registry));
  assert.equal(error.format, 'ui-1');
  assert.match(error.message, /^workflow is not a valid UI workflow \(version 1\) \(1 problem\):\n {2}- links\[3\]\.origin_slot: must be at least 0 \(got -1\)$/);
});

test('something that is not a JSON object is refused plainly', () => {
  const error = formatError(() => loadWorkflow([1, 2], registry, 'list.json'));
  assert.equal(error.message, 'list.json: expected a JSON object (an API prompt or a UI workflow), got an array');
});

test('the message lists the first 20 problems and counts the rest; all are in errors', () => {
  const prompt: Record<string, unknown> = {};
  for (let i = 1; i <= 25; i++) prompt[String(i)] = { inputs: {} };
  const error = formatError(() => loadWorkflow(prompt, registry));
  assert.equal(error.errors.length, 25);
  const lines = error.message.split('\n');
  assert.equal(lines.length, 1 + 20 + 1);
  assert.equal(lines.at(-1), '  ... and 5 more');
});

test('parseWorkflowFile reads JSON files, with clear errors for broken JSON, empty files, PNGs and missing files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gategraph-workflow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const good = join(dir, 'good.json');
  writeFileSync(good, '\uFEFF' + readFileSync(fixturePath('default-workflow.ui.json'), 'utf8'));
  assert.deepStrictEqual(await parseWorkflowFile(good), fixture('default-workflow.ui.json'));

  const loaded = await loadWorkflowFile(good, registry);
  assert.deepStrictEqual(loaded.prompt, expectedPrompt());

  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{\n  "3": {\n    "class_type": "KSampler",\n    "inputs": {}\n  },,\n}\n');
  await rejectsWith(parseWorkflowFile(broken), /broken\.json is not valid JSON: .*line 5, column 5/);

  const empty = join(dir, 'empty.json');
  writeFileSync(empty, '  \n');
  await rejectsWith(parseWorkflowFile(empty), /empty\.json is empty; expected a workflow in JSON/);

  const png = join(dir, 'image.png');
  writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]));
  await rejectsWith(parseWorkflowFile(png), /image\.png is a PNG image; reading workflows from PNG files is not available here/);
  await rejectsWith(
    parseWorkflowFile(png, { extractFromPng: () => undefined }),
    /image\.png is a PNG image without an embedded workflow/,
  );
  assert.deepStrictEqual(await parseWorkflowFile(png, { extractFromPng: () => ({ '1': {} }) }), { '1': {} });

  await rejectsWith(parseWorkflowFile(join(dir, 'missing.json')), /Cannot read workflow .*missing\.json: no such file/);
  mkdirSync(join(dir, 'folder.json'));
  await rejectsWith(parseWorkflowFile(join(dir, 'folder.json')), /folder\.json: it is a directory/);
});
