/**
 * Groups are dragged by their title bar only, as in ComfyUI's frontend: a press inside a group's body, where
 * no node is, is a press on the empty canvas: dragging pans the view (with Ctrl: a selection rectangle, which
 * litegraph already starts before it looks for groups). litegraph 0.7 picks up the group wherever it is
 * pressed, so a pan that starts over a big group would drag the group and everything in it instead. The
 * resize corner at the bottom right still resizes.
 *
 * Installed before the canvas is created: litegraph binds its mouse-down handler then.
 */
import { titleHeight, type Group } from './groups.ts';
import { LGraphCanvas } from './litegraph.ts';

interface GroupPressCanvas {
  selected_group: Group | null;
  selected_group_resizing: boolean;
  graph_mouse: Float32Array | number[];
}

export function installGroupTitleDrag(): void {
  const proto = LGraphCanvas.prototype as unknown as { processMouseDown(this: GroupPressCanvas, e: MouseEvent): unknown };
  const down = proto.processMouseDown;
  proto.processMouseDown = function (e) {
    const result = down.call(this, e);
    const group = this.selected_group;
    // litegraph has also set dragging_canvas for this press (it counts a group as background): with the group
    // put down, the drag pans.
    if (group && !this.selected_group_resizing && this.graph_mouse[1]! > group.pos[1]! + titleHeight(group)) this.selected_group = null;
    return result;
  };
}
