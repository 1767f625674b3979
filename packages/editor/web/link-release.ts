/**
 * Releasing a dragged link on empty canvas, as ComfyUI's settings `Comfy.LinkRelease.Action` and
 * `Comfy.LinkRelease.ActionShift` (with Shift held) say: the context menu (Add Node / Search, filtered to the
 * link's type), the search box (the same filter; the new node is connected), or nothing. Defaults as
 * ComfyUI's: the menu, and with Shift the search box. litegraph 0.7 hard-codes that choice in its mouse-up
 * handler, so its own is switched off (theme.ts) and the choice is made here, after litegraph has finished
 * the release. Installed before the canvas is created: litegraph binds its mouse-up handler then.
 */
import type { EditorApp } from './app.ts';
import { LGraphCanvas, type LGraphNodeType } from './litegraph.ts';

export const LINK_RELEASE = 'Comfy.LinkRelease.Action';
export const LINK_RELEASE_SHIFT = 'Comfy.LinkRelease.ActionShift';

interface ReleasingCanvas {
  connecting_node: LGraphNodeType | null;
  connecting_output: { type: string } | null;
  connecting_input: { type: string } | null;
  graph: { getNodeOnPos(x: number, y: number, nodes?: unknown): LGraphNodeType | null } | null;
  visible_nodes: unknown;
  allow_searchbox: boolean;
  convertEventToCanvasOffset(e: MouseEvent): [number, number];
  showSearchBox(e: MouseEvent, options: Record<string, unknown>): void;
  showConnectionMenu(options: Record<string, unknown>): void;
}

export function installLinkRelease(app: EditorApp): void {
  const proto = LGraphCanvas.prototype as unknown as { processMouseUp(this: ReleasingCanvas, e: MouseEvent): unknown };
  const original = proto.processMouseUp;
  proto.processMouseUp = function (e) {
    let released: { node: LGraphNodeType; output: { type: string } | null; input: { type: string } | null } | undefined;
    if (this.connecting_node && this.graph && (e.button ?? 0) === 0) {
      const [x, y] = this.convertEventToCanvasOffset(e);
      if (!this.graph.getNodeOnPos(x, y, this.visible_nodes)) {
        released = { node: this.connecting_node, output: this.connecting_output, input: this.connecting_input };
      }
    }
    const result = original.call(this, e);
    if (released) {
      const action = String(app.settings?.get(e.shiftKey ? LINK_RELEASE_SHIFT : LINK_RELEASE) ?? (e.shiftKey ? 'search box' : 'context menu'));
      if (action === 'search box' && this.allow_searchbox) {
        if (released.output) this.showSearchBox(e, { node_from: released.node, slot_from: released.output, type_filter_in: released.output.type });
        else if (released.input) this.showSearchBox(e, { node_to: released.node, slot_from: released.input, type_filter_out: released.input.type });
      } else if (action === 'context menu') {
        if (released.output) this.showConnectionMenu({ nodeFrom: released.node, slotFrom: released.output, e });
        else if (released.input) this.showConnectionMenu({ nodeTo: released.node, slotTo: released.input, e });
      }
    }
    return result;
  };
}
