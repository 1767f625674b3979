import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NodeInputError,
  NodeRegistry,
  boolean,
  combo,
  defineNode,
  float,
  int,
  isTypeCompatible,
  typesCompatible,
  socket,
  string,
  validatePrompt,
  MAX_DEPENDENT_OUTPUTS,
  checkNodeDefinition,
  objectInfo,
  type ApiPrompt,
  type NodeError,
  type ValidationResult,
} from '../src/index.ts';

/** These stand-in nodes are only validated / described, never executed. */
const notRunHere = (): never => {
  throw new Error('this test node is not meant to run');
};

// --- a small node set in the shape of ComfyUI's default workflow ---------------------------------------------

const checkpoints = ['tiny-sd', 'sd15/dreamshaper-onnx'];
const SAMPLERS = ['euler', 'euler_ancestral', 'heun', 'dpm_2', 'lms', 'ddim', 'uni_pc', 'lcm', 'dpmpp_2m', 'ddpm'];
const validateCalls: Array<Record<string, unknown>> = [];

const nodes = [
  defineNode({
    id: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: combo(() => checkpoints) },
    outputs: [{ type: 'MODEL' }, { type: 'CLIP' }, { type: 'VAE' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'CLIPTextEncode',
    inputs: { text: string({ multiline: true }), clip: socket('CLIP') },
    outputs: [{ type: 'CONDITIONING' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'EmptyLatentImage',
    inputs: {
      width: int({ default: 512, min: 16, max: 4096, step: 8 }),
      height: int({ default: 512, min: 16, max: 4096, step: 8 }),
      batch_size: int({ default: 1, min: 1, max: 64 }),
    },
    outputs: [{ type: 'LATENT' }],
    // Widths that are not a multiple of 8 cannot be encoded by the VAE.
    validate(inputs) {
      validateCalls.push({ ...inputs });
      if (inputs.width !== undefined && inputs.width % 8 !== 0) return `width ${inputs.width} is not a multiple of 8`;
      if (inputs.height !== undefined && inputs.height % 8 !== 0) throw new NodeInputError(`height ${inputs.height} is not a multiple of 8`, 'height');
      if (inputs.batch_size === 13) throw new TypeError("Cannot read properties of undefined (reading 'x')");
      return true;
    },
    execute: notRunHere,
  }),
  defineNode({
    id: 'KSampler',
    inputs: {
      model: socket('MODEL'),
      seed: int({ default: 0, min: 0, max: 0xffffffffffffffff, controlAfterGenerate: true }),
      steps: int({ default: 20, min: 1, max: 10000 }),
      cfg: float({ default: 8, min: 0, max: 100, step: 0.1, round: 0.01 }),
      sampler_name: combo(SAMPLERS),
      scheduler: combo(['normal', 'karras', 'exponential']),
      positive: socket('CONDITIONING'),
      negative: socket('CONDITIONING'),
      latent_image: socket('LATENT'),
      denoise: float({ default: 1, min: 0, max: 1, step: 0.01 }),
    },
    outputs: [{ type: 'LATENT' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'VAEDecode',
    inputs: { samples: socket('LATENT'), vae: socket('VAE') },
    outputs: [{ type: 'IMAGE' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'SaveImage',
    inputs: { images: socket('IMAGE'), filename_prefix: string({ default: 'ComfyUI' }) },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
    outputs: [],
    outputNode: true,
    execute: () => ({ ui: { images: [] } }),
  }),
  defineNode({
    id: 'PreviewImage',
    inputs: { images: socket('IMAGE') },
    hidden: { prompt: 'PROMPT' },
    outputs: [],
    outputNode: true,
    execute: () => ({ ui: { images: [] } }),
  }),
  // For links, unions, wildcards, lazy/optional inputs and constants of every kind.
  defineNode({
    id: 'Probe',
    inputs: {
      anything: socket('*', { optional: true }),
      number: socket('INT,FLOAT', { optional: true }),
      count: int({ forceInput: true, optional: true }),
      flag: boolean({ optional: true }),
      label: string({ optional: true }),
      gate: float({ lazy: true, optional: true }),
      must: socket('LATENT', { lazy: true }),
      choice: combo(['a', 'b'], { optional: true }),
    },
    hidden: { id: 'UNIQUE_ID' },
    outputs: [{ type: 'IMAGE' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'Numbers',
    inputs: {},
    outputs: [{ type: 'INT' }, { type: 'INT,FLOAT', name: 'either' }, { type: 'STRING' }, { type: '*', name: 'any' }],
    execute: () => [1, 2, '3', null],
  }),
  defineNode({
    id: 'Relay',
    inputs: { value: socket('*') },
    outputs: [{ type: '*' }],
    execute: (inputs) => [inputs.value],
  }),
  defineNode({
    id: 'UnreadableList',
    inputs: {
      name: combo(() => {
        throw new Error('EACCES: models/private');
      }),
    },
    outputs: [{ type: 'IMAGE' }],
    execute: notRunHere,
  }),
  defineNode({
    id: 'ModelList',
    inputs: { name: combo(Array.from({ length: 30 }, (_, i) => `model-${i}.onnx`)) },
    outputs: [{ type: 'IMAGE' }],
    execute: notRunHere,
  }),
];

function makeRegistry(): NodeRegistry {
  const registry = new NodeRegistry();
  for (const node of nodes) registry.register(node);
  return registry;
}
const registry = makeRegistry();

/** ComfyUI's default text-to-image workflow in API format (ids as the ComfyUI default graph). */
function defaultPrompt(): ApiPrompt {
  return {
    '3': {
      class_type: 'KSampler',
      inputs: {
        seed: 156680208700286,
        steps: 20,
        cfg: 8,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
      },
    },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } },
  };
}

/** Validates `prompt` and returns the single error of node `id`, failing if there is not exactly one. */
async function onlyErrorOf(prompt: ApiPrompt, id: string): Promise<{ error: NodeError; result: ValidationResult }> {
  const result = await validatePrompt(prompt, registry);
  assert.deepEqual(Object.keys(result.nodeErrors), [id], JSON.stringify(result.nodeErrors, null, 2));
  const errors = result.nodeErrors[id]!.errors;
  assert.equal(errors.length, 1, JSON.stringify(errors, null, 2));
  return { error: errors[0]!, result };
}

// --- a valid prompt -------------------------------------------------------------------------------------------

test('the default workflow is valid: one output to run, no errors, an equal copy of the prompt', async () => {
  const prompt = defaultPrompt();
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, true);
  assert.equal(result.error, undefined);
  assert.deepEqual(result.nodeErrors, {});
  assert.deepEqual(result.outputs, ['9']);
  assert.deepEqual(result.prompt, defaultPrompt());
  assert.notEqual(result.prompt, prompt);
  assert.notEqual(result.prompt['3']!.inputs, prompt['3']!.inputs);
});

// --- prompt-level errors ---------------------------------------------------------------------------------------

test('a node without class_type rejects the prompt (missing_node_type, as ComfyUI), naming the node', async () => {
  const prompt = defaultPrompt() as Record<string, unknown>;
  prompt['12'] = { inputs: {}, _meta: { title: 'My Loader' } };
  const result = await validatePrompt(prompt as ApiPrompt, registry);
  assert.equal(result.ok, false);
  assert.equal(result.error!.type, 'missing_node_type');
  assert.match(result.error!.message, /Node 12 \("My Loader"\) has no class_type/);
  assert.equal(result.error!.details, "Node ID '#12'");
  assert.deepEqual(result.error!.extra_info, { node_id: '12', class_type: null, node_title: 'My Loader' });
  assert.deepEqual(result.outputs, []);
  assert.deepEqual(result.nodeErrors, {});
});

test('an unknown class rejects the prompt, naming the node id, the class and any other unknown node', async () => {
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'UltimateSDUpscale', inputs: { image: ['8', 0] } };
  prompt['11'] = { class_type: 'FaceDetailer', inputs: {} };
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, false);
  assert.equal(result.error!.type, 'missing_node_type');
  assert.match(result.error!.message, /Node 10 has type "UltimateSDUpscale", which no loaded node pack defines/);
  assert.match(result.error!.message, /Install the pack/);
  assert.match(result.error!.message, /Also unknown: node 11 \("FaceDetailer"\)/);
  assert.deepEqual(result.error!.extra_info, { node_id: '10', class_type: 'UltimateSDUpscale', node_title: 'UltimateSDUpscale' });
});

test('a node that is not an object, or a prompt that is not an object, is an invalid_prompt', async () => {
  const prompt = defaultPrompt() as Record<string, unknown>;
  prompt['10'] = ['KSampler'];
  const result = await validatePrompt(prompt as ApiPrompt, registry);
  assert.equal(result.error!.type, 'invalid_prompt');
  assert.match(result.error!.message, /Node 10 is an array, not a node object/);
  assert.deepEqual(result.error!.extra_info, { node_id: '10' });

  const notAPrompt = await validatePrompt([] as unknown as ApiPrompt, registry);
  assert.equal(notAPrompt.ok, false);
  assert.equal(notAPrompt.error!.type, 'invalid_prompt');
  assert.match(notAPrompt.error!.message, /must be a JSON object mapping node ids to nodes/);
});

test('a prompt without output nodes is prompt_no_outputs, with a message saying what to add', async () => {
  const prompt = defaultPrompt();
  delete prompt['9'];
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, false);
  assert.equal(result.error!.type, 'prompt_no_outputs');
  assert.equal(result.error!.message, 'Prompt has no output nodes (like SaveImage or PreviewImage); add one');

  // Targets that are not output nodes leave nothing to run either.
  const targeted = await validatePrompt(defaultPrompt(), registry, { outputs: ['8', '42'] });
  assert.equal(targeted.error!.type, 'prompt_no_outputs');
  assert.match(targeted.error!.message, /None of the requested outputs \(8, 42\) is an output node/);
  assert.deepEqual(targeted.error!.extra_info, { partial_execution_targets: ['8', '42'] });
});

test('partial execution targets select which outputs are validated and run', async () => {
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'PreviewImage', inputs: { images: ['8', 0] } };
  prompt['11'] = { class_type: 'PreviewImage', inputs: { images: ['99', 0] } }; // broken, but not a target
  const result = await validatePrompt(prompt, registry, { outputs: ['10'] });
  assert.equal(result.ok, true);
  assert.deepEqual(result.outputs, ['10']);
  assert.deepEqual(result.nodeErrors, {});
  const all = await validatePrompt(prompt, registry);
  assert.deepEqual(all.outputs, ['9', '10']);
  assert.deepEqual(Object.keys(all.nodeErrors), ['11']);
});

// --- per-input errors ------------------------------------------------------------------------------------------

test('a missing required input is required_input_missing', async () => {
  const prompt = defaultPrompt();
  delete prompt['3']!.inputs['model'];
  const { error, result } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'required_input_missing');
  assert.equal(error.message, 'Required input "model" is not connected; link it to a MODEL output');
  assert.equal(error.details, 'model');
  assert.deepEqual(error.extra_info, { input_name: 'model' });
  assert.equal(result.nodeErrors['3']!.class_type, 'KSampler');
  assert.deepEqual(result.nodeErrors['3']!.dependent_outputs, ['9']);

  delete prompt['3']!.inputs['model'];
  prompt['3']!.inputs['model'] = ['4', 0];
  delete prompt['3']!.inputs['steps'];
  const widget = await onlyErrorOf(prompt, '3');
  assert.equal(widget.error.message, 'Required input "steps" is missing; give it a value or link it');
});

test('a link to a missing node, to a slot past the outputs, or a malformed link is bad_linked_input', async () => {
  const toMissing = defaultPrompt();
  toMissing['3']!.inputs['model'] = ['12', 0];
  let { error } = await onlyErrorOf(toMissing, '3');
  assert.equal(error.type, 'bad_linked_input');
  assert.equal(error.message, 'Input "model" is linked to node 12, which does not exist in the prompt');
  assert.equal(error.extra_info.input_name, 'model');
  assert.deepEqual(error.extra_info.received_value, ['12', 0]);
  assert.deepEqual(error.extra_info.input_config, ['MODEL']);

  const pastSlots = defaultPrompt();
  pastSlots['3']!.inputs['model'] = ['4', 3];
  ({ error } = await onlyErrorOf(pastSlots, '3'));
  assert.equal(error.type, 'bad_linked_input');
  assert.equal(
    error.message,
    'Input "model" is linked to output 3 of CheckpointLoaderSimple (node 4), which has only 3 outputs (0-2)',
  );

  for (const malformed of [['4'], ['4', 0, 1], ['4', 'MODEL'], ['4', 0.5]]) {
    const prompt = defaultPrompt();
    prompt['3']!.inputs['model'] = malformed;
    ({ error } = await onlyErrorOf(prompt, '3'));
    assert.equal(error.type, 'bad_linked_input', JSON.stringify(malformed));
    assert.match(error.message, /has a malformed link .*a link is \[source node id, output index\]/);
    assert.deepEqual(error.extra_info.received_value, malformed);
  }
});

test('a link from an output of another type is return_type_mismatch, naming both types and the source', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['model'] = ['4', 1];
  const { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'return_type_mismatch');
  assert.equal(error.message, 'Input "model" expects MODEL, but node 4 output 1 ("CLIP") is CLIP');
  assert.equal(error.details, 'model, received_type(CLIP) mismatch input_type(MODEL)');
  assert.equal(error.extra_info.received_type, 'CLIP');
  assert.deepEqual(error.extra_info.linked_node, ['4', 1]);
  assert.deepEqual(error.extra_info.input_config, ['MODEL']);
});

