/**
 * Settings kept on the server in ComfyUI's file, /userdata/comfy.settings.json, under ComfyUI's ids, so a
 * settings file carries over: the link render style (`Comfy.LinkRenderMode`: litegraph's STRAIGHT_LINK 0,
 * LINEAR_LINK 1, SPLINE_LINK 2, hidden -1) and snapping nodes to the grid when they are dropped
 * (`pysssss.SnapToGrid`, with `Comfy.SnapToGrid.GridSize`). Other keys in the file are kept as they are.
 */
import type { EditorApp } from './app.ts';
import { LiteGraph } from './litegraph.ts';

const FILE = '/userdata/comfy.settings.json';

export const LINK_MODES: [number, string][] = [
  [2, 'Spline'],
  [1, 'Linear'],
  [0, 'Straight'],
  [-1, 'Hidden'],
];

export interface Settings {
  'Comfy.LinkRenderMode'?: number;
  'pysssss.SnapToGrid'?: boolean;
  'Comfy.SnapToGrid.GridSize'?: number;
  [key: string]: unknown;
}

export class SettingsStore {
  values: Settings = {};
  constructor(private readonly app: EditorApp) {}

  async load(): Promise<void> {
    const response = await this.app.api.fetch(FILE).catch(() => undefined);
    if (response?.ok) this.values = ((await response.json().catch(() => ({}))) as Settings) ?? {};
    this.apply();
  }

  async set(changes: Settings): Promise<void> {
    this.values = { ...this.values, ...changes };
    this.apply();
    const response = await this.app.api.fetch(`${FILE}?overwrite=true`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(this.values, null, 2),
    });
    if (!response.ok) throw new Error(`Saving the settings failed: HTTP ${response.status}`);
  }

  /** Puts the values into litegraph: the canvas's link style, and its grid snapping on drop. */
  apply(): void {
    const canvas = this.app.canvas as unknown as { links_render_mode: number; align_to_grid: boolean; drawConnections?: () => void };
    const mode = this.values['Comfy.LinkRenderMode'] ?? 2;
    canvas.links_render_mode = mode < 0 ? 2 : mode;
    // litegraph 0.7 has no "hidden" style: links are hidden by not drawing them (an own no-op over the prototype's).
    if (mode < 0) canvas.drawConnections = () => undefined;
    else delete canvas.drawConnections;
    canvas.align_to_grid = this.values['pysssss.SnapToGrid'] === true;
    const size = Number(this.values['Comfy.SnapToGrid.GridSize'] ?? 10);
    (LiteGraph as unknown as { CANVAS_GRID_SIZE: number }).CANVAS_GRID_SIZE = size > 0 ? size : 10;
    this.app.canvas.setDirty(true, true);
  }
}

/** The settings dialog (the toolbar's Settings button). */
export function openSettingsDialog(app: EditorApp, store: SettingsStore): void {
  document.querySelector('.gg-settings')?.remove();
  const dialog = document.createElement('dialog');
  dialog.className = 'gg-settings';
  dialog.innerHTML = `<form method="dialog">
    <h2>Settings</h2>
    <label>Link render mode <select name="link"></select></label>
    <label><input type="checkbox" name="snap"> Snap nodes to the grid</label>
    <label>Grid size <input type="number" name="grid" min="1" max="500"></label>
    <p class="gg-settings-note">Saved on the server in comfy.settings.json</p>
    <button value="close">Close</button></form>`;
  const form = dialog.querySelector('form')!;
  const link = form.elements.namedItem('link') as HTMLSelectElement;
  const snap = form.elements.namedItem('snap') as HTMLInputElement;
  const grid = form.elements.namedItem('grid') as HTMLInputElement;
  link.append(...LINK_MODES.map(([value, label]) => new Option(label, String(value))));
  link.value = String(store.values['Comfy.LinkRenderMode'] ?? 2);
  snap.checked = store.values['pysssss.SnapToGrid'] === true;
  grid.value = String(store.values['Comfy.SnapToGrid.GridSize'] ?? 10);
  const save = (changes: Settings) => void store.set(changes).then(
    () => dialog.dispatchEvent(new CustomEvent('saved')),
    (error: Error) => app.notify('error', error.message),
  );
  link.addEventListener('change', () => save({ 'Comfy.LinkRenderMode': Number(link.value) }));
  snap.addEventListener('change', () => save({ 'pysssss.SnapToGrid': snap.checked }));
  grid.addEventListener('change', () => {
    const size = Math.round(Number(grid.value));
    if (size >= 1) save({ 'Comfy.SnapToGrid.GridSize': size });
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
