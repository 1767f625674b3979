/**
 * ComfyUI's mouse habits that litegraph 0.7 has behind flags or does differently: Alt+drag on a node drags a
 * copy of it, and "Add Group" on the canvas menu fits the new group around the selected nodes (an empty box
 * only when nothing is selected). Double-click renaming is in title-editor.ts, pinning in pinning.ts. And no
 * first click taken for a double-click (below).
 */
import type { EditorApp } from './app.ts';
import { groupAround, LGraphGroup, DEFAULT_GROUP_FONT_SIZE } from './groups.ts';
import { LGraphCanvas, LiteGraph, type LGraphNodeType } from './litegraph.ts';

export function installMouseHabits(app: EditorApp): void {
  (LiteGraph as unknown as { alt_drag_do_clone_nodes: boolean }).alt_drag_do_clone_nodes = true;
  // litegraph says "no click yet" with last_mouseclick = 0 (at start, and again whenever the canvas is cleared,
  // e.g. when a workflow is opened) and times clicks with performance.now(), which counts from the page's load:
  // a first press within 300 ms of loading would be taken as a double-click (on the empty canvas, or a group, it
  // opens the search box). A fast start-up and a quick first press do meet. "No click" is kept as -Infinity.
  let lastClick = -Infinity;
  Object.defineProperty(app.canvas, 'last_mouseclick', {
    configurable: true,
    get: () => lastClick,
    set: (time: number) => {
      lastClick = time === 0 ? -Infinity : time;
    },
  });

  (LGraphCanvas as unknown as { onGroupAdd: (info: unknown, entry: unknown, event: MouseEvent) => void }).onGroupAdd = (_info, _entry, event) => {
    const selected = Object.values((app.canvas as unknown as { selected_nodes: Record<string, LGraphNodeType> }).selected_nodes ?? {});
    if (groupAround(app, selected)) return;
    const group = new LGraphGroup();
    group.font_size = DEFAULT_GROUP_FONT_SIZE;
    group.pos = app.canvas.convertEventToCanvasOffset(event) as [number, number];
    app.graph.add(group as never);
    app.canvas.setDirty(true, true);
  };
}