test('types match like ComfyUI: * accepts anything, comma-separated unions match when they overlap', async () => {
  assert.equal(isTypeCompatible('MODEL', '*'), true);
  assert.equal(isTypeCompatible('*', 'LATENT'), true);
  assert.equal(isTypeCompatible('INT', 'INT,FLOAT'), true);
  assert.equal(isTypeCompatible('FLOAT, STRING', 'INT,FLOAT'), true);
  assert.equal(isTypeCompatible('STRING', 'INT,FLOAT'), false);
  assert.equal(isTypeCompatible('MODEL', 'CLIP'), false);
  assert.equal(isTypeCompatible('MODEL', 'model'), false, 'case-sensitive, as ComfyUI');
  assert.equal(isTypeCompatible('INT, FLOAT', 'FLOAT'), true, 'spaces after commas ignored');
  // The editor's check (typesCompatible, what litegraph is given) says the same for every pair of names.
  const names = ['MODEL', 'model', 'INT, FLOAT', 'INT,FLOAT', 'FLOAT', '*', 'IMAGE', 'LATENT,IMAGE'];
  for (const a of names) for (const b of names) assert.equal(typesCompatible(a, b), isTypeCompatible(a, b), `${a} -> ${b}`);

  const prompt = defaultPrompt();
  prompt['20'] = { class_type: 'Numbers', inputs: {} };
  prompt['21'] = {
    class_type: 'Probe',
    inputs: {
      anything: ['4', 0], // MODEL into *
      number: ['20', 0], // INT into INT,FLOAT
      count: ['20', 1], // INT,FLOAT into a forceInput INT widget
      label: ['20', 3], // * into STRING
      must: ['5', 0],
    },
  };
  prompt['22'] = { class_type: 'PreviewImage', inputs: { images: ['21', 0] } };
  const ok = await validatePrompt(prompt, registry);
  assert.deepEqual(ok.nodeErrors, {});
  assert.deepEqual(ok.outputs, ['9', '22']);

  prompt['21']!.inputs['number'] = ['20', 2]; // STRING into INT,FLOAT
  const { error } = await onlyErrorOf(prompt, '21');
  assert.equal(error.type, 'return_type_mismatch');
  assert.equal(error.message, 'Input "number" expects INT,FLOAT, but node 20 output 2 ("STRING") is STRING');
});

