/**
 * SaveLatent / LoadLatent (src/nodes/latent-files.ts, src/latent-file.ts): files round-trip, carry the prompt and
 * workflow, and files as ComfyUI writes them (bytes made here from the safetensors format description, laid out as
 * safetensors' writer lays them out: 8-byte little-endian header length, the JSON header padded with spaces to a
 * multiple of 8, then the tensors' little-endian data; torch's empty `latent_format_version_0` has offsets [0, 0])
 * load with ComfyUI's scaling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineNode, int, socket, string, type ApiPrompt } from '@gategraph/core';
import { SafetensorsFile, type Tensor } from '@gategraph/diffusion';
import { listInputLatents } from '../src/nodes/latent-files.ts';
import type { Latent } from '../src/types.ts';
import { host, noModel, packRegistry, testModelDir, validateAndRun } from './helpers.ts';

const kept = new Map<string, Tensor>();
/** tiny-sd's VAE scaling factor, from its config. */
const TINY_SCALE = (JSON.parse(readFileSync(join(testModelDir, 'vae_decoder', 'config.json'), 'utf8')) as { scaling_factor: number }).scaling_factor;

/** A latent [2, 4, 6, 5] of known values that are not round in float32. */
function knownLatent(seed: number): Tensor {
  const data = new Float32Array(2 * 4 * 6 * 5);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 0.37) * 2.3;
  return { data, shape: [2, 4, 6, 5] };
}

let registered: Promise<void> | undefined;
function registerTestNodes(): Promise<void> {
  registered ??= (async () => {
    const registry = await packRegistry();
    registry.register(
      defineNode({
        id: 'KnownLatent',
        inputs: { seed: int({ default: 0 }) },
        outputs: [{ type: 'LATENT' }],
        execute: ({ seed }) => [{ samples: knownLatent(seed) } satisfies Latent],
      }),
    );
    registry.register(
      defineNode({
        id: 'KeepLatent',
        inputs: { samples: socket('LATENT'), key: string() },
        outputs: [],
        outputNode: true,
        execute({ samples, key }) {
          kept.set(key, (samples as Latent).samples);
          return { ui: { kept: [key] } };
        },
      }),
    );
  })();
  return registered;
}

const ckpt = { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } };

/** Runs KnownLatent -> SaveLatent (with the checkpoint's VAE or not) and returns the file's path and its ui entry. */
async function save(seed: number, prefix: string, withVae: boolean) {
  await registerTestNodes();
  const prompt: ApiPrompt = {
    latent: { class_type: 'KnownLatent', inputs: { seed } },
    save: { class_type: 'SaveLatent', inputs: { samples: ['latent', 0], filename_prefix: prefix, ...(withVae ? { vae: ['ckpt', 2] } : {}) } },
    ...(withVae ? { ckpt } : {}),
  };
  const { result } = await validateAndRun(prompt, { extraPngInfo: { workflow: { nodes: [], note: 'é' } } });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [entry] = result.outputs.save!.latents as Array<{ filename: string; subfolder: string; type: string }>;
  return { entry: entry!, path: join(host.paths.output, entry!.subfolder, entry!.filename), prompt };
}

/** Copies a file into the input folder and runs LoadLatent (with the checkpoint's VAE or not) on it. */
async function load(file: string, name: string, withVae: boolean) {
  await registerTestNodes();
  copyFileSync(file, join(host.paths.input, name));
  return validateAndRun({
    load: { class_type: 'LoadLatent', inputs: { latent: name, ...(withVae ? { vae: ['ckpt', 2] } : {}) } },
    keep: { class_type: 'KeepLatent', inputs: { samples: ['load', 0], key: name } },
    ...(withVae ? { ckpt } : {}),
  });
}

function assertClose(actual: Float32Array, expected: ArrayLike<number>, relative: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= relative * Math.max(1, Math.abs(e)), `${what}[${i}]: ${actual[i]} vs ${e}`);
  }
}

