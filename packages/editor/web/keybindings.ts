/**
 * ComfyUI's keyboard shortcuts as commands and key bindings, the way ComfyUI's keybinding store has them:
 * every action is a command with an id (ComfyUI's ids where ComfyUI has the command), the defaults bind keys to
 * them, and the user's changes are two lists kept in the settings file under ComfyUI's ids,
 * `Comfy.Keybinding.NewBindings` (bindings added) and `Comfy.Keybinding.UnsetBindings` (defaults removed), so
 * a ComfyUI settings file carries its bindings over. A key combination belongs to one command at a time: binding
 * it to another takes it away from the first (keybinding-panel.ts shows that conflict before it happens).
 *
 * One listener on the window in the capture phase runs them: before litegraph's own key handler on the canvas
 * (which would otherwise swallow Escape and Delete), and whatever has the focus. Keys typed into a text field
 * stay text, except the queue, save and open commands (ComfyUI queues with Ctrl+Enter from the prompt box too).
 * While an element marked `data-gg-own-keys` is open (the gallery, the settings dialog, a binding being
 * recorded) the keys are its own.
 */
import type { EditorApp } from './app.ts';
import { isTextField } from './change-tracker.ts';
import { editGroupTitle, cancelTitleEditor } from './title-editor.ts';
import { groupAround } from './groups.ts';
import { LiteGraph, type LGraphNodeType } from './litegraph.ts';
import type { Settings, SettingsStore } from './settings.ts';

export const NEW_BINDINGS = 'Comfy.Keybinding.NewBindings';
export const UNSET_BINDINGS = 'Comfy.Keybinding.UnsetBindings';

export interface UiActions {
  queue(front: boolean): void;
  save(): void;
  open(): void;
  refresh(): void;
}

/** A key combination as ComfyUI stores it: `key` is KeyboardEvent.key (letters in lower case). */
export interface KeyCombo {
  key: string;
  ctrl?: boolean;
  alt?: boolean;
  shift?: boolean;
}

export interface Keybinding {
  commandId: string;
  combo: KeyCombo;
}

export interface Command {
  id: string;
  label: string;
  run(): void;
  /** Also while typing in a text field. */
  inText?: boolean;
}

const MODIFIER_KEYS = new Set(['Control', 'Shift', 'Alt', 'Meta', 'AltGraph', 'CapsLock', 'OS', 'Hyper', 'Super']);

/**
 * The combination of a key press; undefined for a modifier alone. Letters are read from the physical key, so
 * Alt+C is Alt+C on every layout (on a Mac, Alt+C types "ç"); Ctrl also stands for Cmd.
 */
export function comboFromEvent(event: KeyboardEvent): KeyCombo | undefined {
  if (MODIFIER_KEYS.has(event.key) || event.key === 'Dead' || event.key === 'Unidentified') return undefined;
  const key = /^Key[A-Z]$/.test(event.code) ? event.code.slice(3).toLowerCase() : event.key.length === 1 ? event.key.toLowerCase() : event.key;
  return { key, ctrl: event.ctrlKey || event.metaKey, alt: event.altKey, shift: event.shiftKey };
}

/**
 * One spelling per combination, for comparing. Shift is part of a symbol's character ("." vs ">"), so it only
 * counts with letters and named keys.
 */
export function comboId(combo: KeyCombo): string {
  const key = combo.key.toUpperCase();
  const shiftCounts = combo.key.length > 1 || /^[a-z]$/i.test(combo.key);
  return `${combo.ctrl ? 'CTRL+' : ''}${combo.alt ? 'ALT+' : ''}${combo.shift && shiftCounts ? 'SHIFT+' : ''}${key}`;
}

/** "Ctrl+Shift+Z", as the panel and the tooltips show it. */
export function formatCombo(combo: KeyCombo): string {
  const key = combo.key === ' ' ? 'Space' : combo.key.length === 1 ? combo.key.toUpperCase() : combo.key;
  const shiftCounts = combo.key.length > 1 || /^[a-z]$/i.test(combo.key);
  return [combo.ctrl && 'Ctrl', combo.alt && 'Alt', combo.shift && shiftCounts && 'Shift', key].filter(Boolean).join('+');
}

/** "Ctrl+Shift+Enter" -> a combo (for the default table). */
export function parseCombo(text: string): KeyCombo {
  const parts = text.split('+');
  // "Ctrl++" would be Ctrl and "+": the last part is the key even when it is empty after the split.
  const key = parts.pop() || '+';
  const mods = new Set(parts.map((p) => p.toLowerCase()));
  return { key: key.length === 1 ? key.toLowerCase() : key, ctrl: mods.has('ctrl'), alt: mods.has('alt'), shift: mods.has('shift') };
}

function storedCombo(combo: KeyCombo): Required<KeyCombo> {
  return { key: combo.key, ctrl: !!combo.ctrl, alt: !!combo.alt, shift: !!combo.shift };
}