test('a constant of the wrong type is invalid_input_type, with the received value', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['steps'] = 'twenty';
  let { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'invalid_input_type');
  assert.equal(error.message, 'Input "steps" is "twenty", which cannot be converted to an integer');
  assert.equal(error.extra_info.input_name, 'steps');
  assert.equal(error.extra_info.received_value, 'twenty');
  assert.deepEqual(error.extra_info.input_config, ['INT', { default: 20, min: 1, max: 10000 }]);

  // "20.5" is not an integer literal: Python's int("20.5") fails too.
  prompt['3']!.inputs['steps'] = '20.5';
  ({ error } = await onlyErrorOf(prompt, '3'));
  assert.equal(error.type, 'invalid_input_type');

  const constantForSocket = defaultPrompt();
  constantForSocket['3']!.inputs['model'] = 'tiny-sd';
  ({ error } = await onlyErrorOf(constantForSocket, '3'));
  assert.equal(error.type, 'invalid_input_type');
  assert.equal(error.message, 'Input "model" needs a link from a MODEL output, but got the constant "tiny-sd"');

  const nullText = defaultPrompt();
  nullText['6']!.inputs['text'] = null;
  ({ error } = await onlyErrorOf(nullText, '6'));
  assert.equal(error.type, 'invalid_input_type');
  assert.equal(error.message, 'Input "text" is null, not a STRING value');

  const badBoolean = defaultPrompt();
  badBoolean['21'] = { class_type: 'Probe', inputs: { flag: 'yes', must: ['5', 0] } };
  badBoolean['22'] = { class_type: 'PreviewImage', inputs: { images: ['21', 0] } };
  ({ error } = await onlyErrorOf(badBoolean, '21'));
  assert.equal(error.type, 'invalid_input_type');
  assert.equal(error.message, 'Input "flag" is "yes", not a boolean (use true or false)');
});

