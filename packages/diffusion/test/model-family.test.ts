// Every kind of model gategraph does not run is named in one sentence, from the folder's own files, before
// anything is opened (the table in docs/models.md).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, makeValueInfo, newGraph, newModel, newNode, TensorProto_DataType } from '@gategraph/onnx-graph';
import { checkSupportedModel, UnsupportedModelError } from '../src/model-family.ts';
import { fileURLToPath } from 'node:url';

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
/** A temporary folder removed when the tests end. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

const tinySd = fileURLToPath(new URL('../../../models/tiny-sd', import.meta.url));
const F = TensorProto_DataType.FLOAT;

/** A one-node ONNX file: enough for what detection reads (declared inputs and operators). */
function onnxFile(path: string, inputs: string[], op = { opType: 'Identity', domain: '' }): void {
  mkdirSync(join(path, '..'), { recursive: true });
  const graph = newGraph({
    name: 'g',
    input: inputs.map((name) => makeValueInfo(name, F, ['batch', 4])),
    output: [makeValueInfo('out', F)],
    node: [newNode({ name: 'n', opType: op.opType, domain: op.domain, input: [inputs[0]!], output: ['out'] })],
  });
  writeFileSync(path, encodeModel(newModel(graph, 14, op.domain ? [{ domain: op.domain, version: 1 }] : [])));
}

function folder(index: Record<string, unknown> | undefined, parts: string[] = []): string {
  const dir = tempDir('gg-family-');
  if (index) writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index));
  for (const part of parts) mkdirSync(join(dir, part), { recursive: true });
  return dir;
}

function refusal(path: string): UnsupportedModelError {
  try {
    checkSupportedModel(path);
  } catch (error) {
    assert.ok(error instanceof UnsupportedModelError, `an UnsupportedModelError, got ${String(error)}`);
    return error;
  }
  assert.fail(`${path} was accepted`);
}

test('Stable Diffusion 1.x / 2.x / SDXL folders pass: the embedded model and optimum / diffusers pipeline names', () => {
  checkSupportedModel(tinySd);
  for (const name of ['StableDiffusionPipeline', 'OnnxStableDiffusionPipeline', 'ORTStableDiffusionPipeline', 'ORTLatentConsistencyModelPipeline', 'OnnxStableDiffusionInpaintPipeline', 'ORTStableDiffusionXLPipeline', 'StableDiffusionXLImg2ImgPipeline']) {
    const dir = folder({ _class_name: name }, ['unet']);
    checkSupportedModel(dir);
  }
});

test('each unsupported kind is refused with one sentence saying what it is', () => {
  const cases: Array<{ path: string; kind: string; says: RegExp }> = [
    { path: folder({ _class_name: 'StableDiffusion3Pipeline' }, ['transformer', 'text_encoder_3']), kind: 'sd3', says: /Stable Diffusion 3 model/ },
    { path: folder({ _class_name: 'PixArtAlphaPipeline' }, ['transformer']), kind: 'pixart', says: /PixArt model \(PixArtAlphaPipeline\)/ },
    { path: folder({ _class_name: 'FluxPipeline' }, ['transformer']), kind: 'flux', says: /Flux model/ },
    { path: folder({ _class_name: 'SanaPipeline' }, ['transformer']), kind: 'transformer', says: /denoises with a transformer \(transformer\/\), not a UNet/ },
    { path: folder({ _class_name: 'KandinskyV22Pipeline' }, ['unet']), kind: 'pipeline', says: /names the pipeline KandinskyV22Pipeline/ },
  ];
  for (const { path, kind, says } of cases) {
    const error = refusal(path);
    assert.equal(error.kind, kind, error.message);
    assert.match(error.reason, says);
    assert.ok(!/\.\s+\S/.test(error.reason), `one sentence: ${error.reason}`);
  }
});

test('an SDXL UNet is told by its inputs even in a folder that says StableDiffusionPipeline, and refused without its second text encoder', () => {
  const dir = folder({ _class_name: 'StableDiffusionPipeline' });
  onnxFile(join(dir, 'unet', 'model.onnx'), ['sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids']);
  const error = refusal(dir);
  assert.equal(error.kind, 'sdxl');
  assert.match(error.reason, /its UNet takes text_embeds and time_ids \(an SDXL UNet\), but the folder has no text_encoder_2/);
});

test('a folder optimized for GPUs (com.microsoft fused operators) names the operators and the export to use instead', () => {
  const dir = tempDir('gg-olive-');
  cpSync(tinySd, dir, { recursive: true });
  onnxFile(join(dir, 'vae_decoder', 'model.onnx'), ['latent_sample'], { opType: 'GroupNorm', domain: 'com.microsoft' });
  const error = refusal(dir);
  assert.equal(error.kind, 'gpu-optimized');
  assert.match(error.reason, /^vae_decoder\/model\.onnx was optimized for GPUs \(Olive \/ onnxruntime's transformer optimizer: com\.microsoft GroupNorm\).*optimum-cli export onnx/);
});

test('single files: pickles are never opened, a .safetensors file is refused only for what it holds', () => {
  const dir = tempDir('gg-files-');
  for (const name of ['v1-5-pruned.ckpt', 'model.pt', 'model.pth', 'pytorch_model.bin']) {
    writeFileSync(join(dir, name), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00]));
    const error = refusal(join(dir, name));
    assert.equal(error.kind, 'pickle');
    assert.match(error.reason, /Python pickle .*which can run code when it is loaded, so gategraph never opens it\. Convert it once to \.safetensors/);
  }
  // A damaged file says so; a checkpoint of the families gategraph runs passes (test/single-file-model.test.ts).
  writeFileSync(join(dir, 'v1-5-pruned-emaonly.safetensors'), Buffer.alloc(16));
  assert.match(refusal(join(dir, 'v1-5-pruned-emaonly.safetensors')).reason, /^this is not a readable safetensors file: /);
});