test("SaveLatent writes ComfyUI's numbered .latent with the prompt and workflow; LoadLatent reads it back exactly", async () => {
  const first = await save(1, 'latents/round', false);
  assert.deepEqual(first.entry, { filename: 'round_00001_.latent', subfolder: 'latents', type: 'output' });
  const file = SafetensorsFile.open(first.path);
  assert.deepEqual(file.names(), ['latent_tensor'], 'without a VAE: ComfyUI\'s first format (values scaled as the model uses them)');
  assert.equal(file.tensor('latent_tensor')!.dtype, 'F32');
  assert.deepEqual(file.tensor('latent_tensor')!.shape, [2, 4, 6, 5]);
  assert.deepEqual(JSON.parse(file.metadata.prompt!), first.prompt);
  assert.equal(file.metadata.workflow, '{"nodes":[],"note":"\\u00e9"}', 'extra_pnginfo keys as ASCII JSON, like Python json.dumps');
  assert.equal(file.metadata.gategraph_latent_units, 'model');
  assert.equal(file.dataOffset % 8, 0, 'the data starts 8-aligned, as safetensors writes it');

  const second = await save(1, 'latents/round', false);
  assert.equal(second.entry.filename, 'round_00002_.latent', 'never overwrites: the counter goes on');

  const { result } = await load(first.path, 'round.latent', false);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(kept.get('round.latent')!.shape, [2, 4, 6, 5]);
  assert.deepEqual(kept.get('round.latent')!.data, knownLatent(1).data);
  assert.ok(listInputLatents({ paths: host.paths }).includes('round.latent'));
});

test("with the VAE, SaveLatent writes the VAE's own values (ComfyUI's current format); LoadLatent scales them back", { skip: noModel }, async () => {
  const { path } = await save(2, 'latents/vae', true);
  const file = SafetensorsFile.open(path);
  assert.deepEqual(file.names(), ['latent_format_version_0', 'latent_tensor']);
  assert.deepEqual(file.tensor('latent_format_version_0')!.shape, [0]);
  assert.equal(Number(file.metadata.gategraph_vae_scaling_factor), TINY_SCALE);
  const expected = knownLatent(2).data;
  assertClose(file.readFloat32('latent_tensor').data, Array.from(expected, (v) => v / TINY_SCALE), 1e-6, 'stored');

  // The file says its VAE's factor: it loads back without one, and with one.
  for (const withVae of [false, true]) {
    const name = `vae-${withVae}.latent`;
    const { result } = await load(path, name, withVae);
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assertClose(kept.get(name)!.data, expected, 1e-6, name);
  }
});

/** A safetensors file as safetensors' writer makes it (see the file comment), from float32 tensors. */
function safetensorsBytes(tensors: Array<[string, number[], number[]]>, metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, shape, values] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + values.length * 4] };
    offset += values.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const data = Buffer.alloc(offset);
  let at = 0;
  for (const [, , values] of tensors) for (const v of values) at = data.writeFloatLE(v, at);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), data]);
}

const comfyValues = Array.from({ length: 1 * 4 * 8 * 8 }, (_, i) => ((i * 7) % 23) / 11 - 1);

test("a file ComfyUI wrote (its VAE's own values) loads scaled by the connected VAE's factor, and is refused without one", { skip: noModel }, async () => {
  // ComfyUI's SaveLatent: latent_tensor and an empty latent_format_version_0 (sorted by name: the empty one first).
  const file = join(host.dir, 'comfy.latent');
  writeFileSync(
    file,
    safetensorsBytes(
      [
        ['latent_format_version_0', [0], []],
        ['latent_tensor', [1, 4, 8, 8], comfyValues],
      ],
      { prompt: '{"3": {"class_type": "KSampler"}}' },
    ),
  );
  const withVae = await load(file, 'comfy.latent', true);
  assert.equal(withVae.result.status, 'success', JSON.stringify(withVae.result.error));
  assertClose(kept.get('comfy.latent')!.data, comfyValues.map((v) => Math.fround(v) * TINY_SCALE), 1e-6, 'scaled');

  const without = await load(file, 'comfy-novae.latent', false);
  assert.equal(without.result.error?.node_type, 'LoadLatent');
  assert.match(without.result.error?.message ?? '', /holds the VAE's own values \(a file written by ComfyUI\) .* connect the VAE of the checkpoint that will use it/);

  // ComfyUI's first format (no version key): scaled by SD's 0.18215, which ComfyUI divides out.
  const legacy = join(host.dir, 'legacy.latent');
  writeFileSync(legacy, safetensorsBytes([['latent_tensor', [1, 4, 8, 8], comfyValues]], {}));
  const old = await load(legacy, 'legacy.latent', true);
  assert.equal(old.result.status, 'success', JSON.stringify(old.result.error));
  assertClose(kept.get('legacy.latent')!.data, comfyValues.map((v) => (Math.fround(v) / 0.18215) * TINY_SCALE), 1e-6, 'legacy');
});

test('a .latent that is not a latent is refused with the file and the reason', async () => {
  const file = join(host.dir, 'weights.latent');
  writeFileSync(file, safetensorsBytes([['conv.weight', [2, 2], [1, 2, 3, 4]]], {}));
  const { result } = await load(file, 'weights.latent', false);
  assert.equal(result.error?.node_type, 'LoadLatent');
  assert.match(result.error?.message ?? '', /^latent "weights\.latent" cannot be loaded: it has no "latent_tensor" tensor \(it has conv\.weight\)/);
});
