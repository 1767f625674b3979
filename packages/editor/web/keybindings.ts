/**
 * ComfyUI's keyboard shortcuts, in one table. One listener on the window in the capture phase: it runs before
 * litegraph's own key handler on the canvas (which would otherwise swallow Escape and Delete), and works
 * whatever has the focus. Keys typed into a text field stay text, except the queue shortcuts (ComfyUI queues
 * with Ctrl+Enter from the prompt box too).
 */
import type { EditorApp } from './app.ts';
import { isTextField } from './change-tracker.ts';
import { editGroupTitle, cancelTitleEditor } from './title-editor.ts';
import { groupAround } from './groups.ts';
import { LiteGraph, type LGraphNodeType } from './litegraph.ts';

export interface UiActions {
  queue(front: boolean): void;
  save(): void;
  open(): void;
  refresh(): void;
}

interface Binding {
  /** e.g. "Ctrl+Shift+Enter", "Alt+C", "." ; Ctrl also matches Cmd. */
  keys: string;
  run(): void;
  /** Also while typing in a text field. */
  inText?: boolean;
}

export function installKeybindings(app: EditorApp, ui: UiActions): void {
  const canvas = app.canvas as unknown as {
    selected_nodes: Record<string, LGraphNodeType>;
    copyToClipboard(): void;
    pasteFromClipboard(connectInputs?: boolean): void;
    deleteSelectedNodes(): void;
    selectNodes(nodes?: LGraphNodeType[]): void;
  };
  const selected = () => Object.values(canvas.selected_nodes ?? {});
  const changed = () => {
    app.canvas.setDirty(true, true);
    app.changeTracker?.checkState();
  };
  // Ctrl+Shift+V: paste keeping the links into the pasted nodes from nodes that were not copied.
  (LiteGraph as unknown as { ctrl_shift_v_paste_connect_unselected_outputs: boolean }).ctrl_shift_v_paste_connect_unselected_outputs = true;

  const bindings: Binding[] = [
    { keys: 'Ctrl+Enter', inText: true, run: () => ui.queue(false) },
    { keys: 'Ctrl+Shift+Enter', inText: true, run: () => ui.queue(true) },
    { keys: 'Ctrl+Alt+Enter', inText: true, run: () => void interrupt(app) },
    { keys: 'Ctrl+S', inText: true, run: ui.save },
    { keys: 'Ctrl+O', inText: true, run: ui.open },
    { keys: 'R', run: ui.refresh },
    { keys: 'Ctrl+Z', run: () => app.changeTracker?.undo() },
    { keys: 'Ctrl+Y', run: () => app.changeTracker?.redo() },
    { keys: 'Ctrl+Shift+Z', run: () => app.changeTracker?.redo() },
    { keys: 'Ctrl+B', run: () => app.toggleMode(4) },
    { keys: 'Ctrl+M', run: () => app.toggleMode(2) },
    { keys: 'Ctrl+A', run: () => canvas.selectNodes() },
    { keys: 'Ctrl+C', run: () => selected().length && canvas.copyToClipboard() },
    { keys: 'Ctrl+V', run: () => canvas.pasteFromClipboard(false) },
    { keys: 'Ctrl+Shift+V', run: () => canvas.pasteFromClipboard(true) },
    {
      keys: 'Ctrl+G',
      run: () => {
        const group = groupAround(app, selected());
        if (group) editGroupTitle(app, group);
      },
    },
    {
      keys: 'Alt+C',
      run: () => {
        for (const node of selected()) (node as unknown as { collapse(): void }).collapse();
        changed();
      },
    },
    {
      keys: 'P',
      run: () => {
        const nodes = selected();
        // Like ComfyUI: if any is unpinned, pin them all; else unpin.
        const pin = nodes.some((n) => !(n.flags as { pinned?: boolean }).pinned);
        for (const node of nodes) node.pin(pin);
        changed();
      },
    },
    { keys: '.', run: () => app.fitView(selected().length ? selected() : undefined) },
    { keys: 'Delete', run: () => selected().length && canvas.deleteSelectedNodes() },
    { keys: 'Backspace', run: () => selected().length && canvas.deleteSelectedNodes() },
    { keys: 'Escape', run: () => closeOverlays() },
  ];

  addEventListener(
    'keydown',
    (event) => {
      const combo = comboOf(event);
      const binding = bindings.find((b) => normalize(b.keys) === combo);
      if (!binding) return;
      const typing = isTextField(event.target);
      // Escape in a text field belongs to it (the search box and the title editor close themselves).
      if (typing && !binding.inText) return;
      // Text selected on the page (a toast's message) is what Ctrl+C copies.
      if (binding.keys === 'Ctrl+C' && String(getSelection() ?? '')) return;
      event.preventDefault();
      event.stopPropagation();
      binding.run();
    },
    true,
  );
}

/** The pressed combination in the table's spelling; letters by physical key, so Alt+C works on every layout. */
function comboOf(event: KeyboardEvent): string {
  const key = /^Key[A-Z]$/.test(event.code) ? event.code.slice(3) : event.key.length === 1 ? event.key.toUpperCase() : event.key;
  const parts = [];
  if (event.ctrlKey || event.metaKey) parts.push('CTRL');
  if (event.altKey) parts.push('ALT');
  // Shift is part of a symbol's character ("." vs ">"), so it only counts with letters and named keys.
  if (event.shiftKey && (key.length > 1 || /^[A-Z]$/i.test(key))) parts.push('SHIFT');
  parts.push(key.toUpperCase());
  return parts.join('+');
}

function normalize(keys: string): string {
  return keys.toUpperCase();
}

/** ComfyUI's Ctrl+Alt+Enter: stop the prompt that is running now. */
async function interrupt(app: EditorApp): Promise<void> {
  try {
    await app.api.post('/interrupt', {});
  } catch (error) {
    app.notify('error', `Interrupt failed: ${(error as Error).message}`);
  }
}

/** Escape: the title editor, context menus, the search box and litegraph's dialogs and panels close. */
function closeOverlays(): void {
  cancelTitleEditor();
  (LiteGraph as unknown as { closeAllContextMenus(window: Window): void }).closeAllContextMenus(window);
  document.querySelector('.gg-search')?.remove();
  for (const dialog of document.querySelectorAll<HTMLElement & { close?: () => void }>('.graphdialog, .litegraph.dialog')) {
    if (dialog.close) dialog.close();
    else dialog.remove();
  }
}
