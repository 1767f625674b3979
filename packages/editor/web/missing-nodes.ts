/**
 * Nodes whose type the server does not have (a pack that is not installed). litegraph 0.7 keeps them as bare
 * `LGraphNode`s holding the saved JSON (`last_serialization`, flagged `has_errors`, drawn red) but titles them
 * "undefined" when the file has no title (ComfyUI omits titles equal to the default) and shows nothing of their
 * values. Here they get their type as title and their `widgets_values` drawn as read-only rows, as ComfyUI
 * shows them; saving writes the file's JSON back unchanged except what the user can change on such a node
 * (position, size, title, colour, mode, links), so nothing of the uninstalled pack's settings is lost.
 */
import { LiteGraph, type LGraphNodeType, type LGraphType } from './litegraph.ts';

type Serialized = Record<string, unknown> & { type: string; title?: string; widgets_values?: unknown };

export interface MissingNode extends LGraphNodeType {
  has_errors: true;
  last_serialization: Serialized;
  /** The title litegraph would save as "no title" (the type, or a subgraph's name). */
  ggDefaultTitle: string;
}

export function isMissingNode(node: unknown): node is MissingNode {
  const n = node as Partial<MissingNode> | null;
  return !!n && n.has_errors === true && typeof n.last_serialization?.type === 'string';
}

/**
 * Gives every placeholder node of the graph its type as title, its saved values on screen and a faithful
 * `serialize`. `labels` names types that are not node classes but are known otherwise (subgraph ids).
 */
export function adoptMissingNodes(graph: LGraphType, labels: ReadonlyMap<string, string> = new Map()): void {
  for (const node of (graph as unknown as { _nodes: unknown[] })._nodes) {
    if (!isMissingNode(node) || (node as { ggAdopted?: boolean }).ggAdopted) continue;
    const saved = node.last_serialization;
    node.ggDefaultTitle = labels.get(saved.type) ?? saved.type;
    node.title = saved.title ?? node.ggDefaultTitle;
    const values = rowsOf(saved.widgets_values);
    const rowsTop = slotRows(node) * LiteGraph.NODE_SLOT_HEIGHT + 8;
    node.size = [Math.max(node.size[0], 240), Math.max(node.size[1], rowsTop + values.length * (LiteGraph.NODE_WIDGET_HEIGHT + 4))];
    Object.assign(node, {
      ggAdopted: true,
      onDrawForeground(this: MissingNode, ctx: CanvasRenderingContext2D) {
        drawValues(this, ctx, values, rowsTop);
      },
      serialize(this: MissingNode) {
        return serializeMissing(this);
      },
    });
  }
}

/** The saved JSON with the fields a user can change on the node brought up to date. */
function serializeMissing(node: MissingNode): Serialized {
  const saved = node.last_serialization;
  const out: Serialized = JSON.parse(JSON.stringify(saved)) as Serialized;
  Object.assign(out, {
    id: node.id,
    pos: [node.pos[0], node.pos[1]],
    size: [node.size[0], node.size[1]],
    flags: JSON.parse(JSON.stringify(node.flags ?? {})) as unknown,
    mode: node.mode,
  });
  if ((node as { order?: number }).order !== undefined) out.order = (node as { order?: number }).order;
  if (node.inputs) out.inputs = node.inputs.map((input) => ({ ...input }));
  if (node.outputs) out.outputs = node.outputs.map((output) => ({ ...output, links: output.links ? [...output.links] : output.links }));
  if (node.title !== node.ggDefaultTitle || saved.title !== undefined) out.title = node.title;
  for (const key of ['color', 'bgcolor'] as const) {
    const value = (node as unknown as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function slotRows(node: LGraphNodeType): number {
  return Math.max(node.inputs?.length ?? 0, node.outputs?.length ?? 0);
}

/** widgets_values as display text (object-shaped ones, which some extensions save, as name: value). */
function rowsOf(values: unknown): string[] {
  const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));
  if (Array.isArray(values)) return values.map(text);
  if (values && typeof values === 'object') return Object.entries(values).map(([k, v]) => `${k}: ${text(v)}`);
  return [];
}

function drawValues(node: MissingNode, ctx: CanvasRenderingContext2D, rows: string[], top: number): void {
  if (node.flags?.collapsed) return;
  const height = LiteGraph.NODE_WIDGET_HEIGHT;
  const width = node.size[0] - 30;
  ctx.save();
  ctx.font = `${LiteGraph.NODE_SUBTEXT_SIZE}px Arial`;
  ctx.textBaseline = 'middle';
  rows.forEach((row, i) => {
    const y = top + i * (height + 4);
    ctx.fillStyle = 'rgba(0,0,0,0.35)';
    ctx.strokeStyle = 'rgba(255,255,255,0.25)';
    ctx.beginPath();
    ctx.roundRect(15, y, width, height, height / 2);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = '#ddd';
    ctx.textAlign = 'left';
    ctx.fillText(fit(ctx, row.replace(/\s+/g, ' '), width - 20), 25, y + height / 2);
  });
  ctx.restore();
}

/** Cuts a text to a width with an ellipsis (long prompts would run off the node). */
function fit(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  let end = text.length;
  while (end > 0 && ctx.measureText(`${text.slice(0, end)}…`).width > width) end--;
  return `${text.slice(0, end)}…`;
}
