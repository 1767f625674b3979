/**
 * Pinned nodes (P, or the node menu's Pin) stay where they are, as in ComfyUI: litegraph 0.7 records the flag
 * but still lets them be dragged, resized and carried along by a group. A pin mark on the title shows it.
 */
import { LGraphCanvas, LiteGraph, type LGraphNodeType } from './litegraph.ts';
import type { Group } from './groups.ts';

const isPinned = (node: LGraphNodeType) => !!(node.flags as { pinned?: boolean } | undefined)?.pinned;

export function installPinning(): void {
  const proto = LGraphCanvas.prototype as unknown as {
    processMouseMove(e: MouseEvent): unknown;
    processMouseDown(e: MouseEvent): unknown;
    drawNode(node: LGraphNodeType, ctx: CanvasRenderingContext2D): void;
  };
  type CanvasState = { selected_nodes: Record<string, LGraphNodeType>; resizing_node: LGraphNodeType | null };

  // A drag moves every selected node: put the pinned ones back after each move.
  const move = proto.processMouseMove;
  proto.processMouseMove = function (this: CanvasState, e: MouseEvent) {
    const pinned = Object.values(this.selected_nodes ?? {}).filter(isPinned).map((n) => [n, n.pos[0], n.pos[1]] as const);
    const result = move.call(this, e);
    for (const [node, x, y] of pinned) {
      node.pos[0] = x;
      node.pos[1] = y;
    }
    return result;
  };
  const down = proto.processMouseDown;
  proto.processMouseDown = function (this: CanvasState, e: MouseEvent) {
    const result = down.call(this, e);
    if (this.resizing_node && isPinned(this.resizing_node)) this.resizing_node = null;
    return result;
  };

  const group = (LiteGraph as unknown as { LGraphGroup: { prototype: Group } }).LGraphGroup.prototype;
  const recompute = group.recomputeInsideNodes;
  group.recomputeInsideNodes = function (this: Group) {
    recompute.call(this);
    this._nodes = this._nodes.filter((n) => !isPinned(n));
  };

  const drawNode = proto.drawNode;
  proto.drawNode = function (this: unknown, node: LGraphNodeType, ctx: CanvasRenderingContext2D) {
    drawNode.call(this, node, ctx);
    if (!isPinned(node)) return;
    // Drawn in the node's space: a small pin at the right of the title bar.
    const x = (node.flags as { collapsed?: boolean }).collapsed ? LiteGraph.NODE_TITLE_HEIGHT * 2 : node.size[0] - 12;
    const y = -LiteGraph.NODE_TITLE_HEIGHT / 2;
    ctx.save();
    ctx.fillStyle = '#d9d9d9';
    ctx.beginPath();
    ctx.arc(x, y - 3, 4, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillRect(x - 1, y, 2, 7);
    ctx.restore();
  };
}
