/**
 * Groups as ComfyUI has them, on litegraph 0.7's LGraphGroup:
 * - titles are drawn whatever the file says: ComfyUI's example files have no `font_size`, and litegraph 0.7
 *   then draws "undefinedpx" text at y = NaN (nothing); a missing size reads as 24 (ComfyUI's default);
 * - a group made from the selection (Ctrl+G, or Add Group with nodes selected) fits around those nodes;
 * - moving a group moves the nodes whose centre is in it and the groups nested in it (litegraph moves every
 *   node that merely overlaps, and never nested groups); the innermost group under the mouse is the one picked;
 * - what each group's title was drawn with is kept on it (`ggDrawn`), for tests and scripts.
 */
import type { EditorApp } from './app.ts';
import { LGraphCanvas, LiteGraph, type LGraphNodeType } from './litegraph.ts';

export const DEFAULT_GROUP_FONT_SIZE = 24;
/** Space between a fitted group's border and its nodes. */
const PADDING = 10;

export interface Group {
  title: string;
  font_size?: number;
  color?: string;
  pos: Float32Array | number[];
  size: Float32Array | number[];
  _bounding: Float32Array;
  _nodes: LGraphNodeType[];
  graph: unknown;
  /** Groups nested in this one, found with its nodes when it is picked up. */
  ggChildren?: Group[];
  ggDrawn?: { title: string; fontSize: number; font: string };
  configure(data: Record<string, unknown>): void;
  serialize(): Record<string, unknown>;
  move(dx: number, dy: number, ignoreNodes?: boolean): void;
  recomputeInsideNodes(): void;
}

type GroupClass = { new (title?: string): Group; prototype: Group };

export const LGraphGroup = (LiteGraph as unknown as { LGraphGroup: GroupClass }).LGraphGroup;

/** Height of a group's title bar (where its title is drawn, and where a double-click edits it). */
export function titleHeight(group: Group): number {
  return fontSize(group) * 1.4;
}

function fontSize(group: Group): number {
  return typeof group.font_size === 'number' && group.font_size > 0 ? group.font_size : DEFAULT_GROUP_FONT_SIZE;
}

function bounds(group: Group): [number, number, number, number] {
  const b = group._bounding;
  return [b[0]!, b[1]!, b[0]! + b[2]!, b[1]! + b[3]!];
}

/** A node's box with its title bar (litegraph's getBounding, typed for a Float32Array). */
function nodeBounding(node: LGraphNodeType, out: Float32Array): Float32Array {
  return (node as unknown as { getBounding(out: Float32Array): Float32Array }).getBounding(out);
}

function groupsOf(graph: unknown): Group[] {
  return (graph as { _groups: Group[] })._groups;
}

/** Patches litegraph's group class and drawing once, before any graph is loaded. */
export function installGroups(): void {
  (LiteGraph as unknown as { DEFAULT_GROUP_FONT_SIZE: number }).DEFAULT_GROUP_FONT_SIZE = DEFAULT_GROUP_FONT_SIZE;
  const proto = LGraphGroup.prototype;

  const configure = proto.configure;
  proto.configure = function (this: Group, data: Record<string, unknown>) {
    configure.call(this, data);
    if (typeof this.font_size !== 'number') this.font_size = DEFAULT_GROUP_FONT_SIZE;
    if (typeof this.title !== 'string') this.title = 'Group';
  };

  proto.recomputeInsideNodes = function (this: Group) {
    const [x0, y0, x1, y1] = bounds(this);
    const inside = (x: number, y: number) => x >= x0 && x <= x1 && y >= y0 && y <= y1;
    const box = new Float32Array(4);
    this._nodes = (this.graph as { _nodes: LGraphNodeType[] })._nodes.filter((node) => {
      nodeBounding(node, box);
      return inside(box[0]! + box[2]! / 2, box[1]! + box[3]! / 2);
    });
    // Every group inside, however deeply nested (they all move with this one).
    this.ggChildren = groupsOf(this.graph).filter((g) => {
      if (g === this) return false;
      const [a0, b0, a1, b1] = bounds(g);
      return inside(a0, b0) && inside(a1, b1);
    });
  };

  proto.move = function (this: Group, dx: number, dy: number, ignoreNodes?: boolean) {
    // Being inside is transitive: this group's nodes already include those of the groups nested in it, and
    // its children every group nested deeper, so each node and group moves once.
    for (const group of [this, ...(this.ggChildren ?? [])]) {
      group.pos[0] = group.pos[0]! + dx;
      group.pos[1] = group.pos[1]! + dy;
    }
    if (ignoreNodes) return;
    for (const node of this._nodes) {
      node.pos[0] += dx;
      node.pos[1] += dy;
    }
  };

  // The innermost group under the point, so a nested group can be picked up on its own.
  const graphProto = (window as unknown as { LGraph: { prototype: { getGroupOnPos(x: number, y: number): Group | null } } }).LGraph.prototype;
  graphProto.getGroupOnPos = function (this: unknown, x: number, y: number) {
    const hits = groupsOf(this).filter((g) => {
      const [x0, y0, x1, y1] = bounds(g);
      return x >= x0 && x <= x1 && y >= y0 && y <= y1;
    });
    hits.sort((a, b) => a._bounding[2]! * a._bounding[3]! - b._bounding[2]! * b._bounding[3]!);
    return hits[0] ?? null;
  };

  (LGraphCanvas.prototype as unknown as { drawGroups: (canvas: unknown, ctx: CanvasRenderingContext2D) => void }).drawGroups = function (
    this: { graph?: unknown; visible_area: Float32Array; editor_alpha: number },
    _canvas: unknown,
    ctx: CanvasRenderingContext2D,
  ) {
    if (!this.graph) return;
    const [vx, vy, vw, vh] = this.visible_area;
    // Outer groups first, so nested ones are drawn over them.
    const groups = [...groupsOf(this.graph)].sort((a, b) => b._bounding[2]! * b._bounding[3]! - a._bounding[2]! * a._bounding[3]!);
    for (const group of groups) {
      const [x0, y0, x1, y1] = bounds(group);
      if (x1 < vx! || y1 < vy! || x0 > vx! + vw! || y0 > vy! + vh!) continue;
      drawGroup(ctx, group, this.editor_alpha);
    }
  };
}