test('constants are converted like ComfyUI\'s int()/float()/str(), and the executor gets the converted prompt', async () => {
  const prompt = defaultPrompt();
  Object.assign(prompt['3']!.inputs, { steps: '25', seed: 42.9, cfg: ' 7.5 ', denoise: '1e-1' });
  prompt['5']!.inputs['batch_size'] = true; // Python: int(True) == 1
  prompt['6']!.inputs['text'] = 1234;
  prompt['3']!.inputs['model'] = [4, 0]; // numeric node id in a link
  prompt['21'] = {
    class_type: 'Probe',
    inputs: { flag: 'False', count: '1_000', label: false, must: ['5', 0], anything: { __value__: [1, 2, 3] } },
  };
  prompt['22'] = { class_type: 'PreviewImage', inputs: { images: ['21', 0] } };
  const before = JSON.stringify(prompt);
  const result = await validatePrompt(prompt, registry);
  assert.deepEqual(result.nodeErrors, {});
  assert.equal(result.ok, true);
  const inputs = result.prompt['3']!.inputs;
  assert.equal(inputs['steps'], 25);
  assert.equal(inputs['seed'], 42); // truncated, as Python's int(42.9)
  assert.equal(inputs['cfg'], 7.5);
  assert.equal(inputs['denoise'], 0.1);
  assert.deepEqual(inputs['model'], ['4', 0]);
  assert.equal(result.prompt['5']!.inputs['batch_size'], 1);
  assert.equal(result.prompt['6']!.inputs['text'], '1234');
  assert.deepEqual(result.prompt['21']!.inputs, {
    flag: false,
    count: 1000,
    label: 'False', // Python's str(False)
    must: ['5', 0],
    anything: [1, 2, 3], // {"__value__": [...]} unwrapped, as ComfyUI does for list constants
  });
  // The caller's prompt is left as it was.
  assert.equal(JSON.stringify(prompt), before);
});

test('FLOAT round and INT step are not enforced on API values (ComfyUI applies them in the editor only)', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['cfg'] = 7.123456;
  prompt['5']!.inputs['batch_size'] = 3;
  const result = await validatePrompt(prompt, registry);
  assert.deepEqual(result.nodeErrors, {});
  assert.equal(result.prompt['3']!.inputs['cfg'], 7.123456);
});

test('a number below the minimum is value_smaller_than_min', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['steps'] = 0;
  const { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'value_smaller_than_min');
  assert.equal(error.message, 'Input "steps" is 0, below the minimum 1');
  assert.equal(error.details, 'steps');
  assert.deepEqual(error.extra_info, {
    input_name: 'steps',
    input_config: ['INT', { default: 20, min: 1, max: 10000 }],
    received_value: 0,
  });
});

test('a number above the maximum is value_bigger_than_max (checked after conversion)', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['cfg'] = '120';
  const { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'value_bigger_than_max');
  assert.equal(error.message, 'Input "cfg" is 120, above the maximum 100');
  assert.equal(error.extra_info.received_value, 120);
  assert.deepEqual(error.extra_info.input_config, ['FLOAT', { default: 8, min: 0, max: 100, step: 0.1, round: 0.01 }]);
});

