// The pixel judge: decides per attribute whether an image shows its caption, from the pixels alone.
//  background = the most common palette label on the border (background palette only);
//  objects    = 4-connected components of non-background pixels (area >= minArea), colored by the majority
//               object-palette label of their pixels;
//  shape      = best IoU of the component's bbox-normalized mask against the unit shape templates;
//  position   = grid cell of the bbox center; size = bbox extent against the midpoint of the two sizes;
//  count      = number of components; relation = the centers of the two matched objects along the axis.
import { type Domain, type ParsedCaption, parseCaption } from './domain.ts';
import type { RgbImage } from './image.ts';
import { inside } from './render.ts';

export const ATTRIBUTES = ['background', 'color', 'shape', 'position', 'size', 'count', 'relation'] as const;
export type Attribute = (typeof ATTRIBUTES)[number];

export interface Component {
  area: number;
  color: string;
  colorShare: number;
  bbox: [number, number, number, number]; // x0, y0, x1, y1 inclusive
  cx: number;
  cy: number;
  extent: number;
  shape: string;
  shapeIou: number;
  position: string;
  size: string;
}
export interface Analysis {
  background: string;
  components: Component[];
}
export interface Verdict {
  caption: string;
  parsed: ParsedCaption | null;
  attributes: Partial<Record<Attribute, boolean>>;
  analysis: Analysis;
}
export interface JudgeOptions {
  minArea?: number;
  relationMargin?: number;
}

interface Label {
  name: string;
  rgb: readonly number[];
  isBackground: boolean;
}

function labels(d: Domain): Label[] {
  return [
    ...Object.entries(d.colors).map(([name, rgb]) => ({ name, rgb, isBackground: false })),
    ...Object.entries(d.backgrounds).map(([name, rgb]) => ({ name, rgb, isBackground: true })),
  ];
}

function nearest(ls: Label[], r: number, g: number, b: number): number {
  let best = 0;
  let bd = Infinity;
  for (let i = 0; i < ls.length; i++) {
    const c = ls[i]!.rgb;
    const dd = (c[0]! - r) ** 2 + (c[1]! - g) ** 2 + (c[2]! - b) ** 2;
    if (dd < bd) {
      bd = dd;
      best = i;
    }
  }
  return best;
}

const TEMPLATE_RES = 16;
const templateCache = new Map<string, Uint8Array>();
function template(shape: string): Uint8Array {
  let t = templateCache.get(shape);
  if (!t) {
    t = new Uint8Array(TEMPLATE_RES * TEMPLATE_RES);
    for (let y = 0; y < TEMPLATE_RES; y++)
      for (let x = 0; x < TEMPLATE_RES; x++)
        t[y * TEMPLATE_RES + x] = inside(shape, (x + 0.5) / TEMPLATE_RES, (y + 0.5) / TEMPLATE_RES) ? 1 : 0;
    templateCache.set(shape, t);
  }
  return t;
}