function validBinding(value: unknown): value is Keybinding {
  const b = value as Keybinding | null;
  return !!b && typeof b.commandId === 'string' && !!b.combo && typeof b.combo.key === 'string' && b.combo.key !== '';
}

/**
 * The commands and what is bound to them: the defaults, less the ones the user removed, plus the user's own
 * (which win over a default on the same combination).
 */
export class Keybindings {
  readonly commands = new Map<string, Command>();
  readonly defaults: Keybinding[] = [];
  #user: Keybinding[] = [];
  #unset: Keybinding[] = [];
  /** comboId -> binding in effect. */
  #table = new Map<string, Keybinding>();

  /** Adds a command with its default keys ("Ctrl+Shift+Z"); owners register theirs once they exist. */
  register(command: Command, keys: string[] = []): void {
    this.commands.set(command.id, command);
    for (const key of keys) this.defaults.push({ commandId: command.id, combo: parseCombo(key) });
    this.#rebuild();
  }

  /** The user's lists, as read from the settings file. */
  load(added: unknown, unset: unknown): void {
    this.#user = (Array.isArray(added) ? added : []).filter(validBinding).map((b) => ({ commandId: b.commandId, combo: storedCombo(b.combo) }));
    this.#unset = (Array.isArray(unset) ? unset : []).filter(validBinding).map((b) => ({ commandId: b.commandId, combo: storedCombo(b.combo) }));
    this.#rebuild();
  }

