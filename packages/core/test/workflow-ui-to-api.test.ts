import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { checkUiWorkflow1, uiToApi, widgetLayout, type UiNode, type UiWorkflow04, type UiWorkflow1 } from '../src/index.ts';
import { KSampler, WidgetOrderProbe, baseNodeRegistry } from './fixtures/base-nodes.ts';
import { expectedSubgraphPrompt, SUBGRAPH_ID, wrapPositivePromptInSubgraph } from './fixtures/subgraph-workflow.ts';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as T;
const defaultUi = () => fixture<UiWorkflow04>('default-workflow.ui.json');
const defaultApi = () => fixture<Record<string, { inputs: Record<string, unknown> }>>('default-workflow.api.json');
const registry = baseNodeRegistry();

function node(workflow: UiWorkflow04, id: number): UiNode {
  const found = workflow.nodes.find((n) => n.id === id);
  assert.ok(found, `fixture has node ${id}`);
  return found;
}

/** Points existing link `linkId` at a new origin, keeping its target. */
function relink(workflow: UiWorkflow04, linkId: number, originId: number, originSlot: number): void {
  const link = workflow.links.find((l) => l[0] === linkId);
  assert.ok(link);
  link[1] = originId;
  link[2] = originSlot;
}

test("ComfyUI's default UI workflow converts to exactly the API prompt ComfyUI sends", () => {
  const { prompt, warnings } = uiToApi(defaultUi(), registry);
  assert.deepStrictEqual(prompt, defaultApi());
  assert.deepStrictEqual(warnings, []);
});

test('the same graph saved as version 1 (link objects, state) converts to the same prompt', () => {
  const { prompt, warnings } = uiToApi(fixture<UiWorkflow1>('default-workflow.ui-v1.json'), registry);
  assert.deepStrictEqual(prompt, defaultApi());
  assert.deepStrictEqual(warnings, []);
});

test('a lookup function works in place of a registry', () => {
  const { prompt } = uiToApi(defaultUi(), (type) => registry.get(type));
  assert.deepStrictEqual(prompt, defaultApi());
});

test('a muted node is left out and links from it are dropped, with a warning naming it', () => {
  const workflow = defaultUi();
  node(workflow, 5).mode = 2;
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.equal(prompt['5'], undefined);
  assert.equal('latent_image' in prompt['3']!.inputs, false, 'the consumer is left with a missing input');
  assert.deepStrictEqual(prompt['3']!.inputs.model, ['4', 0]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /node 3 \(KSampler\) input "latent_image": node 5 \(EmptyLatentImage\) is muted/);
});

test('a bypassed node is left out and its consumers are linked through it by type', () => {
  // Bypassing the KSampler: VAEDecode wants LATENT; the sampler's same-slot input (model) is MODEL, so the
  // first LATENT input (latent_image, slot 3) is passed through.
  const workflow = defaultUi();
  node(workflow, 3).mode = 4;
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.equal(prompt['3'], undefined);
  assert.deepStrictEqual(prompt['8']!.inputs.samples, ['5', 0]);
  assert.deepStrictEqual(warnings, []);
});

test('a bypassed node passes its same-slot input first (LoRA between checkpoint and consumers)', () => {
  const workflow = defaultUi();
  workflow.nodes.push({
    id: 10,
    type: 'LoraLoader',
    order: 1,
    mode: 4,
    inputs: [
      { name: 'model', type: 'MODEL', link: 10 },
      { name: 'clip', type: 'CLIP', link: 11 },
    ],
    outputs: [
      { name: 'MODEL', type: 'MODEL', links: [1] },
      { name: 'CLIP', type: 'CLIP', links: [3, 5] },
    ],
    widgets_values: ['detail.safetensors', 1, 1],
  });
  workflow.links.push([10, 4, 0, 10, 0, 'MODEL'], [11, 4, 1, 10, 1, 'CLIP']);
  relink(workflow, 1, 10, 0);
  relink(workflow, 3, 10, 1);
  relink(workflow, 5, 10, 1);
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt, defaultApi());
  assert.deepStrictEqual(warnings, []);
});

test('a bypassed node without an input of the wanted type leaves the consumer unconnected and says why', () => {
  const workflow = defaultUi();
  node(workflow, 8).mode = 4; // VAEDecode: inputs LATENT and VAE, SaveImage wants IMAGE
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.equal(prompt['8'], undefined);
  assert.deepStrictEqual(prompt['9']!.inputs, { filename_prefix: 'ComfyUI' });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /node 9 \(SaveImage\) input "images": the bypassed node 8 \(VAEDecode\) has no input of type IMAGE/);
});

