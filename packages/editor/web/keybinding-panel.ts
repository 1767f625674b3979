/**
 * The Keybinding category of the settings dialog, as ComfyUI's keybinding panel: every command with its
 * key(s). Change (or a double-click on the row) records a new combination: the next key press with its
 * modifiers is taken as it is, Enter keeps it and Escape gives up (plain Enter and Escape cannot themselves
 * be recorded, as in ComfyUI). A combination another command has is shown as a conflict before it is kept;
 * keeping it moves it here. Reset gives a command its default keys back. Changes go through the settings
 * store (`Comfy.Keybinding.NewBindings` / `UnsetBindings`) and the shortcut works at once.
 */
import type { EditorApp } from './app.ts';
import { comboFromEvent, comboId, formatCombo, type KeyCombo, type Keybindings } from './keybindings.ts';
import type { SettingsStore } from './settings.ts';

let escaping = false;

/**
 * Whether the Escape being pressed went to a recorder (the settings dialog then stays open: the browser would
 * take the same key press as a request to close the modal dialog).
 */
export function recorderTookEscape(): boolean {
  return escaping;
}

export function keybindingPanel(app: EditorApp, store: SettingsStore, bindings: Keybindings): HTMLElement {
  const table = document.createElement('table');
  table.className = 'gg-keybindings';
  table.innerHTML = '<thead><tr><th>Command</th><th>Keys</th><th></th></tr></thead><tbody></tbody>';
  const body = table.querySelector('tbody')!;
  let editing: string | undefined;

  const save = (changes: Record<string, unknown>) =>
    store.set(changes).catch((error: Error) => app.notify('error', error.message)).finally(render);

  function render(): void {
    // Rows are replaced in place, so a search filter applied to them (data-search) is kept.
    const hidden = new Set([...body.querySelectorAll<HTMLElement>('tr[hidden]')].map((tr) => tr.dataset.commandId));
    body.replaceChildren(...[...bindings.commands.values()].map((command) => row(command.id, command.label, hidden.has(command.id))));
  }

  function row(id: string, label: string, hidden: boolean): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.commandId = id;
    tr.dataset.search = `${label} ${id}`.toLowerCase();
    tr.hidden = hidden;
    const modified = bindings.isModified(id);
    tr.classList.toggle('gg-modified', modified);
    const name = document.createElement('td');
    name.innerHTML = '<span class="gg-command-label"></span><small></small>';
    name.querySelector('span')!.textContent = label;
    name.querySelector('small')!.textContent = id;
    const keys = document.createElement('td');
    keys.className = 'gg-keys';
    const actions = document.createElement('td');
    actions.className = 'gg-key-actions';
    tr.append(name, keys, actions);
    if (editing === id) {
      recorder(id, keys, actions);
      return tr;
    }
    const combos = bindings.bindingsOf(id);
    if (combos.length) keys.append(...combos.map((c) => kbd(formatCombo(c))));
    else {
      const none = document.createElement('span');
      none.className = 'gg-none';
      none.textContent = '—';
      keys.append(none);
    }
    const change = button('Change', `Bind another key combination to ${label}`, () => {
      editing = id;
      render();
    });
    const reset = button('Reset', `Give ${label} its default keys back`, () => void save(bindings.reset(id)));
    reset.disabled = !modified;
    actions.append(change, reset);
    tr.addEventListener('dblclick', () => {
      editing = id;
      render();
    });
    return tr;
  }

  /** The row being edited: a box that takes the next combination, the conflict if any, Save and Cancel. */
  function recorder(id: string, keys: HTMLElement, actions: HTMLElement): void {
    let combo: KeyCombo | undefined;
    const input = document.createElement('input');
    input.className = 'gg-key-capture';
    input.readOnly = true;
    input.placeholder = 'Press a key combination…';
    input.setAttribute('aria-label', 'New key combination');
    const conflict = document.createElement('div');
    conflict.className = 'gg-key-conflict';
    conflict.setAttribute('role', 'status');
    const keep = button('Save', 'Keep this combination', () => finish(true));
    keep.disabled = true;
    const cancel = button('Cancel', 'Keep the keys as they were', () => finish(false));
    keys.append(input, conflict);
    actions.append(keep, cancel);

    function finish(keepIt: boolean): void {
      editing = undefined;
      if (keepIt && combo) void save(bindings.change(id, combo));
      else render();
    }
    input.addEventListener('keydown', (event) => {
      // Every key is taken here, not by the page or the dialog (Escape would close it).
      event.preventDefault();
      event.stopPropagation();
      const plain = !event.ctrlKey && !event.metaKey && !event.altKey && !event.shiftKey;
      if (plain && event.key === 'Escape') {
        // Until the key is released: the dialog's close request for this same press comes in between.
        escaping = true;
        addEventListener('keyup', () => (escaping = false), { once: true, capture: true });
        return finish(false);
      }
      if (plain && event.key === 'Enter') return finish(true);
      const pressed = comboFromEvent(event);
      if (!pressed) return;
      combo = pressed;
      input.value = formatCombo(pressed);
      keep.disabled = false;
      const other = bindings.commandOn(pressed);
      const same = bindings.bindingsOf(id).some((c) => comboId(c) === comboId(pressed));
      conflict.textContent = other && other.id !== id ? `${formatCombo(pressed)} is already bound to “${other.label}”; saving moves it here.` : same ? 'Already bound to this command.' : '';
      conflict.classList.toggle('gg-warning', !!other && other.id !== id);
    });
    input.addEventListener('blur', () => {
      // Clicking Save or Cancel blurs the box first: let their click decide.
      setTimeout(() => {
        if (editing === id && !keys.contains(document.activeElement) && !actions.contains(document.activeElement)) finish(false);
      }, 200);
    });
    queueMicrotask(() => input.focus());
  }

  const stop = store.onChange(() => {
    // The dialog was closed: this table is gone for good.
    if (!table.isConnected) return stop();
    if (!editing) render();
  });
  render();
  return table;
}

function kbd(text: string): HTMLElement {
  const el = document.createElement('kbd');
  el.textContent = text;
  return el;
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'gg-small';
  b.textContent = label;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}
