import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import {
  SCHEMA_IDS,
  checkApiPrompt,
  checkPromptRequest,
  checkUiWorkflow04,
  checkUiWorkflow1,
  formatSchemaError,
  loadSchema,
  type SchemaError,
} from '../src/index.ts';

const fixture = (name: string): Record<string, any> =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, any>;
const lines = (errors: SchemaError[]) => errors.map(formatSchemaError);

test('the published schema files parse, declare draft 2020-12 and carry the documented $ids', () => {
  const dir = new URL('../schemas/', import.meta.url);
  const files = readdirSync(dir).sort();
  assert.deepStrictEqual(files, [
    'api-prompt.schema.json',
    'prompt-request.schema.json',
    'ui-workflow-0.4.schema.json',
    'ui-workflow-1.schema.json',
  ]);
  for (const [name, id] of Object.entries(SCHEMA_IDS)) {
    const schema = loadSchema(name as keyof typeof SCHEMA_IDS);
    assert.equal(schema.$id, id);
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  }
});

test('the default workflow fixtures are valid in their formats, and only in their own', () => {
  assert.deepStrictEqual(checkApiPrompt(fixture('default-workflow.api.json')), []);
  assert.deepStrictEqual(checkUiWorkflow04(fixture('default-workflow.ui.json')), []);
  assert.deepStrictEqual(checkUiWorkflow1(fixture('default-workflow.ui-v1.json')), []);
  assert.notDeepStrictEqual(checkUiWorkflow04(fixture('default-workflow.ui-v1.json')), []);
  assert.notDeepStrictEqual(checkUiWorkflow1(fixture('default-workflow.ui.json')), []);
});

test('a POST /prompt body is valid with every optional field ComfyUI accepts', () => {
  const body = {
    prompt: fixture('default-workflow.api.json'),
    client_id: '5b9d1b6e-client',
    prompt_id: 'a3c1f2e4-prompt',
    extra_data: { extra_pnginfo: { workflow: fixture('default-workflow.ui.json') } },
    front: true,
    number: 3,
    partial_execution_targets: ['9'],
  };
  assert.deepStrictEqual(checkPromptRequest(body), []);
  assert.deepStrictEqual(lines(checkPromptRequest({ client_id: 'x' })), ['prompt: is required']);
  assert.deepStrictEqual(lines(checkPromptRequest({ prompt: {}, front: 'yes', partial_execution_targets: [9] })), [
    'front: must be boolean (got "yes")',
    'partial_execution_targets[0]: must be string (got 9)',
  ]);
});

test('API prompt: a node without class_type is reported at its path', () => {
  const prompt = fixture('default-workflow.api.json');
  delete prompt['4'].class_type;
  assert.deepStrictEqual(lines(checkApiPrompt(prompt)), ['4.class_type: is required']);
});

test('API prompt: a link with a non-integer slot, or a numeric source id, is rejected; constants are free', () => {
  const prompt = fixture('default-workflow.api.json');
  prompt['3'].inputs.model = ['4', 0.5];
  prompt['8'].inputs.vae = [4, 2];
  prompt['6'].inputs.clip = ['4', 1, 'extra'];
  prompt['5'].inputs.width = { __value__: [1, 2] };
  prompt['7'].inputs.text = null;
  assert.deepStrictEqual(lines(checkApiPrompt(prompt)), [
    '3.inputs.model[1]: must be integer (got 0.5)',
    '6.inputs.clip: must have at most 2 items (got ["4",1,"extra"]); expected [source node id, output slot index]',
    '8.inputs.vae[0]: must be string (got 4)',
  ]);
});

test('API prompt: a non-object document or node is reported plainly', () => {
  assert.deepStrictEqual(lines(checkApiPrompt([])), ['(top level): must be object (got [])']);
  assert.deepStrictEqual(lines(checkApiPrompt({ '1': 'KSampler' })), ['1: must be object (got "KSampler")']);
  assert.deepStrictEqual(lines(checkApiPrompt({ '1': { class_type: 'X', inputs: [] } })), [
    '1.inputs: must be object (got [])',
  ]);
});

test('UI 0.4: wrong version, bad link ids and bad slots are all reported at once with readable paths', () => {
  const workflow = fixture('default-workflow.ui.json');
  workflow.version = 0.5;
  workflow.nodes[3].inputs[1].link = '4';
  workflow.links[2][2] = 1.5;
  workflow.nodes[0].mode = 'muted';
  assert.deepStrictEqual(lines(checkUiWorkflow04(workflow)), [
    'nodes[0].mode: must be integer (got "muted")',
    'nodes[3].inputs[1].link: must be integer or null (got "4")',
    'links[2][2]: must be a whole number (got 1.5)',
    'version: must be 0.4 (got 0.5)',
  ]);
});

test('UI 0.4: what ComfyUI files vary in is accepted (extra fields, string ids, numeric-string slots, object widgets)', () => {
  const workflow = fixture('default-workflow.ui.json');
  workflow.nodes[0].id = '7';
  workflow.nodes[0].somethingNew = { a: 1 };
  workflow.nodes[0].inputs[0].localized_name = 'clip';
  workflow.nodes[2].widgets_values = { width: 512, height: 512, batch_size: 1 };
  workflow.nodes[2].pos = { '0': 473, '1': 609 };
  workflow.links[4][2] = '1';
  workflow.links[0][5] = ['MODEL'];
  workflow.extra.frontendVersion = '1.30.0';
  workflow.models = [{ name: 'v1-5-pruned-emaonly.safetensors', url: 'https://example.org/m', directory: 'checkpoints' }];
  assert.deepStrictEqual(checkUiWorkflow04(workflow), []);
  workflow.links[4][2] = 'one';
  assert.deepStrictEqual(lines(checkUiWorkflow04(workflow)), ['links[4][2]: must be a whole number (got "one")']);
});

test('UI 1: link objects missing fields and a missing state are reported', () => {
  const workflow = fixture('default-workflow.ui-v1.json');
  delete workflow.state;
  delete workflow.links[0].origin_slot;
  workflow.links[1].target_id = null;
  assert.deepStrictEqual(lines(checkUiWorkflow1(workflow)), [
    'state: is required',
    'links[0].origin_slot: is required',
    'links[1].target_id: must be integer or string (got null)',
  ]);
});

test('UI 1: subgraph definitions are checked too', () => {
  const workflow = fixture('default-workflow.ui-v1.json');
  workflow.definitions = { subgraphs: [{ id: 'abc', nodes: [{ id: 1 }] }] };
  assert.deepStrictEqual(lines(checkUiWorkflow1(workflow)), ['definitions.subgraphs[0].nodes[0].type: is required']);
});
