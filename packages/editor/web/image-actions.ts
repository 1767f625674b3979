/**
 * ComfyUI's image entries in the menu of a node showing an output image: Open Image (a new tab), Save Image (a
 * download with the file's name) and Copy Image (the clipboard, where the browser allows it: a secure page,
 * and PNG, the one image type browsers accept there, so other types are redrawn as PNG first).
 */
import type { EditorApp } from './app.ts';
import { LGraphCanvas, type LGraphNodeType } from './litegraph.ts';
import { isEditorNode } from './node-state.ts';

type MenuEntry = { content: string; callback: () => void } | null;

export function installImageActions(app: EditorApp): void {
  const proto = LGraphCanvas.prototype as unknown as { getNodeMenuOptions(node: LGraphNodeType): MenuEntry[] };
  const original = proto.getNodeMenuOptions;
  proto.getNodeMenuOptions = function (node) {
    const options = original.call(this, node);
    const image = isEditorNode(node) ? node.gg.images.find((img) => img.complete && img.naturalWidth > 0) : undefined;
    if (!image) return options;
    const name = image.dataset.filename ?? 'image.png';
    const report = (promise: Promise<unknown>) => void promise.catch((error: Error) => app.notify('error', error.message));
    return [
      { content: 'Open Image', callback: () => void open(image.src, '_blank') },
      { content: 'Save Image', callback: () => saveImage(image.src, name) },
      {
        content: 'Copy Image',
        callback: () => report(copyImage(image).then(() => app.notify('info', `Copied ${name} to the clipboard`))),
      },
      null,
      ...options,
    ];
  };
}

function saveImage(src: string, name: string): void {
  const a = document.createElement('a');
  a.href = src;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

export async function copyImage(image: HTMLImageElement): Promise<void> {
  if (!window.isSecureContext || !navigator.clipboard?.write || typeof ClipboardItem === 'undefined') {
    throw new Error('This browser does not allow copying images here (it needs https or localhost); use Open Image or Save Image');
  }
  const blob = await (await fetch(image.src)).blob();
  const png = blob.type === 'image/png' ? blob : await toPng(image);
  await navigator.clipboard.write([new ClipboardItem({ 'image/png': png })]);
}

function toPng(image: HTMLImageElement): Promise<Blob> {
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  canvas.getContext('2d')!.drawImage(image, 0, 0);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('The image could not be converted to PNG'))), 'image/png'));
}