test('links are followed through a chain of Reroute nodes, which are not emitted', () => {
  const workflow = defaultUi();
  const reroute = (id: number, inLink: number, outLinks: number[]): UiNode => ({
    id,
    type: 'Reroute',
    order: 1,
    mode: 0,
    inputs: [{ name: '', type: '*', link: inLink }],
    outputs: [{ name: '', type: 'CLIP', links: outLinks }],
    properties: { showOutputText: false, horizontal: false },
  });
  workflow.nodes.push(reroute(10, 10, [11]), reroute(11, 11, [5]));
  workflow.links.push([10, 4, 1, 10, 0, 'CLIP'], [11, 10, 0, 11, 0, 'CLIP']);
  relink(workflow, 5, 11, 0);
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt, defaultApi());
  assert.deepStrictEqual(warnings, []);
});

test("a PrimitiveNode's value becomes the constant of the converted widget it feeds", () => {
  const workflow = defaultUi();
  const sampler = node(workflow, 3);
  sampler.inputs!.push({ name: 'steps', type: 'INT', link: 10, widget: { name: 'steps' } });
  workflow.nodes.push({
    id: 10,
    type: 'PrimitiveNode',
    order: 0,
    mode: 0,
    outputs: [{ name: 'INT', type: 'INT', links: [10], widget: { name: 'steps' } }],
    title: 'steps',
    properties: { 'Run widget replace on values': false },
    widgets_values: [33, 'fixed'],
  });
  workflow.links.push([10, 10, 0, 3, 4, 'INT']);
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.equal(prompt['10'], undefined);
  assert.equal(prompt['3']!.inputs.steps, 33);
  assert.equal(prompt['3']!.inputs.cfg, 8);
  assert.deepStrictEqual(warnings, []);
});

test("a linked seed widget wins over its value, and the seed's control value is still skipped", () => {
  for (const widgets_values of [
    [156680208700286, 'randomize', 20, 8, 'euler', 'normal', 1], // as the editor saves it
    [156680208700286, 20, 8, 'euler', 'normal', 1], // writers that leave the control value out
    [156680208700286, true, 20, 8, 'euler', 'normal', 1], // very old saves stored `true` for "randomize"
  ]) {
    const workflow = defaultUi();
    const sampler = node(workflow, 3);
    sampler.widgets_values = widgets_values;
    sampler.inputs!.push({ name: 'seed', type: 'INT', link: 10, widget: { name: 'seed' } });
    workflow.nodes.push({
      id: 10,
      type: 'PrimitiveInt',
      order: 0,
      mode: 0,
      outputs: [{ name: 'INT', type: 'INT', links: [10] }],
      widgets_values: [7],
    });
    workflow.links.push([10, 10, 0, 3, 4, 'INT']);
    const { prompt, warnings } = uiToApi(workflow, registry);
    const expected = defaultApi();
    expected['3']!.inputs.seed = ['10', 0];
    expected['10'] = { inputs: { value: 7 }, class_type: 'PrimitiveInt', _meta: { title: 'Int' } } as never;
    assert.deepStrictEqual(prompt, expected, `widgets_values ${JSON.stringify(widgets_values)}`);
    assert.deepStrictEqual(warnings, []);
  }
});

test('an unknown node type is still converted (links only) and reported', () => {
  const workflow = defaultUi();
  workflow.nodes.push({
    id: 10,
    type: 'FancyUpscaler',
    order: 6,
    mode: 0,
    inputs: [{ name: 'image', type: 'IMAGE', link: 10 }],
    outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [9] }],
    widgets_values: [2, 'lanczos'],
  });
  workflow.links.push([10, 8, 0, 10, 0, 'IMAGE']);
  relink(workflow, 9, 10, 0);
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt['10'], { inputs: { image: ['8', 0] }, class_type: 'FancyUpscaler', _meta: { title: 'FancyUpscaler' } });
  assert.deepStrictEqual(prompt['9']!.inputs.images, ['10', 0]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /node 10 \(FancyUpscaler\): unknown node type "FancyUpscaler"; its 2 widget values could not be matched/);
});

