import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { cloneModel, countMacs, deepFeature, deriveModel, discoverUNet, inferShapes, loadModel, OnnxGraphError, valueInfoType } from '../src/index.ts';
import { skipReason, testUNet, unetConfig, unetFeeds } from './helpers.ts';

function latentSize(): { px: number; latent: number } {
  const feeds = unetFeeds(1);
  const latent = feeds.sample!.dims[2]!;
  return { latent, px: latent * 8 };
}

test('conv MACs follow the shapes; batch scales every count; categories add up', { skip: skipReason }, () => {
  const { proto } = testUNet();
  const c = unetConfig() as ReturnType<typeof unetConfig> & { block_out_channels: number[] };
  const { px, latent } = latentSize();
  const one = countMacs(proto, { batch: 1, height: px, width: px });
  const two = countMacs(proto, { batch: 2, height: px, width: px });
  assert.equal(one.byModule.get('conv_in'), c.block_out_channels[0]! * latent * latent * c.in_channels * 9);
  assert.equal(two.total, 2 * one.total);
  assert.equal(Object.values(one.byCategory).reduce((a, b) => a + b, 0), one.total);
  assert.equal(one.weightMacs + one.activationMatMul, one.total);
  assert.ok(one.byCategory.attn1 > 0 && one.byCategory.attn2 > 0 && one.byCategory.resnets > 0);
  const attn2Modules = discoverUNet(proto).attention.filter((a) => a.kind === 'attn2');
  const sum = attn2Modules.reduce((n, a) => n + (one.byModule.get(a.path) ?? 0), 0);
  assert.equal(sum, one.byCategory.attn2);
});

test('a derived graph counts only what it still computes (TGATE reuse = full - attn2; DeepCache shallow has no mid block)', { skip: skipReason }, () => {
  const { proto } = testUNet();
  const unet = discoverUNet(proto);
  const { px } = latentSize();
  const sizes = { batch: 1, height: px, width: px };
  const full = countMacs(proto, sizes);
  const reuse = deriveModel(proto, { reuse: unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output) }).model;
  assert.equal(countMacs(reuse, sizes, { shapesFrom: proto }).total, full.total - full.byCategory.attn2);
  const shallow = deriveModel(proto, { reuse: [deepFeature(unet, 0).tensor] }).model;
  const s = countMacs(shallow, sizes, { shapesFrom: proto });
  assert.equal(s.byModule.get('mid_block'), undefined);
  assert.ok(s.total < full.total / 2, `shallow ${s.total} vs full ${full.total}`);
});

test('inferred shapes agree with the graph; an unknown op and a wrong size give clear errors', { skip: skipReason }, () => {
  const { proto } = testUNet();
  const feeds = unetFeeds(3);
  const shapes = inferShapes(proto, Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, [...v.dims]])));
  assert.deepEqual(shapes.get('out_sample')!.shape, [...feeds.sample!.dims]);
  const broken = cloneModel(proto);
  const conv = broken.graph!.node.find((n) => n.name === '/conv_in/Conv')!;
  conv.opType = 'FancyConv';
  assert.throws(() => inferShapes(broken, Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, [...v.dims]]))), (e: unknown) => {
    assert.ok(e instanceof OnnxGraphError);
    assert.match(e.message, /op FancyConv of node "\/conv_in\/Conv".*not supported.*blocks the shapes/);
    return true;
  });
  const dim2 = valueInfoType(proto.graph!.input.find((i) => i.name === 'sample')!).dims?.[2];
  if (typeof dim2 === 'number') {
    // An export with fixed latent size cannot be counted at another size.
    assert.throws(() => countMacs(proto, { batch: 1, height: dim2 * 16, width: dim2 * 16 }), new RegExp(`fixed size ${dim2} in dim 2 but ${dim2 * 2} was asked`));
  }
});

const root = fileURLToPath(new URL('../../..', import.meta.url));
const sd15 = process.env.GATEGRAPH_SD15_UNET ?? join(root, '.gategraph', 'sd15-unet', 'unet', 'model.onnx');

test('SD-1.5 UNet (random weights, tools/sd15-unet): 338.6 GMACs of conv/linear per 512x512 forward, as the papers count', {
  skip: existsSync(sd15) ? false : `no SD-1.5 export at ${sd15} (tools/sd15-unet/export_random_unet.py writes it)`,
}, () => {
  const file = loadModel(sd15);
  const unet = discoverUNet(file.proto);
  assert.equal(unet.attention.length, 32);
  const r = countMacs(file.proto, { batch: 1, height: 512, width: 512 }, { baseDir: file.baseDir });
  assert.ok(Math.abs(r.weightMacs / 1e9 - 338.6) < 0.1, `${r.weightMacs}`);
  // 25 steps x CFG batch 2 = the TGATE paper's 16.938T for SD-1.5.
  assert.ok(Math.abs((25 * 2 * r.weightMacs) / 1e12 - 16.93) < 0.01);
  assert.equal(readFileSync(join(file.baseDir, 'config.json'), 'utf8').includes('"cross_attention_dim": 768'), true);
});
