/**
 * Image inputs (`image_upload: true` combos, LoadImage's): an "upload" button under the combo that sends a
 * file to POST /upload/image (the input folder) and selects it, a preview of the selected image on the node,
 * and images dropped on the node uploaded the same way.
 */
import type { Api } from './api.ts';
import { LiteGraph } from './litegraph.ts';
import type { EditorNode, EditorWidget } from './node-state.ts';

export interface UploadTarget {
  /** Uploads a file and selects it in the combo. */
  upload(file: File): Promise<void>;
}

const targets = new WeakMap<EditorNode, UploadTarget>();

/** The upload handler of a node with an image input, if it has one (for drops). */
export function uploadTargetOf(node: EditorNode): UploadTarget | undefined {
  return targets.get(node);
}

let api: Api | undefined;
let report: (message: string) => void = (message) => console.error(message);
/** The client uploads go through, and where failures are reported (set once at start-up). */
export function setUploadApi(client: Api, onError: (message: string) => void): void {
  api = client;
  report = onError;
}

/** Adds the upload button and the preview to a node whose `combo` widget names input images. */
export function addImageUpload(node: EditorNode, combo: EditorWidget): void {
  const preview = () => showInputImage(node, String(combo.value ?? ''));
  const upload = async (file: File) => {
    if (!api) throw new Error('the editor is not connected');
    const form = new FormData();
    form.append('image', file, file.name);
    form.append('type', 'input');
    form.append('overwrite', 'false');
    const response = await api.fetch('/upload/image', { method: 'POST', body: form });
    const body = (await response.json().catch(() => ({}))) as { name?: string; subfolder?: string; error?: { message?: string } };
    if (!response.ok || !body.name) throw new Error(`Uploading ${file.name} failed: ${body.error?.message ?? `HTTP ${response.status}`}`);
    const value = body.subfolder ? `${body.subfolder}/${body.name}` : body.name;
    const values = (combo.options as { values?: string[] }).values;
    if (values && !values.includes(value)) values.push(value);
    combo.value = value;
    combo.callback?.(value, undefined as never, node as never, undefined as never, undefined as never);
    preview();
  };
  targets.set(node, { upload });

  const button = node.addWidget('button', 'upload', null, () => {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = 'image/png,image/jpeg,image/webp,image/gif';
    input.addEventListener('change', () => {
      const file = input.files?.[0];
      if (file) void upload(file).catch((error: Error) => report(error.message));
    });
    input.click();
  }) as EditorWidget;
  button.label = 'choose file to upload';
  button.serialize = false;
  (button.options as { serialize?: boolean }).serialize = false;

  const callback = combo.callback;
  combo.callback = (...args: Parameters<NonNullable<EditorWidget['callback']>>) => {
    callback?.apply(combo, args);
    preview();
  };
  // After a workflow sets the value (configure), show that image.
  const configured = node.onConfigure;
  node.onConfigure = function (this: EditorNode, info: unknown) {
    configured?.call(this, info as never);
    preview();
  };
  preview();
}

function showInputImage(node: EditorNode, value: string): void {
  if (!api || !value) {
    node.gg.images = [];
    return;
  }
  const slash = value.lastIndexOf('/');
  const ref = { filename: value.slice(slash + 1), subfolder: slash === -1 ? '' : value.slice(0, slash), type: 'input' };
  const img = new Image();
  img.dataset.filename = ref.filename;
  img.onload = () => node.setDirtyCanvas(true, false);
  img.onerror = () => {
    node.gg.images = node.gg.images.filter((i) => i !== img);
  };
  img.src = api.viewUrl(ref);
  node.gg.images = [img];
  const wanted = node.computeSize()[1] + 200;
  if (node.size[1] < wanted) node.setSize([Math.max(node.size[0], 270), wanted]);
}