test('a combo value outside its list is value_not_in_list, listing a few allowed values', async () => {
  const prompt = defaultPrompt();
  prompt['3']!.inputs['sampler_name'] = 'dpmpp_sde_gpu';
  let { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'value_not_in_list');
  assert.equal(
    error.message,
    'Input "sampler_name" is "dpmpp_sde_gpu", which is not one of "euler", "euler_ancestral", "heun", "dpm_2", ' +
      '"lms", "ddim", "uni_pc", "lcm", ... (10 in all)',
  );
  assert.equal(error.extra_info.received_value, 'dpmpp_sde_gpu');
  assert.deepEqual(error.extra_info.input_config, [SAMPLERS]);
  assert.match(error.details, /^sampler_name: "dpmpp_sde_gpu" not in \["euler", /);

  // A near miss is suggested: another case, or the same file in a subfolder.
  prompt['3']!.inputs['sampler_name'] = 'Euler';
  ({ error } = await onlyErrorOf(prompt, '3'));
  assert.match(error.message, /; did you mean "euler"\?$/);
  const loader = defaultPrompt();
  loader['4']!.inputs['ckpt_name'] = 'dreamshaper-onnx';
  ({ error } = await onlyErrorOf(loader, '4'));
  assert.equal(
    error.message,
    'Input "ckpt_name" is "dreamshaper-onnx", which is not one of "tiny-sd", "sd15/dreamshaper-onnx"; did you mean "sd15/dreamshaper-onnx"?',
  );

  // Long lists (model folders) are not sent back whole, like ComfyUI.
  const long = defaultPrompt();
  long['30'] = { class_type: 'ModelList', inputs: { name: 'missing.onnx' } };
  long['31'] = { class_type: 'PreviewImage', inputs: { images: ['30', 0] } };
  ({ error } = await onlyErrorOf(long, '30'));
  assert.equal(error.extra_info.input_config, null);
  assert.equal(error.details, 'name: "missing.onnx" not in (list of length 30)');
});

test('combo options given as a function are read at validation time, so a newly added model is valid', async () => {
  const prompt = defaultPrompt();
  prompt['4']!.inputs['ckpt_name'] = 'just-downloaded';
  assert.equal((await validatePrompt(prompt, registry)).ok, false);
  checkpoints.push('just-downloaded');
  try {
    assert.equal((await validatePrompt(prompt, registry)).ok, true);
  } finally {
    checkpoints.pop();
  }
});

test('the validate hook gets the converted constants only; a message it returns is custom_validation_failed', async () => {
  const prompt = defaultPrompt();
  prompt['5']!.inputs['width'] = '500';
  validateCalls.length = 0;
  let { error } = await onlyErrorOf(prompt, '5');
  assert.equal(error.type, 'custom_validation_failed');
  assert.equal(error.message, 'width 500 is not a multiple of 8');
  assert.deepEqual(error.extra_info, {});
  assert.deepEqual(validateCalls, [{ width: 500, height: 512, batch_size: 1 }]);

  // Linked inputs are not passed (their values are unknown before running).
  const linked = defaultPrompt();
  linked['20'] = { class_type: 'Numbers', inputs: {} };
  linked['5']!.inputs['batch_size'] = ['20', 0];
  validateCalls.length = 0;
  assert.equal((await validatePrompt(linked, registry)).ok, true);
  assert.deepEqual(validateCalls, [{ width: 512, height: 512 }]);

  // A NodeInputError thrown on purpose is the same error type, naming its input.
  const thrown = defaultPrompt();
  thrown['5']!.inputs['height'] = 500;
  ({ error } = await onlyErrorOf(thrown, '5'));
  assert.equal(error.type, 'custom_validation_failed');
  assert.equal(error.message, 'height 500 is not a multiple of 8');
  assert.deepEqual(error.extra_info, { input_name: 'height' });

  // The hook is not called with values that already failed their own checks.
  const invalid = defaultPrompt();
  invalid['5']!.inputs['width'] = 'wide';
  validateCalls.length = 0;
  ({ error } = await onlyErrorOf(invalid, '5'));
  assert.equal(error.type, 'invalid_input_type');
  assert.deepEqual(validateCalls, []);
});

test('an unexpected exception in a validate hook is exception_during_validation, with the exception', async () => {
  const prompt = defaultPrompt();
  prompt['5']!.inputs['batch_size'] = 13;
  const { error } = await onlyErrorOf(prompt, '5');
  assert.equal(error.type, 'exception_during_validation');
  assert.match(error.message, /^Validation failed unexpectedly: the node's validate\(\) threw: Cannot read properties/);
  assert.equal(error.extra_info['exception_type'], 'TypeError');
  assert.ok(Array.isArray(error.extra_info['traceback']) && (error.extra_info['traceback'] as string[]).length > 0);
});

// --- graph-level behaviour -----------------------------------------------------------------------------------

test('a dependency cycle is dependency_cycle on each node of the cycle, naming the path', async () => {
  // Two samplers feeding each other's latent, in front of the decoder.
  const prompt = defaultPrompt();
  prompt['11'] = { class_type: 'KSampler', inputs: { ...prompt['3']!.inputs, latent_image: ['12', 0] } };
  prompt['12'] = { class_type: 'KSampler', inputs: { ...prompt['3']!.inputs, latent_image: ['11', 0] } };
  prompt['8']!.inputs['samples'] = ['12', 0];
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, false);
  assert.equal(result.error!.type, 'prompt_outputs_failed_validation');
  assert.deepEqual(Object.keys(result.nodeErrors), ['11', '12']);
  for (const id of ['11', '12']) {
    const [error] = result.nodeErrors[id]!.errors;
    assert.equal(error!.type, 'dependency_cycle');
    assert.match(error!.message, /^Dependency cycle: (11 \(KSampler\) -> 12 \(KSampler\) -> 11|12 \(KSampler\) -> 11 \(KSampler\) -> 12) \(KSampler\)\. /);
    assert.match(error!.message, /A node cannot wait for its own output; remove one of these links$/);
    assert.deepEqual(error!.extra_info, { node_id: id, cycle_nodes: ['11', '12'], cycle_size: 2 });
    assert.deepEqual(result.nodeErrors[id]!.dependent_outputs, ['9']);
  }

  // The path reads in data-flow order: "a -> b" means a's output feeds b.
  const three = defaultPrompt();
  three['20'] = { class_type: 'Relay', inputs: { value: ['22', 0] } };
  three['21'] = { class_type: 'Relay', inputs: { value: ['20', 0] } };
  three['22'] = { class_type: 'Relay', inputs: { value: ['21', 0] } };
  three['23'] = { class_type: 'PreviewImage', inputs: { images: ['22', 0] } };
  const threeResult = await validatePrompt(three, registry);
  assert.deepEqual(threeResult.outputs, ['9']);
  const rotations = ['20', '21', '22'].map((_, i, ids) => {
    const order = [...ids.slice(i), ...ids.slice(0, i), ids[i]!];
    return order.map((id) => `${id} (Relay)`).join(' -> ');
  });
  for (const id of ['20', '21', '22']) {
    const [error] = threeResult.nodeErrors[id]!.errors;
    assert.ok(rotations.includes(error!.details), error!.details);
    assert.deepEqual(threeResult.nodeErrors[id]!.dependent_outputs, ['23']);
  }

  // A node feeding itself.
  const self = defaultPrompt();
  self['3']!.inputs['latent_image'] = ['3', 0];
  const selfResult = await validatePrompt(self, registry);
  assert.equal(selfResult.nodeErrors['3']!.errors[0]!.details, '3 (KSampler) -> 3 (KSampler)');
});

test('a combo whose options function throws is exception_during_validation on that input', async () => {
  const prompt = defaultPrompt();
  prompt['30'] = { class_type: 'UnreadableList', inputs: { name: 'x' } };
  prompt['31'] = { class_type: 'PreviewImage', inputs: { images: ['30', 0] } };
  const { error } = await onlyErrorOf(prompt, '30');
  assert.equal(error.type, 'exception_during_validation');
  assert.equal(error.message, 'Validation failed unexpectedly: could not check input "name": EACCES: models/private');
  assert.equal(error.extra_info.input_name, 'name');
  assert.equal(error.extra_info['exception_message'], 'EACCES: models/private');
});

test('a chain of thousands of nodes validates without exhausting the stack', async () => {
  const prompt: ApiPrompt = { '0': { class_type: 'Numbers', inputs: {} } };
  const length = 10000;
  for (let i = 1; i <= length; i++) prompt[String(i)] = { class_type: 'Relay', inputs: { value: [String(i - 1), 0] } };
  prompt['out'] = { class_type: 'PreviewImage', inputs: { images: [String(length), 0] } };
  const result = await validatePrompt(prompt, registry);
  assert.deepEqual(result.outputs, ['out']);
  prompt['1']!.inputs['value'] = ['0', 9];
  const broken = await validatePrompt(prompt, registry);
  assert.equal(broken.ok, false);
  assert.deepEqual(Object.keys(broken.nodeErrors), ['1']);
});

test('partial acceptance: one broken output does not stop a valid one, and its errors are still reported', async () => {
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 1] } }; // CLIP as VAE
  prompt['11'] = { class_type: 'PreviewImage', inputs: { images: ['10', 0] } };
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, true);
  assert.equal(result.error, undefined);
  assert.deepEqual(result.outputs, ['9']);
  assert.deepEqual(Object.keys(result.nodeErrors), ['10']);
  assert.equal(result.nodeErrors['10']!.class_type, 'VAEDecode');
  assert.deepEqual(result.nodeErrors['10']!.dependent_outputs, ['11']);
  assert.equal(result.nodeErrors['10']!.errors[0]!.type, 'return_type_mismatch');
  // Nodes downstream of the error (11) carry no error of their own, like ComfyUI.
  assert.ok(!('11' in result.nodeErrors));
});

