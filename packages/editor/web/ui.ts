/**
 * The page around the canvas: toolbar buttons (their shortcuts are in keybindings.ts), dropping files on the
 * page, the connection indicator and messages (toasts).
 */
import type { EditorApp } from './app.ts';
import type { UiActions } from './keybindings.ts';
import { uploadTargetOf, type UploadTarget } from './image-upload.ts';
import { dropImageAsNode } from './image-drop.ts';
import { isEditorNode } from './node-state.ts';
import { buildDefaultGraph, loadDefaultGraph } from './default-graph.ts';
import { listServerWorkflows, loadServerWorkflow, saveServerWorkflow } from './userdata.ts';
import { download, fileName, loadWorkflowJson, readWorkflowFile } from './workflow-io.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** Installs the page's controls; returns what the keyboard shortcuts trigger (keybindings.ts). */
export function installUi(app: EditorApp): UiActions {
  installToasts(app);
  const batch = $<HTMLInputElement>('gg-batch');
  const queue = async (front = false) => {
    const count = Math.max(1, Math.min(100, Math.floor(Number(batch.value) || 1)));
    await app.queuePrompt(count, front ? { front: true } : {});
  };
  $('gg-queue').addEventListener('click', () => void queue());

  let currentName = 'workflow';
  $('gg-save').addEventListener('click', () => {
    // Comfy.PromptFilename off: saved under the current name without asking.
    const name = app.settings?.get('Comfy.PromptFilename') === false ? currentName : prompt('Save workflow as', currentName);
    if (name === null) return;
    currentName = name.replace(/\.json$/i, '') || currentName;
    download(fileName(currentName, '.json'), JSON.stringify(app.serializeGraph(), null, 2));
  });
  $('gg-export-api').addEventListener('click', () => {
    const { prompt: apiPrompt, warnings } = app.graphToPrompt();
    if (warnings.length) app.notify('warning', 'Some parts of the graph could not be converted', warnings.join('\n'));
    download(fileName(`${currentName}.api`, '.json'), JSON.stringify(apiPrompt, null, 2));
  });
  const fileInput = $<HTMLInputElement>('gg-file');
  $('gg-open').addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const file = fileInput.files?.[0];
    fileInput.value = '';
    if (file) void openFile(app, file).then((name) => name && (currentName = name));
  });

  const serverList = $<HTMLSelectElement>('gg-server-workflows');
  const refreshServerList = async () => {
    const names = await listServerWorkflows(app.api).catch(() => undefined);
    serverList.disabled = names === undefined;
    serverList.title = names === undefined ? 'This server does not store workflows (no /userdata routes)' : 'Open a workflow saved on the server';
    serverList.replaceChildren(new Option(names?.length ? 'Server workflows…' : 'No server workflows', ''), ...(names ?? []).map((n) => new Option(n, n)));
  };
  serverList.addEventListener('focus', () => void refreshServerList());
  serverList.addEventListener('change', () => {
    const name = serverList.value;
    serverList.value = '';
    if (!name) return;
    void loadServerWorkflow(app.api, name)
      .then((json) => {
        // A server workflow is no temporary one: its own tab, as the workflow browser opens it.
        if (app.tabs) app.tabs.openInNewTab(json, name, { saved: true });
        else loadWorkflowJson(app, json, name);
        currentName = name.replace(/\.json$/i, '');
        app.notify('info', `Opened ${name} from the server`);
      })
      .catch((error: Error) => app.notify('error', error.message));
  });
  $('gg-save-server').addEventListener('click', () => {
    const name = prompt('Save on the server as', currentName);
    if (name === null) return;
    currentName = name.replace(/\.json$/i, '') || currentName;
    const file = fileName(currentName, '.json');
    void saveServerWorkflow(app.api, file, app.serializeGraph())
      .then(() => {
        app.tabs?.markSaved();
        app.notify('info', `Saved ${file} on the server`);
        return refreshServerList();
      })
      .catch((error: Error) => app.notify('error', error.message));
  });
  void refreshServerList();

  $('gg-refresh').addEventListener('click', () => {
    void app.refreshNodeDefinitions().catch((error: Error) => app.notify('error', error.message));
  });
  $('gg-default').addEventListener('click', () => {
    if (app.nodes.length && !confirm('Replace the graph with the default one?')) return;
    void loadDefaultGraph(app).catch(() => buildDefaultGraph(app));
  });
  $('gg-clear').addEventListener('click', () => {
    if (app.nodes.length && app.settings?.get('Comfy.ConfirmClear') !== false && !confirm('Remove every node?')) return;
    app.graph.clear();
    app.canvas.setDirty(true, true);
  });

  const panel = $('gg-queue-panel');
  const toggle = $('gg-toggle-queue');
  toggle.addEventListener('click', () => {
    const hidden = panel.toggleAttribute('hidden');
    toggle.setAttribute('aria-pressed', String(!hidden));
  });

  // Dropping a workflow JSON or a PNG anywhere on the page opens it.
  addEventListener('dragover', (event) => {
    if (event.dataTransfer?.types.includes('Files')) event.preventDefault();
  });
  addEventListener('drop', (event) => {
    const file = event.dataTransfer?.files?.[0];
    if (!file) return;
    event.preventDefault();
    event.stopPropagation();
    // An image dropped on a node with an image input (LoadImage) is uploaded to it, as in ComfyUI.
    const target = event.target === app.canvasEl && file.type.startsWith('image/') ? nodeUploadAt(app, event) : undefined;
    if (target) {
      void target.upload(file).then(
        () => app.notify('info', `Uploaded ${file.name}`),
        (error: Error) => app.notify('error', error.message),
      );
      return;
    }
    // A plain image (not a PNG carrying a workflow) dropped on the canvas becomes a LoadImage node.
    if (event.target === app.canvasEl && file.type.startsWith('image/')) {
      void readWorkflowFile(file).then(
        (json) => openJson(app, json, file.name).then((name) => name && (currentName = name)),
        () =>
          dropImageAsNode(app, file, event).then(
            () => app.notify('info', `Uploaded ${file.name} to a new Load Image node`),
            (error: Error) => app.notify('error', error.message),
          ),
      );
      return;
    }
    void openFile(app, file).then((name) => name && (currentName = name));
  }, true);

  const connection = $('gg-connection');
  const setConnection = (state: string, text: string) => {
    connection.dataset.state = state;
    connection.textContent = text;
  };
  setConnection('connecting', 'connecting…');
  app.api.addEventListener('status', () => setConnection('open', 'connected'));
  app.api.addEventListener('reconnecting', () => setConnection('closed', 'reconnecting…'));
  app.api.addEventListener('reconnected', () => setConnection('open', 'connected'));

  return {
    queue: (front) => void queue(front),
    save: () => $('gg-save').click(),
    open: () => fileInput.click(),
    refresh: () => void app.refreshNodeDefinitions().catch((error: Error) => app.notify('error', error.message)),
  };
}

