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
import { followKeybindingSettings, installKeybindings } from './keybindings.ts';
import { installGroupTitleDrag } from './group-title-drag.ts';
import { installLinkRelease } from './link-release.ts';
import { installNodeBadges } from './node-badges.ts';
import { openSettingsDialog } from './settings-dialog.ts';
import { setControlMode } from './widgets.ts';
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
import { SettingsStore } from './settings.ts';
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
  // Read by the UI's features as they act (each reads its own setting); loaded once the server is reached.
  const settings = new SettingsStore(app);
  app.settings = settings;
  // Before any graph exists: they patch litegraph's group class and canvas drawing.
  installGroups();
  installPinning();
  installNodeBadges(app);
  // Before the canvas exists: litegraph binds its mouse handlers when the canvas is created.
  installWidgetLinkDrop();
  installLinkRelease(app);
  installGroupTitleDrag();
  app.mountCanvas(document.getElementById('gg-canvas-wrap')!);
  const keybindings = installKeybindings(app, installUi(app));
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
  // After the first request (a token asked for is known by now), before the graph: its nodes are drawn and
  // labelled by the settings.
  await settings.load();
  followKeybindingSettings(keybindings, settings);
  const controlMode = () => setControlMode(settings.get('Comfy.WidgetControlMode') === 'before' ? 'before' : 'after', app.nodes);
  controlMode();
  settings.onChange((changed) => changed.includes('Comfy.WidgetControlMode') && controlMode());

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
  app.tabs = tabs;
  const sidebar = installSidebar(document.getElementById('gg-sidebar-bar')!, document.getElementById('gg-sidebar')!, [
    nodeLibraryPanel(app),
    modelLibraryPanel(app),
    workflowBrowserPanel(app, tabs),
    templatesPanel(tabs),
  ]);
  acceptNodeDrops(app, document.getElementById('gg-canvas-wrap')!);
  const showSettings = () => openSettingsDialog(app, settings, keybindings);
  document.getElementById('gg-settings')!.addEventListener('click', showSettings);
  // The workspace's commands, with ComfyUI's ids and default keys, once what they act on exists.
  const click = (id: string) => () => document.getElementById(id)!.click();
  const command = (id: string, label: string, keys: string[], run: () => void) => keybindings.register({ id, label, run }, keys);
  command('Comfy.ShowSettingsDialog', 'Show the settings dialog', ['Ctrl+,'], showSettings);
  command('Comfy.NewBlankWorkflow', 'New blank workflow (tab)', [], () => tabs.newTab());
  command('Comfy.LoadDefaultWorkflow', 'Load the default workflow', [], click('gg-default'));
  command('Comfy.ClearWorkflow', 'Clear the workflow', [], click('gg-clear'));
  command('Comfy.ExportWorkflowAPI', 'Export the API prompt', [], click('gg-export-api'));
  command('Workspace.ToggleSidebarTab.node-library', 'Show / hide the node library', ['N'], () => sidebar.toggle('nodes'));
  command('Workspace.ToggleSidebarTab.model-library', 'Show / hide the model library', ['M'], () => sidebar.toggle('models'));
  command('Workspace.ToggleSidebarTab.workflows', 'Show / hide the workflows', ['W'], () => sidebar.toggle('workflows'));
  command('Workspace.ToggleSidebarTab.templates', 'Show / hide the templates', [], () => sidebar.toggle('templates'));
  command('Workspace.ToggleSidebarTab.queue', 'Show / hide the queue panel', ['Q'], click('gg-toggle-queue'));
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
