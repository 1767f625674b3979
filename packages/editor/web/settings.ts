/**
 * Settings kept on the server in ComfyUI's file, /userdata/comfy.settings.json, under ComfyUI's ids, so a
 * settings file carries over both ways; keys this editor does not know are kept as they are.
 *
 * The store only holds values and tells listeners what changed: each feature reads its own setting (the link
 * style and grid here, node id badges in node-badges.ts, link release in link-release.ts, key bindings in
 * keybindings.ts...), so a change takes effect at once, without a reload. The dialog (settings-dialog.ts)
 * lists the definitions below by category, as ComfyUI's settings dialog does.
 */
import type { EditorApp } from './app.ts';
import { LiteGraph } from './litegraph.ts';

const FILE = '/userdata/comfy.settings.json';

export type SettingValue = string | number | boolean | unknown[] | Record<string, unknown>;

export interface SettingDefinition {
  id: string;
  /** The dialog's section. */
  category: string;
  name: string;
  tooltip?: string;
  type: 'combo' | 'boolean' | 'number';
  /** Combo choices: [value, label]. */
  options?: [string | number, string][];
  min?: number;
  max?: number;
  defaultValue: string | number | boolean;
}

/** ComfyUI's link styles (litegraph's STRAIGHT_LINK 0, LINEAR_LINK 1, SPLINE_LINK 2; ComfyUI's HIDDEN_LINK -1). */
export const LINK_MODES: [number, string][] = [
  [2, 'Spline'],
  [1, 'Linear'],
  [0, 'Straight'],
  [-1, 'Hidden'],
];

/** What releasing a dragged link on empty canvas does (ComfyUI's LinkReleaseTriggerAction values). */
export const LINK_RELEASE_ACTIONS: [string, string][] = [
  ['context menu', 'Context menu (Add Node / Search)'],
  ['search box', 'Search box'],
  ['no action', 'Nothing'],
];

/**
 * The settings this editor acts on, with ComfyUI's ids and defaults. (ComfyUI has many more; these are the ones
 * that change something here.)
 */
export const SETTINGS: SettingDefinition[] = [
  { id: 'Comfy.LinkRenderMode', category: 'Canvas', name: 'Link render mode', type: 'combo', options: LINK_MODES, defaultValue: 2 },
  { id: 'pysssss.SnapToGrid', category: 'Canvas', name: 'Snap nodes to the grid when dropped', type: 'boolean', defaultValue: false },
  { id: 'Comfy.SnapToGrid.GridSize', category: 'Canvas', name: 'Grid size', type: 'number', min: 1, max: 500, defaultValue: 10 },
  {
    id: 'Comfy.NodeBadge.NodeIdBadgeMode',
    category: 'Canvas',
    name: 'Node ID badge',
    tooltip: 'Shows each node\'s id (#3) in its title bar: the id that error messages and the API prompt use',
    type: 'combo',
    options: [['Show all', 'Show all'], ['None', 'None']],
    defaultValue: 'Show all',
  },
  {
    id: 'Comfy.LinkRelease.Action',
    category: 'Node search',
    name: 'Releasing a link on empty canvas opens',
    type: 'combo',
    options: LINK_RELEASE_ACTIONS,
    defaultValue: 'context menu',
  },
  {
    id: 'Comfy.LinkRelease.ActionShift',
    category: 'Node search',
    name: 'Releasing a link with Shift held opens',
    type: 'combo',
    options: LINK_RELEASE_ACTIONS,
    defaultValue: 'search box',
  },
  { id: 'Comfy.ConfirmClear', category: 'Workflow', name: 'Ask before clearing the workflow', type: 'boolean', defaultValue: true },
  { id: 'Comfy.Workflow.ConfirmDelete', category: 'Workflow', name: 'Ask before deleting a workflow from the server', type: 'boolean', defaultValue: true },
  { id: 'Comfy.PromptFilename', category: 'Workflow', name: 'Ask for a file name when saving a workflow', type: 'boolean', defaultValue: true },
  {
    id: 'Comfy.WidgetControlMode',
    category: 'Widgets',
    name: 'Widget control mode',
    tooltip: 'When seeds and other controlled values change (randomize, increment, decrement): after a prompt is queued, or before',
    type: 'combo',
    options: [['after', 'After queueing'], ['before', 'Before queueing']],
    defaultValue: 'after',
  },
  { id: 'Comfy.EnableTooltips', category: 'Widgets', name: 'Show tooltips on sockets, widgets and titles', type: 'boolean', defaultValue: true },
];

export type Settings = Record<string, unknown>;

export class SettingsStore {
  values: Settings = {};
  readonly #listeners = new Set<(changed: string[]) => void>();

  constructor(private readonly app: EditorApp) {}

  /** A setting's value, or its default when the file does not have it. */
  get<T = unknown>(id: string): T {
    if (id in this.values && this.values[id] !== undefined && this.values[id] !== null) return this.values[id] as T;
    return SETTINGS.find((s) => s.id === id)?.defaultValue as T;
  }

  /** Calls `listener` with the ids that changed, after every load and change; returns the way to stop. */
  onChange(listener: (changed: string[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async load(): Promise<void> {
    const response = await this.app.api.fetch(FILE).catch(() => undefined);
    if (response?.ok) {
      const parsed = (await response.json().catch(() => ({}))) as unknown;
      this.values = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Settings) : {};
    }
    this.apply();
    this.#emit(Object.keys(this.values));
  }

  async set(changes: Settings): Promise<void> {
    this.values = { ...this.values, ...changes };
    this.apply();
    this.#emit(Object.keys(changes));
    const response = await this.app.api.fetch(`${FILE}?overwrite=true`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(this.values, null, 2),
    });
    if (!response.ok) throw new Error(`Saving the settings failed: HTTP ${response.status}`);
  }

  /** Puts the canvas settings into litegraph: the link style and grid snapping on drop. */
  apply(): void {
    const canvas = this.app.canvas as unknown as { links_render_mode: number; align_to_grid: boolean; drawConnections?: () => void };
    const mode = Number(this.get('Comfy.LinkRenderMode'));
    canvas.links_render_mode = mode < 0 ? 2 : mode;
    // litegraph 0.7 has no "hidden" style: links are hidden by not drawing them (an own no-op over the prototype's).
    if (mode < 0) canvas.drawConnections = () => undefined;
    else delete canvas.drawConnections;
    canvas.align_to_grid = this.get('pysssss.SnapToGrid') === true;
    const size = Number(this.get('Comfy.SnapToGrid.GridSize'));
    (LiteGraph as unknown as { CANVAS_GRID_SIZE: number }).CANVAS_GRID_SIZE = size > 0 ? size : 10;
    this.app.canvas.setDirty(true, true);
  }

  #emit(changed: string[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(changed);
      } catch (error) {
        console.error('gategraph: a settings listener failed', error);
      }
    }
  }
}
