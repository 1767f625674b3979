// CLIPSetLastLayer -> CLIPTextEncode (weights, an embedding) -> KSampler -> image, through the executor on the
// embedded model, with an embedding file written here into the host's models/embeddings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Executor, objectInfo, validatePrompt, type ApiPrompt } from '@gategraph/core';
import { ClipTokenizer, decodePng } from '@gategraph/diffusion';
import { discoverClipText, loadModel } from '@gategraph/onnx-graph';
import { defaultPrompt, host, noModel, packRegistry, recordingLogger, savedImages, testModelDir } from './helpers.ts';

/** A safetensors file with one float32 tensor, written from the format's description. */
function writeEmbedding(path: string, name: string, rows: number[], width: number): void {
  const header = new TextEncoder().encode(JSON.stringify({ [name]: { dtype: 'F32', shape: [rows.length / width, width], data_offsets: [0, rows.length * 4] } }));
  const bytes = new Uint8Array(8 + header.length + rows.length * 4);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  rows.forEach((v, i) => view.setFloat32(8 + header.length + i * 4, v, true));
  writeFileSync(path, bytes);
}

/** The token embedding rows of `words` in the test model's text encoder. */
function tokenRows(words: string): { rows: number[]; width: number } {
  const file = loadModel(join(testModelDir, 'text_encoder', 'model.onnx'));
  const weight = discoverClipText(file.proto).tokenEmbedding.weight;
  const t = file.proto.graph!.initializer.find((x) => x.name === weight)!;
  const table = new Float32Array(Uint8Array.from(t.rawData).buffer);
  const width = Number(t.dims[1]);
  const ids = ClipTokenizer.load(join(testModelDir, 'tokenizer')).tokenIds(words);
  return { rows: ids.flatMap((id) => [...table.subarray(id * width, (id + 1) * width)]), width };
}

function prompt(text: string, stop: number, prefix: string): ApiPrompt {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } },
    '10': { class_type: 'CLIPSetLastLayer', inputs: { clip: ['4', 1], stop_at_clip_layer: stop } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text, clip: ['10', 0] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['10', 0] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: { model: ['4', 0], seed: 7, steps: 4, cfg: 6, sampler_name: 'euler', scheduler: 'karras', positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1 },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: prefix } },
  };
}


async function image(p: ApiPrompt, lines: string[] = []): Promise<Uint8Array> {
  const registry = await packRegistry();
  const validation = await validatePrompt(p, registry);
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  const executor = new Executor(registry, { paths: host.paths, logger: recordingLogger(lines), cache: { mode: 'none' } });
  const result = await executor.run(validation.prompt, { promptId: `p-${Math.random()}`, outputs: validation.outputs });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [saved] = savedImages(result);
  return decodePng(readFileSync(join(host.paths.output, saved!.subfolder, saved!.filename))).data;
}

function maxLevelDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('CLIPSetLastLayer has ComfyUI\'s input, range and output', async () => {
  const info = objectInfo(await packRegistry()).CLIPSetLastLayer!;
  assert.deepEqual(info.input_order.required, ['clip', 'stop_at_clip_layer']);
  const [type, spec] = info.input.required!.stop_at_clip_layer as [string, Record<string, unknown>];
  assert.deepEqual([type, spec.default, spec.min, spec.max, spec.step], ['INT', -1, -24, -1, 1]);
  assert.deepEqual(info.output, ['CLIP']);
  assert.equal(info.category, 'conditioning');
});

test('clip skip, weights and an embedding reach the sampler: the embedding draws what its words draw', { skip: noModel }, async () => {
  const folder = join(host.paths.models, 'embeddings');
  mkdirSync(folder, { recursive: true });
  const { rows, width } = tokenRows('red circle');
  writeEmbedding(join(folder, 'redcircle.safetensors'), 'emb_params', rows, width);

  const lines: string[] = [];
  const withEmbedding = await image(prompt('a (embedding:redcircle:1.2) at the top left on a gray background embedding:missing', -2, 'ti'), lines);
  const withWords = await image(prompt('a (red circle:1.2) at the top left on a gray background', -2, 'words'));
  const diff = maxLevelDiff(withEmbedding, withWords);
  assert.ok(diff <= 2, `the embedding's image vs the words' image: ${diff} levels apart`);
  assert.deepEqual(lines.filter((l) => l.startsWith('warn')), ['warn [CLIPTextEncode#6] embedding:missing does not exist, ignoring it (as ComfyUI does)']);

  const lastLayer = await image(prompt('a (red circle:1.2) at the top left on a gray background', -1, 'last'));
  const unweighted = await image(prompt('a red circle at the top left on a gray background', -2, 'plain'));
  assert.ok(maxLevelDiff(lastLayer, withWords) > 8, 'clip skip -2 changes the image');
  assert.ok(maxLevelDiff(unweighted, withWords) > 8, 'the weight changes the image');
});

test('a stop_at_clip_layer past the encoder\'s layers uses the last one, with a warning', { skip: noModel }, async () => {
  const lines: string[] = [];
  const beyond = await image(prompt('a blue square', -24, 'beyond'), lines);
  const last = await image(prompt('a blue square', -1, 'last1'));
  assert.equal(maxLevelDiff(beyond, last), 0);
  assert.ok(lines.some((l) => /^warn \[CLIPSetLastLayer#10\] stop_at_clip_layer -24 is beyond the 3 layers of tiny-sd's text encoder/.test(l)), lines.join('\n'));
});

test('stop_at_clip_layer -1 on an SD-2.x export (which ends at the penultimate layer) is refused when queued', { skip: noModel }, async () => {
  // An SD-2.x text encoder as diffusers exports it: OpenCLIP-H's width and 23 of its 24 layers (only the
  // config is read when the prompt is queued).
  const models = join(host.dir, 'sd2-models');
  const folder = join(models, 'sd2-like');
  cpSync(testModelDir, folder, { recursive: true, filter: (src) => !src.includes('.gategraph-derived') });
  const config = JSON.parse(readFileSync(join(folder, 'text_encoder', 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(folder, 'text_encoder', 'config.json'), JSON.stringify({ ...config, hidden_size: 1024, num_hidden_layers: 23 }));
  // The default workflow with the clip skip between the loader and both prompts.
  const prompt = (stop: number): ApiPrompt => {
    const p = defaultPrompt();
    p['4']!.inputs.ckpt_name = 'sd2-like';
    p['20'] = { class_type: 'CLIPSetLastLayer', inputs: { clip: ['4', 1], stop_at_clip_layer: stop } };
    p['6']!.inputs.clip = ['20', 0];
    p['7']!.inputs.clip = ['20', 0];
    return p;
  };
  const registry = await packRegistry();
  const context = { context: { paths: { ...host.paths, models } } };
  const refused = await validatePrompt(prompt(-1), registry, context);
  const error = refused.nodeErrors['20'];
  assert.ok(error, `CLIPSetLastLayer has an error: ${JSON.stringify(refused.nodeErrors)}`);
  assert.match(error.errors[0]!.message, /stop_at_clip_layer -1 selects layer 24 of the 24-layer text encoder ComfyUI loads, which this export leaves out/);
  const accepted = await validatePrompt(prompt(-2), registry, context);
  assert.equal(accepted.nodeErrors['20'], undefined, '-2 is the export itself');
});
