/**
 * Several workflows open at once, as tabs above the canvas (ComfyUI's workflow tabs): + opens a new empty one,
 * a click switches, × closes. litegraph has one graph per canvas, so the tab shown owns the live graph and the
 * others are kept serialized (view included); each tab's id is its undo history's workflow id
 * (change-tracker.ts), so switching back goes on with that tab's own undo and redo. The list, with the
 * inactive graphs, is kept in localStorage beside the autosaved graph of the active tab, so tabs survive a
 * reload.
 *
 * Opening a workflow (a file, a dropped PNG, a history entry's Load) goes as in ComfyUI's frontend: into a new
 * tab, unless the tab shown is a temporary workflow nobody has changed (the default graph of a first visit, a
 * new empty tab, a file just opened), which it replaces, so opening a file on a fresh page leaves one tab, not
 * an untouched default graph beside it. "Changed" is ComfyUI's isModified: the graph differs from what was
 * opened (a change undone is no change). Workflows opened from or saved to the server are not temporary.
 */
import type { EditorApp } from './app.ts';
import type { UiWorkflow } from './core.ts';
import { graphState } from './change-tracker.ts';
import { loadWorkflowJson } from './workflow-io.ts';

const TABS_KEY = 'gategraph.tabs';
export const EMPTY_WORKFLOW = { last_node_id: 0, last_link_id: 0, nodes: [], links: [], groups: [], config: {}, extra: {}, version: 0.4 };
const UNNAMED = 'Unsaved Workflow';

interface Tab {
  id: string;
  name: string;
  /** The graph of an inactive tab; the active tab's graph is the one on the canvas. */
  graph?: UiWorkflow;
  /** A hash of the graph as it was opened (graphState: no view), to tell whether it has been changed since. */
  opened?: string;
  /** Opened from or saved to the server: not a temporary workflow. */
  saved?: boolean;
}

export interface WorkflowTabs {
  /**
   * Opens a workflow as ComfyUI does (a file, a history entry): replacing the tab shown when it is an unchanged
   * temporary workflow, else in a new tab. Returns whether it got a new tab.
   */
  open(json: unknown, name: string): boolean;
  /** Opens a workflow in a new tab (templates, the workflow browser); `saved` for one from the server. */
  openInNewTab(json: unknown, name: string, options?: { saved?: boolean }): void;
  /** The tab shown was saved on the server: it is no longer temporary. */
  markSaved(): void;
  /** Whether the tab shown differs from what was opened in it. */
  isModified(): boolean;
  newTab(): void;
  switchTo(id: string): void;
  close(id: string): void;
  readonly activeName: string;
}

