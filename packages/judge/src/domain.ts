// The tiny-sd caption/image domain, read from models/tiny-sd/domain.json (written by tools/tiny-sd/domain.py).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type RGB = readonly [number, number, number];

export interface PositionDef {
  phrase: string;
  row: number;
  col: number;
  region: [number, number, number, number];
}
export interface RelationDef {
  phrase: string;
  axis: 'x' | 'y';
  sign: -1 | 1;
}
export interface Domain {
  version: number;
  image_size: number;
  grid: number;
  colors: Record<string, RGB>;
  backgrounds: Record<string, RGB>;
  shapes: string[];
  shape_plurals: Record<string, string>;
  positions: Record<string, PositionDef>;
  sizes: Record<string, { half_extent: number; jitter: number; bbox_extent: number }>;
  relations: Record<string, RelationDef>;
  center_jitter: number;
  kinds: Record<string, number>;
  held_out: { color: string; shape: string }[];
}

export const DEFAULT_DOMAIN_PATH = fileURLToPath(new URL('../../../models/tiny-sd/domain.json', import.meta.url));

export function loadDomain(path: string = DEFAULT_DOMAIN_PATH): Domain {
  return JSON.parse(readFileSync(path, 'utf8')) as Domain;
}

export interface CaptionObject {
  color: string;
  shape: string;
  size?: string;
  position?: string;
}
export interface ParsedCaption {
  kind: 'single' | 'count' | 'relation';
  background: string;
  objects: CaptionObject[];
  count: number;
  relation?: string;
}

const alt = (xs: string[]): string =>
  '(' + [...xs].sort((a, b) => b.length - a.length).map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|') + ')';

/** Parses a caption of the domain grammar; returns null when it is not one. */
export function parseCaption(caption: string, d: Domain): ParsedCaption | null {
  const text = caption.toLowerCase().trim().replace(/\s+/g, ' ').replace(/[.!]$/, '');
  const sizes = alt(Object.keys(d.sizes));
  const colors = alt(Object.keys(d.colors));
  const shapes = alt(d.shapes);
  const plurals = alt(Object.values(d.shape_plurals));
  const bgs = alt(Object.keys(d.backgrounds));
  const posPhrases = Object.entries(d.positions);
  const positions = alt(posPhrases.map(([, p]) => p.phrase));
  const relPhrases = Object.entries(d.relations);
  const relations = alt(relPhrases.map(([, r]) => r.phrase));
  const tail = ` on an? ${bgs} background$`;
  let m = new RegExp(`^an? ${sizes} ${colors} ${shapes} ${positions}${tail}`).exec(text);
  if (m) {
    const position = posPhrases.find(([, p]) => p.phrase === m![4])![0];
    return {
      kind: 'single',
      background: m[5]!,
      objects: [{ size: m[1]!, color: m[2]!, shape: m[3]!, position }],
      count: 1,
    };
  }
  m = new RegExp(`^two ${sizes} ${colors} ${plurals}${tail}`).exec(text);
  if (m) {
    const shape = Object.entries(d.shape_plurals).find(([, p]) => p === m![3])![0];
    const o = { size: m[1]!, color: m[2]!, shape };
    return { kind: 'count', background: m[4]!, objects: [o, { ...o }], count: 2 };
  }
  m = new RegExp(`^an? ${colors} ${shapes} ${relations} an? ${colors} ${shapes}${tail}`).exec(text);
  if (m) {
    const relation = relPhrases.find(([, r]) => r.phrase === m![3])![0];
    return {
      kind: 'relation',
      background: m[6]!,
      objects: [
        { color: m[1]!, shape: m[2]! },
        { color: m[4]!, shape: m[5]! },
      ],
      count: 2,
      relation,
    };
  }
  return null;
}

/** The caption of a parsed scene (inverse of parseCaption), with the domain's grammar. */
export function formatCaption(p: ParsedCaption, d: Domain): string {
  const bg = `on a ${p.background} background`;
  const [a, b] = p.objects;
  if (!a) throw new Error('caption without objects');
  if (p.kind === 'single') return `a ${a.size} ${a.color} ${a.shape} ${d.positions[a.position!]!.phrase} ${bg}`;
  if (p.kind === 'count') return `two ${a.size} ${a.color} ${d.shape_plurals[a.shape]} ${bg}`;
  if (!b || !p.relation) throw new Error('relation caption needs two objects');
  return `a ${a.color} ${a.shape} ${d.relations[p.relation]!.phrase} a ${b.color} ${b.shape} ${bg}`;
}
