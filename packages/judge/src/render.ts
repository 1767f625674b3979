// Ground-truth scenes rendered in TypeScript from domain.json (same geometry as tools/tiny-sd/domain.py;
// pixel-exact agreement with PIL is not needed, only the same semantics).
import type { Domain, ParsedCaption } from './domain.ts';
import type { RgbImage } from './image.ts';

export interface SceneObject {
  color: string;
  shape: string;
  size: string;
  row: number;
  col: number;
}
export interface Scene {
  caption: ParsedCaption;
  objects: SceneObject[];
}

/** mulberry32: small seeded PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

export function sampleScene(d: Domain, r: () => number, heldOut = false): Scene {
  const ho = new Set(d.held_out.map((h) => `${h.color}/${h.shape}`));
  const pairs = Object.keys(d.colors).flatMap((c) => d.shapes.map((s) => [c, s] as const));
  const pool = pairs.filter(([c, s]) => ho.has(`${c}/${s}`) === heldOut);
  const trainPairs = pairs.filter(([c, s]) => !ho.has(`${c}/${s}`));
  const background = pick(r, Object.keys(d.backgrounds));
  const u = r();
  const kinds = Object.entries(d.kinds);
  let kind = 'single';
  let acc = 0;
  for (const [k, w] of kinds) {
    acc += w;
    if (u < acc) {
      kind = k;
      break;
    }
  }
  const sizes = Object.keys(d.sizes);
  if (kind === 'single') {
    const [color, shape] = pick(r, pool);
    const position = pick(r, Object.keys(d.positions));
    const size = pick(r, sizes);
    const p = d.positions[position]!;
    return {
      caption: { kind: 'single', background, objects: [{ color, shape, size, position }], count: 1 },
      objects: [{ color, shape, size, row: p.row, col: p.col }],
    };
  }
  const cells: [number, number][] = [];
  for (let i = 0; i < d.grid; i++) for (let j = 0; j < d.grid; j++) cells.push([i, j]);
  if (kind === 'count') {
    const [color, shape] = pick(r, pool);
    const a = Math.floor(r() * cells.length);
    let b = Math.floor(r() * (cells.length - 1));
    if (b >= a) b++;
    const o = { color, shape, size: 'small' };
    return {
      caption: { kind: 'count', background, objects: [{ ...o }, { ...o }], count: 2 },
      objects: [a, b].map((k) => ({ ...o, row: cells[k]![0], col: cells[k]![1] })),
    };
  }
  let A = pick(r, pool);
  let B = pick(r, trainPairs);
  while (B[0] === A[0] && B[1] === A[1]) B = pick(r, trainPairs);
  if (heldOut && r() < 0.5) [A, B] = [B, A];
  const relation = pick(r, Object.keys(d.relations));
  const rel = d.relations[relation]!;
  const fixed = Math.floor(r() * d.grid);
  let i = Math.floor(r() * d.grid);
  let j = Math.floor(r() * (d.grid - 1));
  if (j >= i) j++;
  if (i > j) [i, j] = [j, i];
  const [ia, ib] = rel.sign < 0 ? [i, j] : [j, i];
  const ca = rel.axis === 'y' ? [ia, fixed] : [fixed, ia];
  const cb = rel.axis === 'y' ? [ib, fixed] : [fixed, ib];
  return {
    caption: {
      kind: 'relation',
      background,
      objects: [
        { color: A[0], shape: A[1] },
        { color: B[0], shape: B[1] },
      ],
      count: 2,
      relation,
    },
    objects: [
      { color: A[0], shape: A[1], size: 'small', row: ca[0]!, col: ca[1]! },
      { color: B[0], shape: B[1], size: 'small', row: cb[0]!, col: cb[1]! },
    ],
  };
}

/** Rasterizes a scene (no anti-aliasing: every pixel is a palette color). */
export function renderScene(d: Domain, scene: Scene, r: () => number): RgbImage {
  const n = d.image_size;
  const data = new Uint8Array(n * n * 3);
  const bg = d.backgrounds[scene.caption.background]!;
  for (let k = 0; k < n * n; k++) data.set(bg, k * 3);
  const cell = n / d.grid;
  for (const o of scene.objects) {
    const rad = d.sizes[o.size]!.half_extent + (r() * 2 - 1) * d.sizes[o.size]!.jitter;
    let cx = (o.col + 0.5) * cell + (r() * 2 - 1) * d.center_jitter;
    let cy = (o.row + 0.5) * cell + (r() * 2 - 1) * d.center_jitter;
    cx = Math.min(Math.max(cx, rad + 1), n - rad - 1);
    cy = Math.min(Math.max(cy, rad + 1), n - rad - 1);
    const color = d.colors[o.color]!;
    const x0 = Math.round(cx - rad);
    const y0 = Math.round(cy - rad);
    const w = Math.round(cx + rad) - x0;
    for (let y = y0; y < y0 + w; y++) {
      for (let x = x0; x < x0 + w; x++) {
        if (x < 0 || y < 0 || x >= n || y >= n) continue;
        const u = (x + 0.5 - x0) / w; // 0..1 inside the bbox
        const v = (y + 0.5 - y0) / w;
        if (inside(o.shape, u, v)) data.set(color, (y * n + x) * 3);
      }
    }
  }
  return { width: n, height: n, data };
}

/** Membership of a point (u, v in 0..1, v down) in a unit shape; also the judge's shape templates. */
export function inside(shape: string, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25;
    case 'square':
      return true;
    case 'triangle':
      return Math.abs(u - 0.5) <= v / 2;
    case 'cross':
      return Math.abs(u - 0.5) <= 0.18 || Math.abs(v - 0.5) <= 0.18;
    default:
      throw new Error(`unknown shape ${shape}`);
  }
}
