/**
 * The settings dialog (toolbar's Settings button, or Ctrl+,), laid out as ComfyUI's: categories on the left,
 * a search box over every setting, and a Keybinding category listing every command with its keys
 * (keybinding-panel.ts). Each change is saved at once through the settings store and takes effect at once;
 * there is no OK button to forget. While it is open the editor's shortcuts are off (`data-gg-own-keys`), so
 * Delete or Ctrl+Z typed here cannot touch the graph behind it.
 */
import type { EditorApp } from './app.ts';
import type { Keybindings } from './keybindings.ts';
import { keybindingPanel, recorderTookEscape } from './keybinding-panel.ts';
import { SETTINGS, type SettingDefinition, type Settings, type SettingsStore } from './settings.ts';

const KEYBINDING_CATEGORY = 'Keybinding';

export function openSettingsDialog(app: EditorApp, store: SettingsStore, bindings: Keybindings, category?: string): void {
  document.querySelector('.gg-settings')?.remove();
  const dialog = document.createElement('dialog');
  dialog.className = 'gg-settings';
  dialog.dataset.ggOwnKeys = 'true';
  dialog.setAttribute('aria-label', 'Settings');
  dialog.innerHTML = `<header><h2>Settings</h2>
      <input type="search" class="gg-settings-search" placeholder="Search settings…" aria-label="Search settings" spellcheck="false">
      <button type="button" class="gg-settings-close" aria-label="Close">×</button></header>
    <div class="gg-settings-body"><nav class="gg-settings-nav" role="tablist"></nav><div class="gg-settings-panels"></div></div>
    <p class="gg-settings-note">Saved on the server in comfy.settings.json, under ComfyUI's setting ids</p>`;
  const nav = dialog.querySelector('nav')!;
  const panels = dialog.querySelector<HTMLElement>('.gg-settings-panels')!;
  const search = dialog.querySelector<HTMLInputElement>('.gg-settings-search')!;

  const save = (changes: Settings) =>
    store.set(changes).catch((error: Error) => {
      app.notify('error', error.message);
    });

  const categories = [...new Set(SETTINGS.map((s) => s.category)), KEYBINDING_CATEGORY];
  const sections = new Map<string, HTMLElement>();
  for (const name of categories) {
    const section = document.createElement('section');
    section.className = 'gg-settings-panel';
    section.dataset.category = name;
    const heading = document.createElement('h3');
    heading.textContent = name;
    section.append(heading);
    if (name === KEYBINDING_CATEGORY) section.append(keybindingPanel(app, store, bindings));
    else for (const definition of SETTINGS.filter((s) => s.category === name)) section.append(settingRow(definition, store, save));
    sections.set(name, section);
    panels.append(section);

    const tab = document.createElement('button');
    tab.type = 'button';
    tab.setAttribute('role', 'tab');
    tab.dataset.category = name;
    tab.textContent = name;
    tab.addEventListener('click', () => {
      search.value = '';
      show(name);
    });
    nav.append(tab);
  }

  let current = category && sections.has(category) ? category : categories[0]!;
  function show(name: string): void {
    current = name;
    for (const [key, section] of sections) {
      section.hidden = key !== name;
      for (const row of section.querySelectorAll<HTMLElement>('[data-search]')) row.hidden = false;
    }
    for (const tab of nav.querySelectorAll<HTMLElement>('button')) tab.setAttribute('aria-selected', String(tab.dataset.category === name));
  }
  // Searching shows the matching settings and commands of every category at once, as ComfyUI's search does.
  search.addEventListener('input', () => {
    const query = search.value.trim().toLowerCase();
    if (!query) return show(current);
    for (const section of sections.values()) {
      let any = false;
      for (const row of section.querySelectorAll<HTMLElement>('[data-search]')) {
        row.hidden = !row.dataset.search!.includes(query);
        any ||= !row.hidden;
      }
      section.hidden = !any;
    }
    for (const tab of nav.querySelectorAll<HTMLElement>('button')) tab.setAttribute('aria-selected', 'false');
  });
  dialog.querySelector('.gg-settings-close')!.addEventListener('click', () => dialog.close());
  dialog.addEventListener('cancel', (event) => {
    if (recorderTookEscape()) event.preventDefault();
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    app.canvasEl.focus();
  });
  document.body.append(dialog);
  show(current);
  dialog.showModal();
}

/** One setting: its name and a control for its type; a change is saved and applied at once. */
function settingRow(definition: SettingDefinition, store: SettingsStore, save: (changes: Settings) => Promise<void>): HTMLElement {
  const row = document.createElement('div');
  row.className = 'gg-setting';
  row.dataset.settingId = definition.id;
  row.dataset.search = `${definition.name} ${definition.id} ${definition.category}`.toLowerCase();
  const label = document.createElement('label');
  const name = document.createElement('span');
  name.textContent = definition.name;
  if (definition.tooltip) label.title = definition.tooltip;
  const id = document.createElement('small');
  id.textContent = definition.id;
  const value = store.get(definition.id);
  let control: HTMLInputElement | HTMLSelectElement;
  if (definition.type === 'combo') {
    const select = document.createElement('select');
    const options = definition.options ?? [];
    select.append(...options.map(([v, text]) => new Option(text, String(v))));
    select.value = String(value);
    select.addEventListener('change', () => {
      const chosen = options.find(([v]) => String(v) === select.value);
      if (chosen) void save({ [definition.id]: chosen[0] });
    });
    control = select;
  } else if (definition.type === 'boolean') {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = value === true;
    box.addEventListener('change', () => void save({ [definition.id]: box.checked }));
    control = box;
  } else {
    const input = document.createElement('input');
    input.type = 'number';
    if (definition.min !== undefined) input.min = String(definition.min);
    if (definition.max !== undefined) input.max = String(definition.max);
    input.value = String(value);
    input.addEventListener('change', () => {
      const number = Math.round(Number(input.value));
      const inRange = Number.isFinite(number) && number >= (definition.min ?? -Infinity) && number <= (definition.max ?? Infinity);
      if (inRange) void save({ [definition.id]: number });
      else input.value = String(store.get(definition.id));
    });
    control = input;
  }
  control.name = definition.id;
  label.append(name, control);
  row.append(label, id);
  return row;
}
