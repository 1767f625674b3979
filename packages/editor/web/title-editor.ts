/**
 * Renaming in place, as in ComfyUI: double-click a node's title or a group's title bar and type; Enter or a
 * click elsewhere keeps the new title, Escape keeps the old one. (litegraph 0.7 opens its property panel on a
 * double-click instead, which ComfyUI users do not expect.)
 */
import type { EditorApp } from './app.ts';
import { groupTitleAt, titleHeight, type Group } from './groups.ts';
import { LiteGraph, type LGraphNodeType } from './litegraph.ts';

/** A second press within this time on the same thing is a double-click (litegraph's own threshold). */
const DOUBLE_CLICK_MS = 300;

let open: { input: HTMLInputElement; cancel(): void } | undefined;
let opening = false;

/**
 * True while a title is being edited (or the editor is about to open): the change tracker waits, so a group
 * made with Ctrl+G and the name typed for it are one undo step.
 */
export function isEditingTitle(): boolean {
  return opening || open !== undefined;
}

/** Closes an open title editor without keeping what was typed; false when none was open (Escape's chain). */
export function cancelTitleEditor(): boolean {
  if (!open) return false;
  open.cancel();
  return true;
}

/** Opens the editor over a node's title bar. */
export function editNodeTitle(app: EditorApp, node: LGraphNodeType): void {
  const h = LiteGraph.NODE_TITLE_HEIGHT;
  showEditor(app, node, [node.pos[0], node.pos[1] - h, node.size[0], h], LiteGraph.NODE_TEXT_SIZE);
}

/** Opens the editor over a group's title bar. */
export function editGroupTitle(app: EditorApp, group: Group): void {
  const b = group._bounding;
  showEditor(app, group, [b[0]!, b[1]!, b[2]!, titleHeight(group)], group.font_size ?? 24);
}

function showEditor(app: EditorApp, target: { title: string }, rect: [number, number, number, number], fontPx: number): void {
  open?.cancel();
  // Opened from a pointerdown: the press's default action (focusing the canvas) runs after the handlers and
  // would blur, and so close, an editor focused now.
  opening = true;
  setTimeout(() => {
    opening = false;
    createEditor(app, target, rect, fontPx);
  }, 0);
}

function createEditor(app: EditorApp, target: { title: string }, rect: [number, number, number, number], fontPx: number): void {
  const scale = (app.canvas.ds as unknown as { scale: number }).scale;
  const [x, y] = app.canvas.convertOffsetToCanvas([rect[0], rect[1]]) as [number, number];
  const box = app.canvasEl.getBoundingClientRect();
  const input = document.createElement('input');
  input.className = 'gg-title-editor';
  input.value = target.title;
  input.setAttribute('aria-label', 'Title');
  Object.assign(input.style, {
    left: `${box.left + x}px`,
    top: `${box.top + y}px`,
    width: `${Math.max(80, rect[2] * scale)}px`,
    height: `${rect[3] * scale}px`,
    fontSize: `${Math.max(10, fontPx * scale)}px`,
  });
  let done = false;
  const finish = (keep: boolean) => {
    if (done) return;
    done = true;
    open = undefined;
    const title = input.value.trim();
    input.remove();
    if (keep && title && title !== target.title) {
      target.title = title;
      app.graph.change();
    }
    app.canvas.setDirty(true, true);
    app.canvasEl.focus();
    // The new title is an undo step.
    app.changeTracker?.checkState();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') finish(true);
    else if (e.key === 'Escape') finish(false);
    // Keys typed here are text, not canvas shortcuts.
    e.stopPropagation();
  });
  input.addEventListener('blur', () => finish(true));
  document.body.append(input);
  open = { input, cancel: () => finish(false) };
  input.focus();
  input.select();
}

/** Double-click on a node title or a group title bar opens the editor. */
export function installTitleEditing(app: EditorApp): void {
  const canvas = app.canvas as unknown as {
    graph_mouse: [number, number];
    processNodeDblClicked(node: LGraphNodeType): void;
    onMouse?: (e: PointerEvent & { canvasX: number; canvasY: number }) => boolean | undefined;
  };
  canvas.processNodeDblClicked = (node) => {
    // litegraph calls this on the second press on a selected node; only the title bar renames.
    if (canvas.graph_mouse[1] < node.pos[1] && !(node.constructor as { title_mode?: number }).title_mode) editNodeTitle(app, node);
  };
  let last: { time: number; group: Group } | undefined;
  canvas.onMouse = (e) => {
    if ((e.type !== 'pointerdown' && e.type !== 'mousedown') || e.button !== 0) return false;
    // Nodes drawn over a group get the click.
    if (app.graph.getNodeOnPos(e.canvasX, e.canvasY)) return false;
    const group = groupTitleAt(app, e.canvasX, e.canvasY);
    const now = performance.now();
    if (group && last?.group === group && now - last.time < DOUBLE_CLICK_MS) {
      last = undefined;
      editGroupTitle(app, group);
      e.preventDefault();
      // Handled: litegraph would open the search box for a double-click on "empty" canvas.
      return true;
    }
    last = group ? { time: now, group } : undefined;
    return false;
  };
}