test('a node breaking several outputs is reported once, listing them; when all fail the prompt is rejected', async () => {
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'PreviewImage', inputs: { images: ['8', 0] } };
  prompt['3']!.inputs['steps'] = 0;
  prompt['3']!.inputs['scheduler'] = 'simple';
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, false);
  assert.deepEqual(result.outputs, []);
  assert.deepEqual(Object.keys(result.nodeErrors), ['3']);
  assert.deepEqual(result.nodeErrors['3']!.dependent_outputs, ['9', '10']);
  assert.deepEqual(
    result.nodeErrors['3']!.errors.map((e) => e.type),
    ['value_smaller_than_min', 'value_not_in_list'],
  );
  assert.equal(result.error!.type, 'prompt_outputs_failed_validation');
  assert.equal(
    result.error!.message,
    'Prompt outputs failed validation: none of the outputs (SaveImage (node 9), PreviewImage (node 10)) can run; ' +
      'fix the errors listed per node',
  );
  assert.equal(
    result.error!.details,
    'KSampler (node 3): Input "steps" is 0, below the minimum 1\n' +
      'KSampler (node 3): Input "scheduler" is "simple", which is not one of "normal", "karras", "exponential"',
  );
});

test('only ancestors of outputs are validated: a broken node feeding no output is ignored', async () => {
  const prompt = defaultPrompt();
  prompt['30'] = { class_type: 'KSampler', inputs: { steps: -5 } };
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, true);
  assert.deepEqual(result.nodeErrors, {});
});

test('optional inputs may be absent, hidden inputs are never required, a required lazy input must be linked', async () => {
  const prompt = defaultPrompt();
  prompt['21'] = { class_type: 'Probe', inputs: { must: ['5', 0] } };
  prompt['22'] = { class_type: 'PreviewImage', inputs: { images: ['21', 0] } };
  const result = await validatePrompt(prompt, registry);
  assert.deepEqual(result.nodeErrors, {});
  assert.deepEqual(result.outputs, ['9', '22']);

  delete prompt['21']!.inputs['must'];
  const { error } = await onlyErrorOf(prompt, '21');
  assert.equal(error.type, 'required_input_missing');
  assert.equal(error.extra_info.input_name, 'must');
});

test('a combo accepts a link only from a COMBO or * output, like ComfyUI', async () => {
  const prompt = defaultPrompt();
  prompt['20'] = { class_type: 'Numbers', inputs: {} };
  prompt['3']!.inputs['sampler_name'] = ['20', 3]; // '*'
  assert.deepEqual((await validatePrompt(prompt, registry)).nodeErrors, {});
  prompt['3']!.inputs['sampler_name'] = ['20', 2]; // STRING
  const { error } = await onlyErrorOf(prompt, '3');
  assert.equal(error.type, 'return_type_mismatch');
  assert.equal(error.extra_info.received_type, 'STRING');
});

// --- validate hooks that look upstream (ValidateContext.linked) ---------------------------------------------

