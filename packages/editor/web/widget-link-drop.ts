/**
 * Dropping a link on a widget turns the widget into an input and connects the link to it, as ComfyUI does (in
 * litegraph 0.7 a link dropped on a node body only looks for a free socket of the same type). Wraps the
 * canvas's mouse-up: when a link being dragged from an output is released over a widget whose kind the output
 * can feed, the widget gets its socket and the link; litegraph then finishes the mouse-up with nothing left
 * to connect.
 */
import { typesCompatible } from './core.ts';
import { LGraphCanvas, LiteGraph, type LGraphNodeType } from './litegraph.ts';
import { isEditorNode, type EditorNode, type EditorWidget } from './node-state.ts';
import { inputSlotForWidget, widgetKind } from './node-types.ts';

interface ConnectingCanvas {
  connecting_node: LGraphNodeType | null;
  connecting_output: { type: string } | null;
  connecting_slot: number;
  connecting_pos: unknown;
  graph: { getNodeOnPos(x: number, y: number, nodes?: unknown): LGraphNodeType | null } | null;
  visible_nodes: unknown;
  isOverNodeInput(node: LGraphNodeType, x: number, y: number): number;
  convertEventToCanvasOffset(e: MouseEvent): [number, number];
}

export function installWidgetLinkDrop(): void {
  const proto = LGraphCanvas.prototype as unknown as { processMouseUp(this: ConnectingCanvas, e: MouseEvent): unknown };
  const original = proto.processMouseUp;
  proto.processMouseUp = function (e) {
    if (this.connecting_node && this.connecting_output && this.graph && ((e as PointerEvent).isPrimary ?? true)) {
      const [x, y] = this.convertEventToCanvasOffset(e);
      const node = this.graph.getNodeOnPos(x, y, this.visible_nodes);
      if (isEditorNode(node) && node !== this.connecting_node && this.isOverNodeInput(node, x, y) === -1) {
        const widget = widgetAt(node, y - node.pos[1]!);
        const kind = widget ? widgetKind(node, widget.name) : undefined;
        if (widget && kind && typesCompatible(this.connecting_output.type, kind)) {
          const slot = inputSlotForWidget(node, widget.name);
          if (slot >= 0) this.connecting_node.connect(this.connecting_slot, node as never, slot);
          this.connecting_node = null;
          this.connecting_output = null;
          this.connecting_pos = null;
          this.connecting_slot = -1;
        }
      }
    }
    return original.call(this, e);
  };
}

/** The widget drawn at a height inside the node (litegraph records each widget's last drawn top, `last_y`). */
function widgetAt(node: EditorNode, localY: number): EditorWidget | undefined {
  return node.widgets?.find((w) => {
    if (w.last_y === undefined || (w as { disabled?: boolean }).disabled) return false;
    const height = (w as { computeSize?: (width: number) => [number, number] }).computeSize?.(node.size[0])[1] ?? LiteGraph.NODE_WIDGET_HEIGHT;
    return localY >= w.last_y && localY <= w.last_y + height;
  });
}
