import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Executor, validatePrompt, type ApiPrompt, type Logger } from '@gategraph/core';
import { host, noModel, packRegistry } from './helpers.ts';

/** A logger that keeps what it is given, with the scope the executor adds for each node. */
function recordingLogger(lines: string[], scope = ''): Logger {
  const record = (level: string) => (message: string) => void lines.push(`${level} [${scope}] ${message}`);
  return { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), child: (s) => recordingLogger(lines, s) };
}

test('CLIPTextEncode warns, through the node\'s log, when the prompt is cut at the token limit', { skip: noModel }, async () => {
  const registry = await packRegistry();
  const long = Array.from({ length: 40 }, (_, i) => (i % 2 ? 'red circle' : 'blue square')).join(' and '); // > 75 tokens
  const prompt: ApiPrompt = {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: long, clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'a red circle', clip: ['4', 1] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: { model: ['4', 0], seed: 1, steps: 1, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1 },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'PreviewImage', inputs: { images: ['8', 0] } },
  };
  const lines: string[] = [];
  const executor = new Executor(registry, { paths: host.paths, logger: recordingLogger(lines) });
  const validation = await validatePrompt(prompt, registry);
  const result = await executor.run(validation.prompt, { promptId: 'long-prompt', outputs: validation.outputs });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const warnings = lines.filter((l) => l.startsWith('warn'));
  assert.equal(warnings.length, 1, lines.join('\n'));
  assert.match(warnings[0]!, /^warn \[CLIPTextEncode#6\] prompt truncated after 77 tokens: dropped '.*circle.*'$/);
});
