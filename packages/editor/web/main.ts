/**
 * Start-up, in ComfyUI's order: node definitions and extensions are fetched, extensions' `init` runs, node
 * classes are registered (extensions may patch them), the saved graph (or the default one) is loaded, then
 * extensions' `setup`; the websocket connects last, so no message arrives before the graph exists.
 */
import { EditorApp } from './app.ts';
import { loadDefaultGraph } from './default-graph.ts';
import { installExecutionFeedback } from './execution.ts';
import { callHook, loadExtensions, registerExtension } from './extensions.ts';
import { installQueuePanel } from './queue-panel.ts';
import { installSearchBox } from './search-box.ts';
import { installTgateTimelines } from './tgate-timeline.ts';
import { installTooltips } from './tooltips.ts';
import { installUi } from './ui.ts';
import { installChangeTracker } from './change-tracker.ts';
import { installGroups } from './groups.ts';
import { installKeybindings } from './keybindings.ts';
import { installMouseHabits } from './mouse-habits.ts';
import { installPinning } from './pinning.ts';
import { installTitleEditing } from './title-editor.ts';
import { installTitleProgress } from './title-progress.ts';
import { installImageActions } from './image-actions.ts';
import { autosave, loadFromLocalStorage, loadWorkflowJson } from './workflow-io.ts';
import { installWorkflowTabs } from './workflow-tabs.ts';
import { installSidebar } from './sidebar.ts';
import { acceptNodeDrops, nodeLibraryPanel } from './node-library.ts';
import { modelLibraryPanel } from './model-library.ts';
import { workflowBrowserPanel } from './workflow-browser.ts';
import { templatesPanel } from './templates.ts';
import { openSettingsDialog, SettingsStore } from './settings.ts';
import { installWidgetLinkDrop } from './widget-link-drop.ts';
import './style.css';

declare global {
  interface Window {
    /** The running editor, for extensions, scripts and tests. */
    gategraph: EditorApp & { registerExtension: (extension: Parameters<typeof registerExtension>[1]) => void };
  }
}

async function start(): Promise<void> {
  const app = new EditorApp();
  window.gategraph = Object.assign(app, {
    registerExtension: (extension: Parameters<typeof registerExtension>[1]) => registerExtension(app, extension),
  });
  // Before any graph exists: they patch litegraph's group class and canvas drawing.
  installGroups();
  installPinning();
  // Before the canvas exists: litegraph binds its mouse-up handler when the canvas is created.
  installWidgetLinkDrop();
  app.mountCanvas(document.getElementById('gg-canvas-wrap')!);
  installKeybindings(app, installUi(app));
  installMouseHabits(app);
  installTitleEditing(app);
  installSearchBox(app);
  installTooltips(app);
  installExecutionFeedback(app);
  installTgateTimelines(app);
  installTitleProgress(app);
  installImageActions(app);

  const [info] = await Promise.all([app.api.objectInfo(), loadExtensions(app)]);
  await callHook(app, 'init');
  await app.registerNodes(info);

  const saved = loadFromLocalStorage();
  let loaded = false;
  if (saved) {
    try {
      loadWorkflowJson(app, saved, 'the saved workflow');
      loaded = true;
    } catch (error) {
      console.warn('gategraph: the workflow kept in this browser could not be loaded; opening the default one', error);
    }
  }
  if (!loaded) await loadDefaultGraph(app);
  // After the first load: a graph restored from this browser goes on with its undo history.
  app.changeTracker = installChangeTracker(app, { continueSaved: loaded });
  // After the tracker: a tab is the workflow id of an undo history.
  const tabs = installWorkflowTabs(app, document.getElementById('gg-tabs')!);
  installSidebar(document.getElementById('gg-sidebar-bar')!, document.getElementById('gg-sidebar')!, [
    nodeLibraryPanel(app),
    modelLibraryPanel(app),
    workflowBrowserPanel(app, tabs),
    templatesPanel(tabs),
  ]);
  acceptNodeDrops(app, document.getElementById('gg-canvas-wrap')!);
  const settings = new SettingsStore(app);
  await settings.load();
  document.getElementById('gg-settings')!.addEventListener('click', () => openSettingsDialog(app, settings));
  await callHook(app, 'setup');
  autosave(app);
  installQueuePanel(app, document.getElementById('gg-queue-panel')!);
  app.api.connect();
  document.body.dataset.ready = 'true';
}

// `document.body.dataset.ready` tells scripts and tests when start-up is over: "true", or "failed".
start().catch((error: unknown) => {
  console.error(error);
  const message = error instanceof Error ? error.message : String(error);
  document.body.dataset.ready = 'failed';
  const box = document.createElement('div');
  box.className = 'gg-fatal';
  box.textContent = `The editor could not start: ${message}`;
  document.body.append(box);
});
