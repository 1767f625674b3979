import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NodeRegistry,
  boolean,
  combo,
  defineNode,
  float,
  int,
  objectInfo,
  objectInfoEntry,
  socket,
  string,
} from '../src/index.ts';

/** These stand-in nodes are only validated / described, never executed. */
const notRunHere = (): never => {
  throw new Error('this test node is not meant to run');
};

const SAMPLERS = ['euler', 'euler_ancestral', 'ddim'];
const SCHEDULERS = ['normal', 'karras'];

// ComfyUI's KSampler (nodes.py), written with our builders.
const KSampler = defineNode({
  id: 'KSampler',
  category: 'sampling',
  description: 'Uses the provided model, positive and negative conditioning to denoise the latent image.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model used for denoising the input latent.' }),
    seed: int({ default: 0, min: 0, max: 0xffffffffffffffff, controlAfterGenerate: true, tooltip: 'The random seed used for creating the noise.' }),
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'The number of steps used in the denoising process.' }),
    cfg: float({ default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip: 'The Classifier-Free Guidance scale.' }),
    sampler_name: combo(SAMPLERS, { tooltip: 'The algorithm used when sampling.' }),
    scheduler: combo(SCHEDULERS, { tooltip: 'The scheduler controls how noise is gradually removed to form the image.' }),
    positive: socket('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to include in the image.' }),
    negative: socket('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to exclude from the image.' }),
    latent_image: socket('LATENT', { tooltip: 'The latent image to denoise.' }),
    denoise: float({ default: 1.0, min: 0.0, max: 1.0, step: 0.01, tooltip: 'The amount of denoising applied.' }),
  },
  outputs: [{ type: 'LATENT', tooltip: 'The denoised latent.' }],
  execute: notRunHere,
});

// What ComfyUI's GET /object_info returns for its KSampler (server.py node_info of nodes.KSampler), with the
// combo lists and tooltips shortened to the ones above. Written out by hand, not derived from our code.
const COMFY_KSAMPLER = `{
  "input": {
    "required": {
      "model": ["MODEL", {"tooltip": "The model used for denoising the input latent."}],
      "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": true, "tooltip": "The random seed used for creating the noise."}],
      "steps": ["INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "The number of steps used in the denoising process."}],
      "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": "The Classifier-Free Guidance scale."}],
      "sampler_name": [["euler", "euler_ancestral", "ddim"], {"tooltip": "The algorithm used when sampling."}],
      "scheduler": [["normal", "karras"], {"tooltip": "The scheduler controls how noise is gradually removed to form the image."}],
      "positive": ["CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to include in the image."}],
      "negative": ["CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to exclude from the image."}],
      "latent_image": ["LATENT", {"tooltip": "The latent image to denoise."}],
      "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "The amount of denoising applied."}]
    }
  },
  "input_order": {
    "required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"]
  },
  "is_input_list": false,
  "output": ["LATENT"],
  "output_is_list": [false],
  "output_name": ["LATENT"],
  "name": "KSampler",
  "display_name": "KSampler",
  "description": "Uses the provided model, positive and negative conditioning to denoise the latent image.",
  "python_module": "nodes",
  "category": "sampling",
  "output_node": false,
  "output_tooltips": ["The denoised latent."]
}`;

test('a KSampler-like definition gives exactly ComfyUI\'s object_info entry', () => {
  // Strict deep equality: an option written as `undefined` would make this fail, as would a missing one.
  assert.deepStrictEqual(objectInfoEntry(KSampler), JSON.parse(COMFY_KSAMPLER));
  // Input order is declaration order, also in the serialized object.
  assert.deepEqual(Object.keys(objectInfoEntry(KSampler).input.required), JSON.parse(COMFY_KSAMPLER).input_order.required);
});

test('hidden inputs, optional inputs and output nodes are described like ComfyUI\'s SaveImage', () => {
  const SaveImage = defineNode({
    id: 'SaveImage',
    displayName: 'Save Image',
    category: 'image',
    description: 'Saves the input images to your ComfyUI output directory.',
    inputs: {
      images: socket('IMAGE', { tooltip: 'The images to save.' }),
      filename_prefix: string({ default: 'ComfyUI', tooltip: 'The prefix for the file to save.' }),
      mask: socket('MASK', { optional: true }),
    },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
    outputs: [],
    outputNode: true,
    execute: () => ({ ui: { images: [] } }),
  });
  assert.deepStrictEqual(objectInfoEntry(SaveImage, { pack: 'custom_nodes/my-savers' }), {
    input: {
      required: {
        images: ['IMAGE', { tooltip: 'The images to save.' }],
        filename_prefix: ['STRING', { default: 'ComfyUI', tooltip: 'The prefix for the file to save.' }],
      },
      // A socket without options is a one-element tuple, like Python's ("MASK",).
      optional: { mask: ['MASK'] },
      hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
    },
    input_order: { required: ['images', 'filename_prefix'], optional: ['mask'], hidden: ['prompt', 'extra_pnginfo'] },
    is_input_list: false,
    output: [],
    output_is_list: [],
    output_name: [],
    name: 'SaveImage',
    display_name: 'Save Image',
    description: 'Saves the input images to your ComfyUI output directory.',
    python_module: 'custom_nodes.my-savers',
    category: 'image',
    output_node: true,
  });
});