test('notes are ignored, and a renamed node keeps its title in _meta', () => {
  const workflow = defaultUi();
  node(workflow, 6).title = 'Positive';
  workflow.nodes.push(
    { id: 10, type: 'Note', order: 7, mode: 0, properties: { text: '' }, widgets_values: ['remember the seed'] },
    { id: 11, type: 'MarkdownNote', order: 8, mode: 0, properties: {}, widgets_values: ['# hi'] },
  );
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.deepStrictEqual(Object.keys(prompt).sort(), ['3', '4', '5', '6', '7', '8', '9']);
  assert.equal(prompt['6']!._meta?.title, 'Positive');
  assert.deepStrictEqual(warnings, []);
});

test('a missing trailing widget value is filled from the definition default, with a warning', () => {
  const workflow = defaultUi();
  node(workflow, 5).widgets_values = [768, 512];
  const { prompt, warnings } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt['5']!.inputs, { width: 768, height: 512, batch_size: 1 });
  assert.deepStrictEqual(warnings, [
    'node 5 (EmptyLatentImage): the workflow has no value for widget "batch_size"; using its default 1',
  ]);
});

test('widget order: required before optional, sockets and forceInput inputs take no value; lists are wrapped', () => {
  assert.deepStrictEqual(
    widgetLayout(WidgetOrderProbe).map((w) => w.name),
    ['strength', 'enabled', 'extra'],
  );
  assert.deepStrictEqual(
    widgetLayout(KSampler).map((w) => [w.name, w.extraValues]),
    [['seed', 1], ['steps', 0], ['cfg', 0], ['sampler_name', 0], ['scheduler', 0], ['denoise', 0]],
  );
  const workflow = defaultUi();
  workflow.nodes.push({
    id: 10,
    type: 'WidgetOrderProbe',
    order: 7,
    mode: 0,
    inputs: [{ name: 'image', type: 'IMAGE', link: 10 }],
    widgets_values: [0.25, false, ['a', 'b']],
  });
  workflow.links.push([10, 8, 0, 10, 0, 'IMAGE']);
  const { prompt } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt['10']!.inputs, {
    strength: 0.25,
    enabled: false,
    extra: { __value__: ['a', 'b'] },
    image: ['8', 0],
  });
});

test('widget values saved as an object are matched by name', () => {
  const workflow = defaultUi();
  node(workflow, 5).widgets_values = { height: 640, width: 448, batch_size: 2 };
  const { prompt } = uiToApi(workflow, registry);
  assert.deepStrictEqual(prompt['5']!.inputs, { width: 448, height: 640, batch_size: 2 });
});

test('a subgraph instance is expanded into its inner nodes with execution ids "<instance>:<inner>"', () => {
  const workflow = fixture<UiWorkflow1>('default-workflow.ui-v1.json');
  // Replace the positive CLIPTextEncode (node 6) by an instance of a subgraph that wraps one.
  wrapPositivePromptInSubgraph(workflow);
  assert.deepStrictEqual(checkUiWorkflow1(workflow), []);
  const { prompt, warnings } = uiToApi(workflow, registry);
  const expected = expectedSubgraphPrompt(defaultApi() as Record<string, unknown>);
  assert.deepStrictEqual(prompt, expected);
  assert.deepStrictEqual(warnings, []);
});

test('a muted subgraph instance leaves its inner nodes out; a missing definition or an old group node is explained', () => {
  const workflow = fixture<UiWorkflow1>('default-workflow.ui-v1.json');
  wrapPositivePromptInSubgraph(workflow);
  const positive = workflow.nodes.find((n) => n.id === 6)!;
  positive.mode = 2;
  let { prompt, warnings } = uiToApi(workflow, registry);
  assert.equal(prompt['6'], undefined);
  assert.equal(prompt['6:1'], undefined);
  assert.equal('positive' in prompt['3']!.inputs, false);
  assert.deepStrictEqual(warnings, [
    'node 3 (KSampler) input "positive": node 6:1 (CLIPTextEncode) is in a muted subgraph, so the input is left unconnected',
  ]);

  delete workflow.definitions;
  positive.mode = 0;
  node(workflow as unknown as UiWorkflow04, 7).type = 'workflow>Prompt pair';
  ({ prompt, warnings } = uiToApi(workflow, registry));
  assert.equal(prompt['6']!.class_type, SUBGRAPH_ID);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /node 6 .*looks like a subgraph instance whose definition is missing/);
  assert.match(warnings[1]!, /node 7 \(workflow>Prompt pair\).*group node of the old editor; ungroup it/);
});