function drawGroup(ctx: CanvasRenderingContext2D, group: Group, alpha: number): void {
  const [x, y] = [group._bounding[0]!, group._bounding[1]!];
  const [w, h] = [group._bounding[2]!, group._bounding[3]!];
  const size = fontSize(group);
  const color = group.color || '#3f789e';
  ctx.save();
  ctx.fillStyle = color;
  ctx.strokeStyle = color;
  ctx.globalAlpha = 0.25 * alpha;
  ctx.fillRect(x, y, w, h);
  // A stronger band behind the title, as ComfyUI draws it.
  ctx.globalAlpha = 0.35 * alpha;
  ctx.fillRect(x, y, w, titleHeight(group));
  ctx.globalAlpha = alpha;
  ctx.lineWidth = 1;
  ctx.strokeRect(x + 0.5, y + 0.5, w, h);
  // The resize handle in the corner (litegraph resizes from there).
  ctx.beginPath();
  ctx.moveTo(x + w, y + h);
  ctx.lineTo(x + w - 10, y + h);
  ctx.lineTo(x + w, y + h - 10);
  ctx.fill();
  const font = `${size}px Arial`;
  ctx.font = font;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.fillStyle = '#e8e8e8';
  ctx.fillText(group.title, x + 6, y + size);
  ctx.restore();
  group.ggDrawn = { title: group.title, fontSize: size, font };
}

/** A new group fitted around nodes (with room for its title above them); added to the graph. */
export function groupAround(app: EditorApp, nodes: LGraphNodeType[], title = 'Group'): Group | undefined {
  if (!nodes.length) return undefined;
  const box = new Float32Array(4);
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const node of nodes) {
    nodeBounding(node, box);
    x0 = Math.min(x0, box[0]!);
    y0 = Math.min(y0, box[1]!);
    x1 = Math.max(x1, box[0]! + box[2]!);
    y1 = Math.max(y1, box[1]! + box[3]!);
  }
  const group = new LGraphGroup(title);
  group.font_size = DEFAULT_GROUP_FONT_SIZE;
  const top = titleHeight(group);
  group.pos = [x0 - PADDING, y0 - PADDING - top];
  group.size = [x1 - x0 + 2 * PADDING, y1 - y0 + 2 * PADDING + top];
  app.graph.add(group as never);
  app.canvas.setDirty(true, true);
  return group;
}

/** The group whose title bar is at a graph position (innermost first), if any. */
export function groupTitleAt(app: EditorApp, x: number, y: number): Group | undefined {
  const group = app.graph.getGroupOnPos(x, y) as unknown as Group | null;
  if (!group) return undefined;
  return y <= group._bounding[1]! + titleHeight(group) ? group : undefined;
}
