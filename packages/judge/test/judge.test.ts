import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import {
  type Domain,
  type ParsedCaption,
  formatCaption,
  judge,
  judgeFolder,
  loadDomain,
  parseCaption,
  renderScene,
  rng,
  sampleScene,
  tally,
  type Verdict,
} from '../src/index.ts';

const d = loadDomain();
const fixtures = fileURLToPath(new URL('./fixtures/truth', import.meta.url));

function groundTruth(n: number, seed: number, heldOut = false) {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const scene = sampleScene(d, r, heldOut);
    return { scene, caption: formatCaption(scene.caption, d), image: renderScene(d, scene, r) };
  });
}

test('captions parse and format back identically', () => {
  for (const { caption, scene } of groundTruth(200, 1)) {
    const p = parseCaption(caption, d);
    assert.ok(p, caption);
    assert.deepEqual(p, scene.caption);
    assert.equal(formatCaption(p, d), caption);
  }
  assert.equal(parseCaption('a photo of a cat', d), null);
});

test('judge is (near) 100 % right on 300 TS-rendered ground-truth images', () => {
  const verdicts: Verdict[] = groundTruth(300, 7).map((g) => judge(g.caption, g.image, d));
  const t = tally(verdicts);
  assert.equal(t.parsed, 300);
  for (const [k, v] of Object.entries(t.perAttribute)) assert.ok(v.accuracy >= 0.99, `${k}: ${v.accuracy}`);
  assert.ok(t.overall.accuracy >= 0.995, String(t.overall.accuracy));
  const held = tally(groundTruth(100, 8, true).map((g) => judge(g.caption, g.image, d)));
  assert.ok(held.overall.accuracy >= 0.995, String(held.overall.accuracy));
});

test('judge is 100 % right on the Python-rendered (PIL) fixture', () => {
  const { tally: t } = judgeFolder(fixtures, d);
  assert.equal(t.images, 40);
  assert.equal(t.overall.accuracy, 1);
});

function other<T>(xs: T[], not: T, r: () => number): T {
  const pool = xs.filter((x) => x !== not);
  return pool[Math.floor(r() * pool.length)]!;
}

test('judge rejects captions with one attribute swapped', () => {
  const r = rng(99);
  const counts: Record<string, [number, number]> = {};
  const bump = (k: string, ok: boolean) => {
    const e = (counts[k] ??= [0, 0]);
    e[1]++;
    if (ok) e[0]++;
  };
  for (const g of groundTruth(300, 11)) {
    const p = g.scene.caption;
    const variants: [string, ParsedCaption][] = [];
    const clone = (): ParsedCaption => JSON.parse(JSON.stringify(p)) as ParsedCaption;
    let q = clone();
    q.background = other(Object.keys(d.backgrounds), p.background, r);
    variants.push(['background', q]);
    q = clone();
    const c = other(Object.keys(d.colors), p.objects[0]!.color, r);
    q.objects[0]!.color = c;
    if (p.kind === 'count') q.objects[1]!.color = c;
    if (p.kind === 'relation' && q.objects[1]!.color === c && q.objects[1]!.shape === q.objects[0]!.shape) q = clone();
    else variants.push(['color', q]);
    q = clone();
    const s = other(d.shapes, p.objects[0]!.shape, r);
    q.objects[0]!.shape = s;
    if (p.kind === 'count') q.objects[1]!.shape = s;
    if (!(p.kind === 'relation' && q.objects[1]!.color === q.objects[0]!.color && q.objects[1]!.shape === s))
      variants.push(['shape', q]);
    if (p.kind === 'single') {
      q = clone();
      q.objects[0]!.position = other(Object.keys(d.positions), p.objects[0]!.position!, r);
      variants.push(['position', q]);
      q = clone();
      q.objects[0]!.size = other(Object.keys(d.sizes), p.objects[0]!.size!, r);
      variants.push(['size', q]);
    }
    if (p.kind === 'relation') {
      q = clone();
      const opposite: Record<string, string> = { above: 'below', below: 'above', 'left of': 'right of', 'right of': 'left of' };
      q.relation = opposite[p.relation!]!;
      variants.push(['relation', q]);
    }
    for (const [attr, wrong] of variants) {
      const v = judge(formatCaption(wrong, d), g.image, d);
      bump(attr, v.attributes[attr as keyof typeof v.attributes] === false);
    }
  }
  for (const [k, [rejected, total]] of Object.entries(counts)) {
    assert.ok(total > 10, k);
    assert.ok(rejected / total >= 0.99, `${k}: rejected ${rejected}/${total}`);
  }
});

test('an empty canvas fails every object attribute', () => {
  const img = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };
  const v = judge('a small red circle at the top left on a gray background', img, d as Domain);
  assert.equal(v.attributes.background, true);
  assert.equal(v.attributes.color, false);
  assert.equal(v.attributes.count, false);
});