test('a validate hook sees the nodes upstream with their converted constants, and only nodes without errors', async () => {
  const seen: Array<{ nodeId: string; source?: { id: string; classType: string; output: number; constants: Record<string, unknown> }; deeper?: string }> = [];
  const registry = new NodeRegistry();
  registry.register(
    defineNode({
      id: 'Size',
      inputs: { width: int({ default: 64, min: 16, max: 4096 }) },
      outputs: [{ type: 'SIZE' }, { type: 'SIZE' }],
      execute: notRunHere,
    }),
  );
  registry.register(
    defineNode({
      id: 'Pass',
      inputs: { size: socket('SIZE') },
      outputs: [{ type: 'SIZE' }],
      execute: notRunHere,
    }),
  );
  registry.register(
    defineNode({
      id: 'Use',
      outputNode: true,
      inputs: { size: socket('SIZE'), limit: int({ default: 100 }) },
      outputs: [],
      validate({ limit }, context) {
        const source = context.linked('size');
        const deeper = source?.linked('size');
        seen.push({ nodeId: context.nodeId, ...(source ? { source: { id: source.id, classType: source.classType, output: source.output, constants: { ...source.constants } } } : {}), ...(deeper ? { deeper: deeper.id } : {}) });
        const width = (deeper ?? source)?.constants.width;
        return typeof width === 'number' && width > limit! ? `the size upstream is ${width}, above ${limit}` : true;
      },
      execute: notRunHere,
    }),
  );

  // The upstream node's id sorts after the hook's node, and its constant arrives as a string: the hook still
  // sees it converted.
  const direct = await validatePrompt({ '1': { class_type: 'Use', inputs: { size: ['9', 1], limit: 100 } }, '9': { class_type: 'Size', inputs: { width: '200' } } }, registry);
  assert.deepEqual(seen.pop(), { nodeId: '1', source: { id: '9', classType: 'Size', output: 1, constants: { width: 200 } } });
  assert.equal(direct.nodeErrors['1']?.errors[0]?.type, 'custom_validation_failed');
  assert.equal(direct.nodeErrors['1']?.errors[0]?.message, 'the size upstream is 200, above 100');

  // Two hops up, through a node without constants.
  const chained = await validatePrompt(
    { '1': { class_type: 'Use', inputs: { size: ['2', 0], limit: 100 } }, '2': { class_type: 'Pass', inputs: { size: ['3', 0] } }, '3': { class_type: 'Size', inputs: { width: 50 } } },
    registry,
  );
  assert.equal(chained.ok, true);
  assert.deepEqual(seen.pop(), { nodeId: '1', source: { id: '2', classType: 'Pass', output: 0, constants: {} }, deeper: '3' });

  // Hooks run upstream first, whatever the ids: a node whose own hook failed is hidden from the ones below it.
  registry.register(
    defineNode({
      id: 'Check',
      inputs: { size: socket('SIZE') },
      outputs: [{ type: 'SIZE' }],
      validate: (_inputs, context) => ((context.linked('size')?.constants.width as number) > 1000 ? 'too wide to check' : true),
      execute: notRunHere,
    }),
  );
  const hidden = await validatePrompt(
    { '1': { class_type: 'Use', inputs: { size: ['7', 0], limit: 100 } }, '7': { class_type: 'Check', inputs: { size: ['9', 0] } }, '9': { class_type: 'Size', inputs: { width: 2000 } } },
    registry,
  );
  assert.deepEqual(Object.keys(hidden.nodeErrors), ['7']);
  assert.deepEqual(seen.pop(), { nodeId: '1' });

  // An upstream node with an error of its own is not shown: its values are not to be trusted.
  const broken = await validatePrompt({ '1': { class_type: 'Use', inputs: { size: ['3', 0], limit: 100 } }, '3': { class_type: 'Size', inputs: { width: 5 } } }, registry);
  assert.deepEqual(seen.pop(), { nodeId: '1' });
  assert.deepEqual(Object.keys(broken.nodeErrors), ['3']);
  assert.equal(broken.nodeErrors['3']?.errors[0]?.type, 'value_smaller_than_min');
});

// --- prompts of any size answer with bounded reports ---------------------------------------------------------

test('a 4,000-node cycle and 4,000 outputs over a broken chain get reports that grow with the prompt, not its square', async () => {
  const registry = new NodeRegistry();
  registry.register(defineNode({ id: 'Src', inputs: { v: int({ max: 5 }) }, outputs: [{ type: 'INT' }], execute: notRunHere }));
  registry.register(defineNode({ id: 'Step', inputs: { a: socket('INT') }, outputs: [{ type: 'INT' }], execute: notRunHere }));
  registry.register(defineNode({ id: 'Sink', outputNode: true, inputs: { a: socket('INT') }, outputs: [], execute: notRunHere }));

  const n = 4000;
  const cycle: ApiPrompt = { out: { class_type: 'Sink', inputs: { a: ['0', 0] } } };
  for (let i = 0; i < n; i++) cycle[String(i)] = { class_type: 'Step', inputs: { a: [String((i + 1) % n), 0] } };
  const cyclic = await validatePrompt(cycle, registry);
  assert.equal(Object.keys(cyclic.nodeErrors).length, n, 'every node of the cycle is marked, as ComfyUI does');
  const message = cyclic.nodeErrors['0']!.errors[0]!.message;
  assert.match(message, /^Dependency cycle: 0 \(Step\) -> 3999 \(Step\) -> .* -> \.\.\. \(3991 more\) -> .* -> 0 \(Step\)\./);
  assert.ok(message.length < 1000, `one message is short (${message.length} characters)`);
  assert.equal(cyclic.nodeErrors['0']!.errors[0]!.extra_info.cycle_size, n);
  assert.ok(JSON.stringify({ error: cyclic.error, nodeErrors: cyclic.nodeErrors }).length < n * 2000, 'the report is linear in the cycle (under 2 KB a node)');

  const broken: ApiPrompt = { '0': { class_type: 'Src', inputs: { v: 99 } } };
  for (let i = 1; i < n; i++) broken[String(i)] = { class_type: 'Step', inputs: { a: [String(i - 1), 0] } };
  for (let i = 0; i < n; i++) broken[`s${i}`] = { class_type: 'Sink', inputs: { a: [String(n - 1), 0] } };
  const fan = await validatePrompt(broken, registry);
  assert.deepEqual(Object.keys(fan.nodeErrors), ['0']);
  assert.equal(fan.nodeErrors['0']!.dependent_outputs.length, MAX_DEPENDENT_OUTPUTS, 'the outputs a node breaks are listed up to a bound');
  assert.ok(JSON.stringify({ error: fan.error, nodeErrors: fan.nodeErrors }).length < 100_000, 'the report (not the prompt) is small');
});

test('node ids that are Object.prototype keys are ordinary ids', async () => {
  // As a prompt arrives over HTTP: JSON.parse makes "__proto__" an own key (an object literal would not).
  const prompt = JSON.parse(
    JSON.stringify({
      constructor: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } },
      toString: { class_type: 'SaveImage', inputs: { images: ['hasOwnProperty', 0] } },
    }).replace(/^\{/, '{"__proto__": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},'),
  ) as ApiPrompt;
  assert.deepEqual(Object.keys(prompt), ['__proto__', 'constructor', 'toString']);
  const result = await validatePrompt(prompt, registry);
  assert.equal(result.ok, false);
  assert.deepEqual(Object.keys(result.nodeErrors), ['toString']);
  assert.match(result.nodeErrors['toString']!.errors[0]!.message, /linked to node hasOwnProperty, which does not exist/);
  assert.ok(Object.hasOwn(result.prompt, '__proto__'), 'a "__proto__" node stays a node of the prompt');
});