test('widget options use ComfyUI\'s names: round, multiline, placeholder, label_on/off, image_upload, forceInput, lazy', () => {
  const Widgets = defineNode({
    id: 'Widgets',
    inputs: {
      strength: float({ default: 0.5, min: 0, max: 1, step: 0.05, round: false, display: 'slider' }),
      text: string({ multiline: true, placeholder: 'Describe the image', lazy: true }),
      enabled: boolean({ default: true, labelOn: 'gate on', labelOff: 'gate off' }),
      image: combo(['a.png', 'b.png'], { imageUpload: true, default: 'a.png' }),
      count: int({ forceInput: true, advanced: true }),
      any: socket('*', { lazy: true, optional: true }),
    },
    hidden: { node_id: 'UNIQUE_ID' },
    outputs: [{ type: 'IMAGE', name: 'images', isList: true }, { type: 'INT', tooltip: 'How many.' }],
    inputIsList: true,
    deprecated: true,
    experimental: true,
    execute: notRunHere,
  });
  const entry = objectInfoEntry(Widgets);
  assert.deepStrictEqual(entry.input.required, {
    strength: ['FLOAT', { default: 0.5, min: 0, max: 1, step: 0.05, round: false, display: 'slider' }],
    text: ['STRING', { multiline: true, placeholder: 'Describe the image', lazy: true }],
    enabled: ['BOOLEAN', { default: true, label_on: 'gate on', label_off: 'gate off' }],
    image: [['a.png', 'b.png'], { default: 'a.png', image_upload: true }],
    count: ['INT', { forceInput: true, advanced: true }],
  });
  assert.deepStrictEqual(entry.input.optional, { any: ['*', { lazy: true }] });
  assert.deepStrictEqual(entry.input.hidden, { node_id: 'UNIQUE_ID' });
  assert.deepStrictEqual(entry.output_name, ['images', 'INT']);
  assert.deepStrictEqual(entry.output_is_list, [true, false]);
  // The frontend types output_tooltips as string[]: no null for the output without one.
  assert.deepStrictEqual(entry.output_tooltips, ['', 'How many.']);
  assert.equal(entry.is_input_list, true);
  assert.equal(entry.deprecated, true);
  assert.equal(entry.experimental, true);
  // Defaults ComfyUI applies to a class that declares nothing.
  assert.equal(entry.display_name, 'Widgets');
  assert.equal(entry.description, '');
  assert.equal(entry.category, 'sd');
  assert.equal(entry.python_module, 'nodes');
  assert.ok(!('deprecated' in objectInfoEntry(KSampler)) && !('experimental' in objectInfoEntry(KSampler)));
});

test('combo options given as a function are evaluated on every call, so new model files appear', () => {
  const files = ['tiny-sd'];
  const Loader = defineNode({
    id: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: combo(() => [...files]) },
    outputs: [{ type: 'MODEL' }, { type: 'CLIP' }, { type: 'VAE' }],
    execute: notRunHere,
  });
  const registry = new NodeRegistry();
  registry.register(Loader);
  assert.deepStrictEqual(objectInfo(registry)['CheckpointLoaderSimple']!.input.required['ckpt_name'], [['tiny-sd']]);
  files.push('sd15-onnx');
  assert.deepStrictEqual(objectInfo(registry)['CheckpointLoaderSimple']!.input.required['ckpt_name'], [['tiny-sd', 'sd15-onnx']]);
});

test('objectInfo lists every class with its pack and leaves out (and reports) a class that cannot be described', () => {
  const registry = new NodeRegistry();
  registry.register(KSampler);
  registry.register(
    defineNode({
      id: 'BrokenLoader',
      inputs: {
        name: combo(() => {
          throw new Error('models/broken is not readable');
        }),
      },
      outputs: [],
      execute: () => [],
    }),
    { pack: 'custom_nodes/broken-pack' },
  );
  registry.register(
    defineNode({ id: 'GateSchedule', inputs: {}, outputs: [{ type: 'GATE_SCHEDULE' }], execute: notRunHere }),
    { pack: 'nodes-tgate' },
  );
  const reported: Array<[string, string]> = [];
  const info = objectInfo(registry, { onError: (id, error) => reported.push([id, (error as Error).message]) });
  assert.deepEqual(Object.keys(info), ['KSampler', 'GateSchedule']);
  assert.deepEqual(reported, [['BrokenLoader', 'models/broken is not readable']]);
  assert.equal(info['GateSchedule']!.python_module, 'custom_nodes.nodes-tgate');
  assert.deepStrictEqual(info['GateSchedule']!.input, { required: {} });
  assert.deepStrictEqual(info['GateSchedule']!.input_order, { required: [] });
});

test('combo option functions receive the host context, in object_info and in validation', async () => {
  const { validatePrompt } = await import('../src/validation.ts');
  const seen: unknown[] = [];
  const Loader = defineNode({
    id: 'FolderLoader',
    outputNode: true,
    inputs: {
      name: combo((context) => {
        seen.push(context.paths?.models);
        return context.paths ? [`model-in-${context.paths.models}`] : [];
      }),
    },
    outputs: [],
    execute: () => [],
  });
  const paths = { models: '/srv/models', input: '/srv/in', output: '/srv/out', temp: '/srv/tmp' };
  const entry = objectInfoEntry(Loader, undefined, { paths });
  assert.deepStrictEqual(entry.input.required?.name, [['model-in-/srv/models']]);
  const registry = new NodeRegistry();
  registry.register(Loader);
  const ok = await validatePrompt({ '1': { class_type: 'FolderLoader', inputs: { name: 'model-in-/srv/models' } } }, registry, {
    context: { paths },
  });
  assert.equal(ok.ok, true, 'the value listed for the host folder is accepted');
  const without = await validatePrompt({ '1': { class_type: 'FolderLoader', inputs: { name: 'model-in-/srv/models' } } }, registry);
  assert.equal(without.ok, false, 'without the host context the folder is not listed');
  assert.deepStrictEqual(seen.slice(0, 2), ['/srv/models', '/srv/models']);
});
