/**
 * Live feedback from the websocket, drawn on the nodes: the running node outlined, the sampler's progress
 * bar, latent previews (binary frames) on the running node, output images from `executed` (via /view), and
 * `execution_error` on the failing node. Extensions get `node.onExecuted(output)` after a node ran.
 */
import type { EditorApp } from './app.ts';
import type { ImageRef } from './api.ts';
import type { EditorNode } from './node-state.ts';

interface ExecutingMessage {
  node: string | null;
  display_node?: string;
  prompt_id?: string;
}
interface ProgressMessage {
  value: number;
  max: number;
  node?: string;
  prompt_id?: string;
}
interface ExecutedMessage {
  node: string;
  display_node?: string;
  output: Record<string, unknown> | null;
  prompt_id?: string;
}
interface ExecutionErrorMessage {
  prompt_id?: string;
  node_id: string;
  node_type?: string;
  exception_message?: string;
  exception_type?: string;
  traceback?: string[] | string;
}

/** Space under the widgets that a node gets when its first output image arrives. */
const IMAGE_AREA = 256;
/** Latent previews are small and temporary: a smaller area, so the sampler grows less over its neighbours. */
const PREVIEW_AREA = 160;

export function installExecutionFeedback(app: EditorApp): void {
  let running: EditorNode | undefined;
  let previewUrl: string | undefined;

  const setRunning = (node: EditorNode | undefined) => {
    if (running && running !== node) {
      running.gg.running = false;
      running.gg.progress = undefined;
      running.gg.preview = undefined;
    }
    running = node;
    if (node) node.gg.running = true;
    app.canvas?.setDirty(true, false);
  };

  const on = <T>(type: string, handler: (detail: T) => void) =>
    app.api.addEventListener(type, (event) => handler((event as CustomEvent<T>).detail));

  on<{ prompt_id: string }>('execution_start', () => {
    for (const node of app.nodes) node.gg.errors = [];
  });

  on<ExecutingMessage>('executing', (data) => {
    const id = data.display_node ?? data.node;
    setRunning(id === null || id === undefined ? undefined : app.nodeById(id.split(':')[0]!));
    if (id === null) {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = undefined;
    }
  });

  on<ProgressMessage>('progress', (data) => {
    const node = data.node ? app.nodeById(data.node.split(':')[0]!) : running;
    if (!node) return;
    node.gg.progress = { value: data.value, max: data.max };
    app.canvas?.setDirty(true, false);
  });

  app.api.addEventListener('b_preview', (event) => {
    const blob = (event as CustomEvent<Blob>).detail;
    if (!running) return;
    const node = running;
    const url = URL.createObjectURL(blob);
    const img = new Image();
    img.onload = () => {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = url;
      node.gg.preview = img;
      ensureImageArea(node, PREVIEW_AREA);
      app.canvas?.setDirty(true, false);
    };
    img.src = url;
  });

  on<ExecutedMessage>('executed', (data) => {
    const node = app.nodeById((data.display_node ?? data.node).split(':')[0]!);
    if (!node) return;
    const output = data.output ?? {};
    const images = Array.isArray(output.images) ? (output.images as ImageRef[]) : [];
    if (images.length) showImages(app, node, images);
    try {
      node.onExecuted?.(output);
    } catch (error) {
      console.error(`gategraph: onExecuted of node ${node.id} (${node.comfyClass}) failed`, error);
    }
    app.canvas?.setDirty(true, false);
  });

  on<ExecutionErrorMessage>('execution_error', (data) => {
    setRunning(undefined);
    const node = app.nodeById(String(data.node_id).split(':')[0]!);
    const message = `${data.exception_type ? `${data.exception_type}: ` : ''}${data.exception_message ?? 'failed'}`;
    if (node) node.gg.errors = [{ message }];
    const traceback = Array.isArray(data.traceback) ? data.traceback.join('') : (data.traceback ?? '');
    app.notify('error', `${node?.title ?? data.node_type ?? 'Node'} #${data.node_id} failed: ${message}`, traceback);
    app.canvas?.setDirty(true, true);
  });

  on<{ message?: string }>('execution_interrupted', (data) => {
    setRunning(undefined);
    app.notify('info', data?.message ?? 'The prompt was interrupted');
  });

  on<{ note?: string }>('execution_success', (data) => {
    setRunning(undefined);
    // The server says when nothing ran because every output came from the cache (a resubmitted prompt).
    if (data?.note) app.notify('info', data.note);
  });
}

/** Shows output images (SaveImage/PreviewImage `executed` output) on a node, loaded from /view. */
export function showImages(app: EditorApp, node: EditorNode, refs: ImageRef[]): void {
  const images = refs.map((ref) => {
    const img = new Image();
    img.dataset.filename = ref.filename;
    img.onload = () => app.canvas?.setDirty(true, false);
    img.src = app.api.viewUrl(ref);
    return img;
  });
  node.gg.preview = undefined;
  node.gg.images = images;
  ensureImageArea(node);
}

function ensureImageArea(node: EditorNode, area = IMAGE_AREA): void {
  const base = node.computeSize();
  const wanted = base[1] + area;
  if (node.size[1] < wanted || node.size[0] < area) {
    node.setSize([Math.max(node.size[0], area), Math.max(node.size[1], wanted)]);
  }
}