test('a socket of a pack\'s own type takes a JSON constant when it declares a default or accepts constants; others still need a link', async () => {
  const registry = new NodeRegistry();
  registry.register(
    defineNode({
      id: 'Flags',
      outputNode: true,
      inputs: {
        enabled: socket<boolean>('BOOL', { default: false }),
        settings: socket<Record<string, unknown>>('SETTINGS', { acceptsConstant: true }),
        model: socket('MODEL', { optional: true }),
      },
      outputs: [],
      execute: notRunHere,
    }),
  );
  const ok = await validatePrompt({ '1': { class_type: 'Flags', inputs: { enabled: true, settings: { strength: 0.5, tags: ['a'] } } } }, registry);
  assert.deepEqual(ok.nodeErrors, {});
  assert.deepEqual(ok.prompt['1']!.inputs, { enabled: true, settings: { strength: 0.5, tags: ['a'] } }, 'passed as they are');
  const refused = await validatePrompt({ '1': { class_type: 'Flags', inputs: { enabled: true, settings: {}, model: 'tiny-sd' } } }, registry);
  assert.equal(refused.nodeErrors['1']?.errors[0]?.message, 'Input "model" needs a link from a MODEL output, but got the constant "tiny-sd"');
  assert.deepEqual(objectInfo(registry).Flags!.input.required!.enabled, ['BOOL', { default: false }], 'the default is in object_info, as ComfyUI shows it');
});

test('validatesInputs (ComfyUI\'s VALIDATE_INPUTS arguments): the hook gets those inputs unchecked, with the types of their links', async () => {
  const seen: Array<{ inputs: Record<string, unknown>; types: Record<string, string> }> = [];
  const registry = new NodeRegistry();
  registry.register(defineNode({ id: 'MakeFloat', inputs: {}, outputs: [{ type: 'FLOAT' }], execute: notRunHere }));
  registry.register(
    defineNode({
      id: 'Scale',
      outputNode: true,
      inputs: { amount: int({ default: 1, min: 0, max: 10 }), factor: socket('INT'), label: string() },
      outputs: [],
      validatesInputs: ['amount', 'factor'],
      validate(inputs, context) {
        seen.push({ inputs: { ...inputs }, types: { ...context.inputTypes } });
        // Taken-over inputs arrive as the prompt has them, whatever their declared type says.
        return (inputs.amount as unknown) === 'many' ? true : `amount ${String(inputs.amount)} is not "many"`;
      },
      execute: notRunHere,
    }),
  );
  const prompt: ApiPrompt = {
    src: { class_type: 'MakeFloat', inputs: {} },
    s: { class_type: 'Scale', inputs: { amount: 'many', factor: ['src', 0], label: 7 } },
  };
  const ok = await validatePrompt(prompt, registry);
  assert.deepEqual(ok.nodeErrors, {}, 'a string where an INT is declared, and a FLOAT link into an INT socket: the hook decides');
  assert.deepEqual(seen.at(-1), { inputs: { amount: 'many', label: '7' }, types: { factor: 'FLOAT' } }, 'inputs it does not take are still converted');
  const refused = await validatePrompt({ ...prompt, s: { class_type: 'Scale', inputs: { amount: 50, factor: ['src', 0], label: 'x' } } }, registry);
  assert.equal(refused.nodeErrors.s?.errors[0]?.message, 'amount 50 is not "many"', 'no value_bigger_than_max: the hook checked it');
  assert.deepEqual(checkNodeDefinition(defineNode({ id: 'Bad', inputs: { a: int() }, outputs: [], validatesInputs: ['b'], validate: () => true, execute: notRunHere })), [
    '"validatesInputs" names "b", which is not an input',
  ]);
});

test('number literal kinds: 1 and 1.0 reach a taking-over validate hook as int and float; in-process prompts by value', async () => {
  const { defineNode: define, float: floatInput, NodeRegistry: Registry, parseJsonKeepingNumberKinds, numberKind } = await import('../src/index.ts');
  const seen: Array<Record<string, string>> = [];
  const registry = new Registry();
  registry.register(
    define({
      id: 'Kinds',
      outputNode: true,
      inputs: { a: floatInput(), b: floatInput(), c: floatInput() },
      validatesInputs: 'all',
      validate: (_inputs, ctx) => (seen.push({ ...ctx.numberKinds }), true),
      outputs: [],
      execute: () => ({ ui: {} }),
    }),
  );
  const parsed = parseJsonKeepingNumberKinds('{"1": {"class_type": "Kinds", "inputs": {"a": 1, "b": 1.0, "c": 2e3}}}') as Record<string, { inputs: Record<string, number> }>;
  assert.deepEqual(parsed['1']!.inputs, { a: 1, b: 1, c: 2000 });
  assert.equal(numberKind(parsed['1']!.inputs, 'b'), 'float');
  assert.ok((await validatePrompt(parsed as never, registry)).ok);
  assert.deepEqual(seen.pop(), { a: 'int', b: 'float', c: 'float' });
  assert.ok((await validatePrompt({ '1': { class_type: 'Kinds', inputs: { a: 1, b: 1.5, c: 3 } } }, registry)).ok);
  assert.deepEqual(seen.pop(), { a: 'int', b: 'float', c: 'int' });
  // A key written twice is parsed as JSON.parse does (the last wins), as Python's json would.
  assert.deepEqual(parseJsonKeepingNumberKinds('{"a": 1, "a": 2}'), { a: 2 });
});