export function analyze(img: RgbImage, d: Domain, opts: JudgeOptions = {}): Analysis {
  const minArea = opts.minArea ?? 12;
  const { width: W, height: H, data } = img;
  const ls = labels(d);
  const lab = new Int16Array(W * H);
  for (let k = 0; k < W * H; k++) lab[k] = nearest(ls, data[k * 3]!, data[k * 3 + 1]!, data[k * 3 + 2]!);
  // background: most common background label on the border
  const votes = new Map<number, number>();
  for (let x = 0; x < W; x++)
    for (const y of [0, H - 1]) votes.set(lab[y * W + x]!, (votes.get(lab[y * W + x]!) ?? 0) + 1);
  for (let y = 1; y < H - 1; y++)
    for (const x of [0, W - 1]) votes.set(lab[y * W + x]!, (votes.get(lab[y * W + x]!) ?? 0) + 1);
  let bgIdx = -1;
  let bgVotes = -1;
  for (const [i, v] of votes) {
    if (ls[i]!.isBackground && v > bgVotes) {
      bgIdx = i;
      bgVotes = v;
    }
  }
  if (bgIdx < 0) bgIdx = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  // connected components of non-background pixels
  const seen = new Uint8Array(W * H);
  const comps: Component[] = [];
  const cellW = W / d.grid;
  const cellH = H / d.grid;
  const sizeEntries = Object.entries(d.sizes).sort((a, b) => a[1].bbox_extent - b[1].bbox_extent);
  const stack: number[] = [];
  for (let s = 0; s < W * H; s++) {
    if (seen[s] || lab[s] === bgIdx) continue;
    const pix: number[] = [];
    stack.push(s);
    seen[s] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      pix.push(p);
      const x = p % W;
      const y = (p - x) / W;
      const nb = [x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1, y > 0 ? p - W : -1, y < H - 1 ? p + W : -1];
      for (const q of nb) {
        if (q >= 0 && !seen[q] && lab[q] !== bgIdx) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (pix.length < minArea) continue;
    let x0 = W, y0 = H, x1 = -1, y1 = -1;
    const cv = new Map<number, number>();
    for (const p of pix) {
      const x = p % W;
      const y = (p - x) / W;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      const l = lab[p]!;
      if (!ls[l]!.isBackground) cv.set(l, (cv.get(l) ?? 0) + 1);
    }
    const best = [...cv.entries()].sort((a, b) => b[1] - a[1])[0];
    if (!best) continue; // a blob of another background color only: not an object
    // shape: normalized mask vs templates
    const member = new Uint8Array(W * H);
    for (const p of pix) member[p] = 1;
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    const mask = new Uint8Array(TEMPLATE_RES * TEMPLATE_RES);
    for (let ty = 0; ty < TEMPLATE_RES; ty++)
      for (let tx = 0; tx < TEMPLATE_RES; tx++) {
        const x = x0 + Math.min(bw - 1, Math.floor(((tx + 0.5) / TEMPLATE_RES) * bw));
        const y = y0 + Math.min(bh - 1, Math.floor(((ty + 0.5) / TEMPLATE_RES) * bh));
        mask[ty * TEMPLATE_RES + tx] = member[y * W + x]!;
      }
    let shape = d.shapes[0]!;
    let shapeIou = -1;
    for (const sh of d.shapes) {
      const t = template(sh);
      let inter = 0;
      let uni = 0;
      for (let k = 0; k < t.length; k++) {
        inter += t[k]! & mask[k]!;
        uni += t[k]! | mask[k]!;
      }
      const iou = uni ? inter / uni : 0;
      if (iou > shapeIou) {
        shapeIou = iou;
        shape = sh;
      }
    }
    const cx = (x0 + x1 + 1) / 2;
    const cy = (y0 + y1 + 1) / 2;
    const row = Math.min(d.grid - 1, Math.floor(cy / cellH));
    const col = Math.min(d.grid - 1, Math.floor(cx / cellW));
    const position = Object.entries(d.positions).find(([, p]) => p.row === row && p.col === col)![0];
    const extent = Math.max(bw, bh);
    let size = sizeEntries[0]![0];
    for (let i = 1; i < sizeEntries.length; i++) {
      const mid = (sizeEntries[i - 1]![1].bbox_extent + sizeEntries[i]![1].bbox_extent) / 2;
      if (extent >= mid) size = sizeEntries[i]![0];
    }
    comps.push({
      area: pix.length,
      color: ls[best[0]]!.name,
      colorShare: best[1] / pix.length,
      bbox: [x0, y0, x1, y1],
      cx,
      cy,
      extent,
      shape,
      shapeIou,
      position,
      size,
    });
  }
  comps.sort((a, b) => b.area - a.area);
  return { background: ls[bgIdx]!.name, components: comps };
}

function permutations(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  const out: number[][] = [];
  for (const rest of permutations(n, k - 1))
    for (let i = 0; i < n; i++) if (!rest.includes(i)) out.push([...rest, i]);
  return out;
}

/** Judges one image against its caption. Attributes not stated by the caption are absent from the verdict. */
export function judge(caption: string, img: RgbImage, d: Domain, opts: JudgeOptions = {}): Verdict {
  const parsed = parseCaption(caption, d);
  const analysis = analyze(img, d, opts);
  const attributes: Partial<Record<Attribute, boolean>> = {};
  if (!parsed) return { caption, parsed, attributes, analysis };
  attributes.background = analysis.background === parsed.background;
  const comps = analysis.components;
  attributes.count = comps.length === parsed.count;
  // assign caption objects to components (the largest ones first), maximizing matched attributes
  const objs = parsed.objects;
  let bestAssign: (Component | undefined)[] = objs.map(() => undefined);
  let bestScore = -1;
  const candidates = comps.slice(0, 6);
  const k = Math.min(objs.length, candidates.length);
  for (const perm of permutations(candidates.length, k)) {
    const assign = objs.map((_, i) => (i < perm.length ? candidates[perm[i]!] : undefined));
    let score = 0;
    assign.forEach((c, i) => {
      const o = objs[i]!;
      if (!c) return;
      score += (c.color === o.color ? 4 : 0) + (c.shape === o.shape ? 2 : 0) + (o.position && c.position === o.position ? 1 : 0);
    });
    if (parsed.relation && assign[0] && assign[1] && relationHolds(parsed, assign[0], assign[1], d, opts)) score += 0.5;
    if (score > bestScore) {
      bestScore = score;
      bestAssign = assign;
    }
  }
  const all = (f: (c: Component, o: (typeof objs)[number]) => boolean) =>
    objs.every((o, i) => bestAssign[i] !== undefined && f(bestAssign[i]!, o));
  attributes.color = all((c, o) => c.color === o.color);
  attributes.shape = all((c, o) => c.shape === o.shape);
  if (objs.some((o) => o.position)) attributes.position = all((c, o) => !o.position || c.position === o.position);
  if (objs.some((o) => o.size)) attributes.size = all((c, o) => !o.size || c.size === o.size);
  if (parsed.relation) {
    const [a, b] = bestAssign;
    attributes.relation = !!a && !!b && relationHolds(parsed, a, b, d, opts);
  }
  return { caption, parsed, attributes, analysis };
}

function relationHolds(p: ParsedCaption, a: Component, b: Component, d: Domain, opts: JudgeOptions): boolean {
  const rel = d.relations[p.relation!]!;
  const margin = opts.relationMargin ?? 4;
  const delta = rel.axis === 'y' ? a.cy - b.cy : a.cx - b.cx;
  return rel.sign < 0 ? delta < -margin : delta > margin;
}

export interface Tally {
  images: number;
  parsed: number;
  perAttribute: Record<string, { pass: number; total: number; accuracy: number }>;
  overall: { pass: number; total: number; accuracy: number };
  allAttributesCorrect: number;
}

export function tally(verdicts: Verdict[]): Tally {
  const per: Record<string, { pass: number; total: number; accuracy: number }> = {};
  let pass = 0;
  let total = 0;
  let allOk = 0;
  let parsed = 0;
  for (const v of verdicts) {
    if (v.parsed) parsed++;
    let ok = !!v.parsed;
    for (const [k, val] of Object.entries(v.attributes)) {
      const e = (per[k] ??= { pass: 0, total: 0, accuracy: 0 });
      e.total++;
      total++;
      if (val) {
        e.pass++;
        pass++;
      } else ok = false;
    }
    if (ok) allOk++;
  }
  for (const e of Object.values(per)) e.accuracy = e.total ? e.pass / e.total : 0;
  return {
    images: verdicts.length,
    parsed,
    perAttribute: per,
    overall: { pass, total, accuracy: total ? pass / total : 0 },
    allAttributesCorrect: verdicts.length ? allOk / verdicts.length : 0,
  };
}