function nodeUploadAt(app: EditorApp, event: MouseEvent): UploadTarget | undefined {
  const [x, y] = app.canvas.convertEventToCanvasOffset(event) as [number, number];
  const node = app.graph.getNodeOnPos(x, y);
  return isEditorNode(node) ? uploadTargetOf(node) : undefined;
}

/** Opens a dropped or picked file; returns the name it was opened as (for the next save). */
async function openFile(app: EditorApp, file: File): Promise<string | undefined> {
  try {
    return await openJson(app, await readWorkflowFile(file), file.name);
  } catch (error) {
    app.notify('error', `Could not open ${file.name}: ${(error as Error).message}`);
    return undefined;
  }
}

async function openJson(app: EditorApp, json: unknown, fileName: string): Promise<string | undefined> {
  const file = { name: fileName };
  try {
    // In a new tab unless the tab shown is an unchanged temporary workflow (workflow-tabs.ts).
    if (app.tabs) app.tabs.open(json, file.name);
    else loadWorkflowJson(app, json, file.name);
    app.notify('info', `Opened ${file.name}`);
    return file.name.replace(/\.(json|png)$/i, '');
  } catch (error) {
    app.notify('error', `Could not open ${file.name}: ${(error as Error).message}`);
    return undefined;
  }
}

function installToasts(app: EditorApp): void {
  const area = $('gg-toasts');
  app.events.addEventListener('notify', (event) => {
    const { level, message, details } = (event as CustomEvent<{ level: string; message: string; details?: string }>).detail;
    const toast = document.createElement('div');
    toast.className = `gg-toast gg-toast-${level}`;
    toast.setAttribute('role', level === 'error' ? 'alert' : 'status');
    const text = document.createElement('div');
    text.className = 'gg-toast-message';
    text.textContent = message;
    toast.append(text);
    if (details) {
      const pre = document.createElement('pre');
      pre.textContent = details;
      toast.append(pre);
    }
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'gg-toast-close';
    close.textContent = '×';
    close.title = 'Dismiss';
    close.addEventListener('click', () => toast.remove());
    toast.append(close);
    area.append(toast);
    if (level !== 'error') setTimeout(() => toast.remove(), 6000);
    while (area.children.length > 5) area.firstElementChild?.remove();
  });
  app.events.addEventListener('errors-cleared', () => {
    for (const toast of area.querySelectorAll('.gg-toast-error')) toast.remove();
  });
}