  /** The combinations that run a command now. */
  bindingsOf(commandId: string): KeyCombo[] {
    return [...this.#table.values()].filter((b) => b.commandId === commandId).map((b) => b.combo);
  }

  commandOn(combo: KeyCombo): Command | undefined {
    const binding = this.#table.get(comboId(combo));
    return binding ? this.commands.get(binding.commandId) : undefined;
  }

  /** Whether a command's keys differ from its defaults. */
  isModified(commandId: string): boolean {
    const now = this.bindingsOf(commandId).map(comboId).sort();
    const defaults = this.defaults.filter((b) => b.commandId === commandId).map((b) => comboId(b.combo)).sort();
    return now.join('|') !== defaults.join('|');
  }

  /**
   * Binds a command to one combination instead of its current ones (ComfyUI's "modify keybinding"). The
   * combination leaves any other command that had it. Returns the settings to save.
   */
  change(commandId: string, combo: KeyCombo): Settings {
    const id = comboId(combo);
    for (const old of [...this.#table.values()].filter((b) => b.commandId === commandId || comboId(b.combo) === id)) this.#remove(old);
    const isDefault = (b: Keybinding) => b.commandId === commandId && comboId(b.combo) === id;
    if (this.defaults.some(isDefault)) this.#unset = this.#unset.filter((b) => !isDefault(b));
    else this.#user.push({ commandId, combo: storedCombo(combo) });
    this.#rebuild();
    return this.settings();
  }

  /**
   * Gives a command its default keys back, taking them from any command the user had bound them to. Returns
   * the settings to save.
   */
  reset(commandId: string): Settings {
    const defaults = new Set(this.defaults.filter((b) => b.commandId === commandId).map((b) => comboId(b.combo)));
    this.#user = this.#user.filter((b) => b.commandId !== commandId && !defaults.has(comboId(b.combo)));
    this.#unset = this.#unset.filter((b) => b.commandId !== commandId);
    this.#rebuild();
    return this.settings();
  }

  /** The user's lists under ComfyUI's setting ids. */
  settings(): Settings {
    const write = (list: Keybinding[]) => list.map((b) => ({ commandId: b.commandId, combo: storedCombo(b.combo) }));
    return { [NEW_BINDINGS]: write(this.#user), [UNSET_BINDINGS]: write(this.#unset) };
  }

  #remove(binding: Keybinding): void {
    const same = (b: Keybinding) => b.commandId === binding.commandId && comboId(b.combo) === comboId(binding.combo);
    if (this.#user.some(same)) this.#user = this.#user.filter((b) => !same(b));
    // A default taken away is remembered as unset (what ComfyUI writes), so it stays away after a reload.
    if (this.defaults.some(same) && !this.#unset.some(same)) this.#unset.push({ commandId: binding.commandId, combo: storedCombo(binding.combo) });
  }

  #rebuild(): void {
    const table = new Map<string, Keybinding>();
    const unset = new Set(this.#unset.map((b) => `${b.commandId} ${comboId(b.combo)}`));
    for (const b of this.defaults) if (!unset.has(`${b.commandId} ${comboId(b.combo)}`)) table.set(comboId(b.combo), b);
    for (const b of this.#user) table.set(comboId(b.combo), b);
    this.#table = table;
  }
}

/** The editor's commands with ComfyUI's default keys, and the window's key listener running them. */
export function installKeybindings(app: EditorApp, ui: UiActions): Keybindings {
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

  const bindings = new Keybindings();
  const add = (id: string, label: string, keys: string[], run: () => void, inText = false) => bindings.register({ id, label, run, inText }, keys);
  add('Comfy.QueuePrompt', 'Queue prompt', ['Ctrl+Enter'], () => ui.queue(false), true);
  add('Comfy.QueuePromptFront', 'Queue prompt at the front', ['Ctrl+Shift+Enter'], () => ui.queue(true), true);
  add('Comfy.Interrupt', 'Interrupt the running prompt', ['Ctrl+Alt+Enter'], () => void interrupt(app), true);
  add('Comfy.SaveWorkflow', 'Save the workflow (file)', ['Ctrl+S'], ui.save, true);
  add('Comfy.OpenWorkflow', 'Open a workflow (file)', ['Ctrl+O'], ui.open, true);
  add('Comfy.RefreshNodeDefinitions', 'Refresh node definitions', ['R'], ui.refresh);
  add('Comfy.Undo', 'Undo', ['Ctrl+Z'], () => app.changeTracker?.undo());
  add('Comfy.Redo', 'Redo', ['Ctrl+Y', 'Ctrl+Shift+Z'], () => app.changeTracker?.redo());
  add('Comfy.Canvas.ToggleSelectedNodes.Bypass', 'Bypass / unbypass the selected nodes', ['Ctrl+B'], () => app.toggleMode(4));
  add('Comfy.Canvas.ToggleSelectedNodes.Mute', 'Mute / unmute the selected nodes', ['Ctrl+M'], () => app.toggleMode(2));
  add('Comfy.Canvas.ToggleSelectedNodes.Collapse', 'Collapse / expand the selected nodes', ['Alt+C'], () => {
    for (const node of selected()) (node as unknown as { collapse(): void }).collapse();
    changed();
  });
  add('Comfy.Canvas.ToggleSelected.Pin', 'Pin / unpin the selected nodes', ['P'], () => {
    const nodes = selected();
    // Like ComfyUI: if any is unpinned, pin them all; else unpin.
    const pin = nodes.some((n) => !(n.flags as { pinned?: boolean }).pinned);
    for (const node of nodes) node.pin(pin);
    changed();
  });
  add('Comfy.Graph.GroupSelectedNodes', 'Group the selected nodes', ['Ctrl+G'], () => {
    const group = groupAround(app, selected());
    if (group) editGroupTitle(app, group);
  });
  add('Comfy.Canvas.FitView', 'Fit the view to the selection (or everything)', ['.'], () => app.fitView(selected().length ? selected() : undefined));
  add('Comfy.Canvas.SelectAll', 'Select all nodes', ['Ctrl+A'], () => canvas.selectNodes());
  add('Comfy.Canvas.CopySelected', 'Copy the selected nodes', ['Ctrl+C'], () => selected().length && canvas.copyToClipboard());
  add('Comfy.Canvas.Paste', 'Paste', ['Ctrl+V'], () => canvas.pasteFromClipboard(false));
  add('Comfy.Canvas.PasteWithConnect', 'Paste keeping input links', ['Ctrl+Shift+V'], () => canvas.pasteFromClipboard(true));
  add('Comfy.Canvas.DeleteSelectedItems', 'Delete the selected nodes', ['Delete', 'Backspace'], () => selected().length && canvas.deleteSelectedNodes());

  addEventListener(
    'keydown',
    (event) => {
      if (document.querySelector('[data-gg-own-keys]')) return;
      const combo = comboFromEvent(event);
      if (!combo) return;
      const typing = isTextField(event.target);
      // Escape is not a command (ComfyUI does not list it either): it closes what is open. In a text field it
      // belongs to the field (the search box and the title editor close themselves).
      if (comboId(combo) === 'ESCAPE') {
        if (typing) return;
        event.preventDefault();
        event.stopPropagation();
        closeOverlays();
        return;
      }
      const command = bindings.commandOn(combo);
      if (!command) return;
      if (typing && !command.inText) return;
      // Text selected on the page (a toast's message) is what Ctrl+C copies.
      if (command.id === 'Comfy.Canvas.CopySelected' && String(getSelection() ?? '')) return;
      event.preventDefault();
      event.stopPropagation();
      command.run();
    },
    true,
  );
  return bindings;
}

/** Keeps the bindings in step with the settings file: at start-up and whenever the lists change. */
export function followKeybindingSettings(bindings: Keybindings, store: SettingsStore): void {
  const load = () => bindings.load(store.get(NEW_BINDINGS), store.get(UNSET_BINDINGS));
  load();
  store.onChange((changed) => {
    if (changed.includes(NEW_BINDINGS) || changed.includes(UNSET_BINDINGS)) load();
  });
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
