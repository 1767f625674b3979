/**
 * object_info of SaveImageWebsocket, SaveLatent, LoadLatent, VAEDecodeTiled and VAEEncodeTiled: ComfyUI's input
 * names, order, types and widget ranges (nodes.py, custom_nodes/websocket_image_save.py), output nodes as ComfyUI
 * marks them, and every node and input documented.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectInfo } from '@gategraph/core';
import { packRegistry } from './helpers.ts';

type Spec = [name: string, type: string, range?: number[]];
const VIDEO: Spec[] = [
  ['temporal_size', 'INT', [64, 8, 4096, 4]],
  ['temporal_overlap', 'INT', [8, 4, 4096, 4]],
];
const EXPECTED: Record<string, { required: Spec[]; optional?: Spec[]; output: string[]; outputNode: boolean; category: string }> = {
  SaveImageWebsocket: { required: [['images', 'IMAGE']], output: [], outputNode: true, category: 'api node/image' },
  SaveLatent: { required: [['samples', 'LATENT'], ['filename_prefix', 'STRING']], optional: [['vae', 'VAE']], output: [], outputNode: true, category: '_for_testing' },
  LoadLatent: { required: [['latent', 'COMBO']], optional: [['vae', 'VAE']], output: ['LATENT'], outputNode: false, category: '_for_testing' },
  VAEDecodeTiled: {
    required: [['samples', 'LATENT'], ['vae', 'VAE'], ['tile_size', 'INT', [512, 64, 4096, 32]], ['overlap', 'INT', [64, 0, 4096, 32]], ...VIDEO],
    output: ['IMAGE'],
    outputNode: false,
    category: '_for_testing',
  },
  VAEEncodeTiled: {
    required: [['pixels', 'IMAGE'], ['vae', 'VAE'], ['tile_size', 'INT', [512, 64, 4096, 64]], ['overlap', 'INT', [64, 0, 4096, 32]], ...VIDEO],
    output: ['LATENT'],
    outputNode: false,
    category: '_for_testing',
  },
};

test("the output and tiled nodes have ComfyUI's inputs, outputs and categories, and every node and input is documented", async () => {
  const info = objectInfo(await packRegistry());
  for (const [name, expected] of Object.entries(EXPECTED)) {
    const entry = info[name];
    assert.ok(entry, `${name} is registered`);
    assert.equal(entry.category, expected.category, `${name} category`);
    assert.deepEqual(entry.output, expected.output, `${name} outputs`);
    assert.equal(entry.output_node, expected.outputNode, `${name} output_node`);
    assert.ok(entry.description.length > 40, `${name} has a description`);
    for (const [group, specs] of [['required', expected.required], ['optional', expected.optional ?? []]] as const) {
      const inputs: Record<string, unknown> = entry.input[group] ?? {};
      assert.deepEqual(Object.keys(inputs), specs.map((s) => s[0]), `${name} ${group} inputs`);
      for (const [input, type, range] of specs) {
        const [actualType, options] = inputs[input] as [string | string[], Record<string, unknown> | undefined];
        if (type !== 'COMBO') assert.deepEqual(actualType, type, `${name}.${input} type`);
        if (range) assert.deepEqual(['default', 'min', 'max', 'step'].map((k) => options?.[k]), range, `${name}.${input} range`);
        assert.ok(typeof options?.tooltip === 'string' && options.tooltip.length > 10, `${name}.${input} has a tooltip`);
      }
    }
  }
  assert.match(String((info.VAEDecodeTiled!.input.required!.temporal_size as [string, { tooltip: string }])[1].tooltip), /video VAEs.*ignored/);
  assert.deepEqual((info.SaveLatent!.input.required!.filename_prefix as [string, { default: string }])[1].default, 'latents/ComfyUI');
});
