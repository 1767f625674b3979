/**
 * Getting workflows in and out: files (UI JSON, API JSON, a saved POST /prompt body, PNGs made by gategraph
 * or ComfyUI with their `workflow`/`prompt` text chunks), downloads, and the copy in localStorage that makes
 * the graph survive a reload.
 */
import { readPngText } from '../../diffusion/src/png-text.ts';
import type { EditorApp, GraphLoadOptions } from './app.ts';
import { uiWorkflowVersion, type ApiPrompt } from './core.ts';
import type { EditorNode } from './node-state.ts';
import { assignWidgetValues, inputSlotForWidget } from './node-types.ts';
import { LiteGraph } from './litegraph.ts';

const STORAGE_KEY = 'gategraph.workflow';

/** Reads a dropped or picked file: the parsed JSON of a .json file, or the workflow embedded in a PNG. */
export async function readWorkflowFile(file: File): Promise<unknown> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    const text = readPngText(bytes);
    if (text.workflow) return parseJson(text.workflow, `${file.name} (workflow chunk)`);
    if (text.prompt) return parseJson(text.prompt, `${file.name} (prompt chunk)`);
    throw new Error(`${file.name} has no embedded workflow: only PNGs saved by gategraph or ComfyUI carry one`);
  }
  return parseJson(new TextDecoder().decode(bytes).replace(/^\uFEFF/, ''), file.name);
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Python's json writes NaN/Infinity, which JSON.parse refuses; ComfyUI files sometimes contain them.
    try {
      return JSON.parse(text.replace(/\bNaN\b|-?\bInfinity\b/g, 'null')) as unknown;
    } catch {
      throw new Error(`${source} is not valid JSON: ${(error as Error).message}`);
    }
  }
}

/**
 * Loads any workflow JSON into the editor: a UI workflow (0.4 or 1), a POST /prompt body (its embedded UI
 * workflow, else its prompt), or an API prompt (laid out automatically).
 */
export function loadWorkflowJson(app: EditorApp, json: unknown, source = 'workflow', given: GraphLoadOptions = {}): void {
  // The source names the workflow (a tab's title): "tgate.json" -> "tgate".
  const options: GraphLoadOptions = { name: source.replace(/\.(json|png)$/i, '').replace(/\.ui$/i, ''), ...given };
  if (uiWorkflowVersion(json)) {
    app.loadGraphData(json, options);
    return;
  }
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const record = json as Record<string, unknown>;
    const prompt = record.prompt;
    if (prompt && typeof prompt === 'object' && !Array.isArray(prompt) && !('class_type' in prompt)) {
      const embedded = (record.extra_data as { extra_pnginfo?: { workflow?: unknown } } | undefined)?.extra_pnginfo?.workflow;
      if (uiWorkflowVersion(embedded)) app.loadGraphData(embedded, options);
      else loadApiPrompt(app, prompt as ApiPrompt, options);
      return;
    }
    if (Object.values(record).every((n) => n && typeof n === 'object' && typeof (n as { class_type?: unknown }).class_type === 'string')) {
      loadApiPrompt(app, record as ApiPrompt, options);
      return;
    }
  }
  throw new Error(`${source} is neither a UI workflow nor an API prompt`);
}

/** Builds a graph from an API prompt: nodes by id, widget values by input name, links, columns by depth. */
export function loadApiPrompt(app: EditorApp, prompt: ApiPrompt, options: GraphLoadOptions = {}): void {
  app.graph.clear();
  const ids = Object.keys(prompt);
  const depth = new Map<string, number>();
  const depthOf = (id: string, seen = new Set<string>()): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0;
    seen.add(id);
    let d = 0;
    for (const value of Object.values(prompt[id]?.inputs ?? {})) {
      if (Array.isArray(value) && value.length === 2 && String(value[0]) in prompt) d = Math.max(d, depthOf(String(value[0]), seen) + 1);
    }
    depth.set(id, d);
    return d;
  };
  const columns = new Map<number, number>();
  const nodes = new Map<string, EditorNode>();
  const missing: string[] = [];
  for (const id of ids) {
    const entry = prompt[id]!;
    const d = depthOf(id);
    // Each column's nodes are stacked by their real heights (a KSampler is taller than a row of 260).
    const top = columns.get(d) ?? 60;
    const node = app.addNode(entry.class_type, [60 + d * 360, top], /^\d+$/.test(id) ? Number(id) : undefined);
    if (!node) {
      missing.push(entry.class_type);
      continue;
    }
    columns.set(d, top + node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + 40);
    if (entry._meta?.title) node.title = entry._meta.title;
    const values: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(entry.inputs)) if (!Array.isArray(value)) values[name] = value;
    assignWidgetValues(node, values);
    nodes.set(id, node);
  }
  for (const [id, node] of nodes) {
    for (const [name, value] of Object.entries(prompt[id]!.inputs)) {
      if (!Array.isArray(value) || value.length !== 2) continue;
      const source = nodes.get(String(value[0]));
      // A link into a widget (API prompts do not say which inputs are sockets) gets the widget's socket.
      const slot = node.findInputSlot(name) >= 0 ? node.findInputSlot(name) : inputSlotForWidget(node, name);
      if (source && slot >= 0) source.connect(Number(value[1]), node, slot);
    }
  }
  app.fitView();
  app.canvas?.setDirty(true, true);
  // A new workflow, as a UI file is (its own undo history).
  app.events.dispatchEvent(new CustomEvent('graph-loaded', { detail: { missingTypes: [...new Set(missing)], warnings: [], ...options } }));
  if (missing.length) app.notify('warning', `Missing node types: ${[...new Set(missing)].join(', ')}`);
}

/** Saves a text as a download. */
export function download(filename: string, text: string, type = 'application/json'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A file name from what the user typed: no path separators, with the extension. */
export function fileName(name: string, extension: string): string {
  const clean = name.trim().replace(/[\\/:*?"<>|]+/g, '_') || 'workflow';
  return clean.toLowerCase().endsWith(extension) ? clean : `${clean}${extension}`;
}

export function saveToLocalStorage(app: EditorApp): string | undefined {
  try {
    const text = JSON.stringify(app.serializeGraph());
    localStorage.setItem(STORAGE_KEY, text);
    return text;
  } catch (error) {
    console.warn('gategraph: could not keep the workflow in localStorage', error);
    return undefined;
  }
}

export function loadFromLocalStorage(): unknown {
  const text = localStorage.getItem(STORAGE_KEY);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the localStorage copy current: checked each second (a small graph serializes in well under a
 * millisecond; widget edits do not all bump litegraph's version counter) and when the page is left.
 */
export function autosave(app: EditorApp): void {
  let last = '';
  setInterval(() => {
    const text = JSON.stringify(app.serializeGraph());
    if (text === last) return;
    last = text;
    try {
      localStorage.setItem(STORAGE_KEY, text);
    } catch (error) {
      console.warn('gategraph: could not keep the workflow in localStorage', error);
    }
  }, 1000);
  addEventListener('beforeunload', () => saveToLocalStorage(app));
}
