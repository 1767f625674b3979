/**
 * A plain image dropped on the canvas becomes a LoadImage node there with the file uploaded to it (ComfyUI's
 * behaviour). A PNG that carries a workflow is a workflow, not an image: ui.ts opens those; only images
 * without one (or of other types) come here.
 */
import type { EditorApp } from './app.ts';
import { uploadTargetOf } from './image-upload.ts';

export const LOAD_IMAGE = 'LoadImage';

export async function dropImageAsNode(app: EditorApp, file: File, event: MouseEvent): Promise<void> {
  const [x, y] = app.canvas.convertEventToCanvasOffset(event) as [number, number];
  const node = app.addNode(LOAD_IMAGE, [x, y]);
  const target = node ? uploadTargetOf(node) : undefined;
  if (!node || !target) {
    node?.graph?.remove(node as never);
    throw new Error(`${file.name} is an image, and this server has no ${LOAD_IMAGE} node to load it with`);
  }
  app.canvas.setDirty(true, true);
  await target.upload(file);
}