export function installWorkflowTabs(app: EditorApp, bar: HTMLElement): WorkflowTabs {
  const currentId = () => app.changeTracker?.history.workflowId ?? '';
  const stored = readTabs();
  let tabs: Tab[] = stored?.tabs ?? [];
  if (!tabs.some((t) => t.id === currentId())) tabs = [...tabs.filter((t) => t.graph), { id: currentId(), name: UNNAMED }];
  let active = currentId();
  const activeTab = () => tabs.find((t) => t.id === active)!;
  delete activeTab().graph;
  const fingerprint = () => hash(graphState(app));
  // A first visit's default graph (or a graph restored from before this tab record existed) counts as opened now.
  activeTab().opened ??= fingerprint();

  const persist = () => {
    try {
      localStorage.setItem(TABS_KEY, JSON.stringify({ active, tabs }));
    } catch (error) {
      console.warn('gategraph: could not keep the open tabs in localStorage', error);
    }
  };

  /** Shows a tab's graph under its own workflow id (so its undo history goes on). */
  const show = (tab: Tab) => {
    active = tab.id;
    const graph = tab.graph ?? EMPTY_WORKFLOW;
    delete tab.graph;
    loadWorkflowJson(app, graph, tab.name, { workflowId: tab.id, name: tab.name });
    tab.opened ??= fingerprint();
  };
  const stash = () => {
    activeTab().graph = app.serializeGraph();
  };

  const api: WorkflowTabs = {
    get activeName() {
      return activeTab().name;
    },
    newTab() {
      stash();
      const tab: Tab = { id: newId(), name: UNNAMED, graph: EMPTY_WORKFLOW as unknown as UiWorkflow };
      tabs.push(tab);
      show(tab);
      render();
    },
    open(json, name) {
      const tab = activeTab();
      if (!tab.saved && !api.isModified()) {
        // Loaded into this tab as a new workflow: the graph-loaded listener gives the tab its id and name.
        loadWorkflowJson(app, json, name);
        return false;
      }
      api.openInNewTab(json, name);
      return true;
    },
    openInNewTab(json, name, options = {}) {
      const previous = active;
      api.newTab();
      try {
        // Loaded as a new workflow (its own history), which the graph-loaded listener gives to this tab.
        loadWorkflowJson(app, json, name);
      } catch (error) {
        // Nothing to show: the empty tab goes and the one before comes back.
        api.close(active);
        api.switchTo(previous);
        throw error;
      }
      if (options.saved) api.markSaved();
    },
    markSaved() {
      const tab = activeTab();
      tab.saved = true;
      tab.opened = fingerprint();
      persist();
    },
    isModified() {
      return fingerprint() !== activeTab().opened;
    },
    switchTo(id) {
      const tab = tabs.find((t) => t.id === id);
      if (!tab || id === active) return;
      stash();
      show(tab);
      render();
    },
    close(id) {
      const index = tabs.findIndex((t) => t.id === id);
      if (index === -1) return;
      tabs.splice(index, 1);
      if (id === active) {
        const next = tabs[Math.min(index, tabs.length - 1)];
        if (next) show(next);
        else {
          const tab: Tab = { id: newId(), name: UNNAMED };
          tabs.push(tab);
          show(tab);
        }
      }
      render();
    },
  };

  // A workflow opened into the active tab (a file, a history entry, a template) is a new workflow: the tab
  // takes its new history id and its name. Switching tabs passes the tab's own id, which changes nothing.
  app.events.addEventListener('graph-loaded', (event) => {
    const detail = (event as CustomEvent<{ workflowId?: string; name?: string }>).detail ?? {};
    if (detail.workflowId) return;
    const tab = activeTab();
    tab.id = currentId();
    active = tab.id;
    if (detail.name) tab.name = detail.name;
    tab.opened = fingerprint();
    delete tab.saved;
    render();
  });

  function render(): void {
    bar.replaceChildren(
      ...tabs.map((tab) => {
        const el = document.createElement('div');
        el.className = `gg-tab${tab.id === active ? ' gg-tab-active' : ''}`;
        el.dataset.workflowId = tab.id;
        el.setAttribute('role', 'tab');
        el.setAttribute('aria-selected', String(tab.id === active));
        const name = document.createElement('span');
        name.textContent = tab.name;
        name.title = tab.name;
        const close = document.createElement('button');
        close.type = 'button';
        close.className = 'gg-tab-close';
        close.textContent = '×';
        close.title = 'Close this workflow';
        close.addEventListener('click', (e) => {
          e.stopPropagation();
          api.close(tab.id);
        });
        el.append(name, close);
        el.addEventListener('click', () => api.switchTo(tab.id));
        return el;
      }),
      (() => {
        const add = document.createElement('button');
        add.type = 'button';
        add.className = 'gg-tab-new';
        add.textContent = '+';
        add.title = 'New empty workflow';
        add.addEventListener('click', () => api.newTab());
        return add;
      })(),
    );
    persist();
  }
  render();
  return api;
}

function readTabs(): { active: string; tabs: Tab[] } | undefined {
  try {
    const parsed = JSON.parse(localStorage.getItem(TABS_KEY) ?? 'null') as { active?: unknown; tabs?: unknown } | null;
    if (!parsed || !Array.isArray(parsed.tabs)) return undefined;
    const tabs = parsed.tabs.filter((t): t is Tab => !!t && typeof (t as Tab).id === 'string' && typeof (t as Tab).name === 'string');
    return { active: String(parsed.active), tabs };
  } catch {
    return undefined;
  }
}

/** FNV-1a of a text, as hex: enough to tell a changed graph from the one opened, and small to keep. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `${text.length.toString(36)}-${(h >>> 0).toString(16)}`;
}

function newId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
