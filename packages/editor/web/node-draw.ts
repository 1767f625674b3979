/**
 * What the editor draws on a node beyond litegraph's body: the running outline, the progress bar, the latent
 * preview or output images below the widgets, and errors (red outline, the input row marked, the messages).
 */
import { LiteGraph } from './litegraph.ts';
import type { EditorNode, EditorWidget } from './node-state.ts';

const RUNNING = '#4CAF50';
const ERROR = '#FF4444';
const PROGRESS = '#4CAF50';

export function drawNodeOverlay(node: EditorNode, ctx: CanvasRenderingContext2D): void {
  const [width, height] = node.size;
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const collapsed = node.flags?.collapsed === true;
  ctx.save();
  if (!collapsed) drawImages(node, ctx, width, height);
  const mode = node.mode as number;
  if (mode === 2 || mode === 4) {
    // Muted nodes are dimmed, bypassed ones tinted purple, as in ComfyUI.
    ctx.fillStyle = mode === 4 ? 'rgba(255, 0, 255, 0.22)' : 'rgba(0, 0, 0, 0.45)';
    const w = collapsed ? ((node as unknown as { _collapsed_width?: number })._collapsed_width ?? width) : width;
    roundRect(ctx, 0, -title, w, collapsed ? title : height + title, 8);
    ctx.fill();
  }

  if (node.gg.running) {
    ctx.strokeStyle = RUNNING;
    ctx.lineWidth = 3;
    roundRect(ctx, -3, -title - 3, width + 6, height + title + 6, 10);
    ctx.stroke();
  }
  const progress = node.gg.progress;
  if (progress && progress.max > 0) {
    // Over the title's bottom edge, as ComfyUI does.
    const fraction = Math.min(1, Math.max(0, progress.value / progress.max));
    ctx.fillStyle = 'rgba(0,0,0,0.35)';
    ctx.fillRect(0, -4, width, 4);
    ctx.fillStyle = PROGRESS;
    ctx.fillRect(0, -4, width * fraction, 4);
  }
  if (node.gg.errors.length) drawErrors(node, ctx, width, height, title);
  ctx.restore();
}

/** The y (node coordinates) where the widgets end: images and the timeline start there. */
export function widgetsBottom(node: EditorNode): number {
  const widgets = node.widgets ?? [];
  const last = widgets[widgets.length - 1];
  if (last && last.last_y !== undefined) {
    const h = last.computeSize ? last.computeSize(node.size[0])[1] : LiteGraph.NODE_WIDGET_HEIGHT;
    return last.last_y + h + 6;
  }
  const rows = Math.max(node.inputs?.length ?? 0, node.outputs?.length ?? 0, 1);
  return rows * LiteGraph.NODE_SLOT_HEIGHT + 8;
}

function drawImages(node: EditorNode, ctx: CanvasRenderingContext2D, width: number, height: number): void {
  const shown = node.gg.preview ? [node.gg.preview] : node.gg.images;
  const ready = shown.filter((img) => img.complete && img.naturalWidth > 0);
  if (!ready.length) return;
  const top = widgetsBottom(node);
  const areaW = width - 10;
  const areaH = height - top - 5;
  if (areaH < 20) return;
  // Several images: a grid with as large cells as fit.
  const n = ready.length;
  let best = { cols: 1, cell: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cell = Math.min(areaW / cols, areaH / rows);
    if (cell > best.cell) best = { cols, cell };
  }
  ready.forEach((img, i) => {
    const col = i % best.cols;
    const row = Math.floor(i / best.cols);
    const scale = Math.min(best.cell / img.naturalWidth, best.cell / img.naturalHeight);
    const w = img.naturalWidth * scale;
    const h = img.naturalHeight * scale;
    const gridW = best.cols * best.cell;
    const x = 5 + (areaW - gridW) / 2 + col * best.cell + (best.cell - w) / 2;
    const y = top + row * best.cell + (n === 1 ? (areaH - h) / 2 : (best.cell - h) / 2);
    // Enlarged small images (a 64 px tiny-sd output, latent previews) keep their pixels sharp: smoothing would
    // blur exactly the edges a user inspects; images shown at or below their size are smoothed as usual.
    const smoothing = ctx.imageSmoothingEnabled;
    ctx.imageSmoothingEnabled = scale < 1;
    ctx.drawImage(img, x, y, w, h);
    ctx.imageSmoothingEnabled = smoothing;
  });
}

function drawErrors(node: EditorNode, ctx: CanvasRenderingContext2D, width: number, height: number, title: number): void {
  ctx.strokeStyle = ERROR;
  ctx.lineWidth = 2;
  roundRect(ctx, -4, -title - 4, width + 8, height + title + 8, 10);
  ctx.stroke();
  for (const error of node.gg.errors) {
    if (!error.input) continue;
    const slot = node.inputs?.findIndex((input) => input.name === error.input) ?? -1;
    const widget = node.widgets?.find((w: EditorWidget) => w.name === error.input);
    ctx.strokeStyle = ERROR;
    ctx.fillStyle = 'rgba(255,68,68,0.18)';
    if (widget && widget.last_y !== undefined && !(slot >= 0 && node.inputs[slot]?.link != null)) {
      const h = widget.computeSize ? widget.computeSize(width)[1] : LiteGraph.NODE_WIDGET_HEIGHT;
      roundRect(ctx, 12, widget.last_y - 1, width - 24, h + 2, 6);
      ctx.fill();
      ctx.stroke();
    } else if (slot >= 0) {
      const y = (slot + 0.7) * LiteGraph.NODE_SLOT_HEIGHT;
      ctx.beginPath();
      ctx.arc(10, y - 4, 7, 0, Math.PI * 2);
      ctx.stroke();
      ctx.fillRect(2, y - 14, width * 0.5, LiteGraph.NODE_SLOT_HEIGHT);
    }
  }
  // The messages under the node, wrapped to its width.
  ctx.font = '12px Inter, "Segoe UI", Arial, sans-serif';
  ctx.fillStyle = ERROR;
  ctx.textAlign = 'left';
  let y = height + 20;
  for (const error of node.gg.errors.slice(0, 4)) {
    const text = error.input && !error.message.includes(`"${error.input}"`) ? `${error.input}: ${error.message}` : error.message;
    for (const line of wrap(ctx, text, Math.max(width, 240))) {
      ctx.fillText(line, 0, y);
      y += 15;
    }
  }
}

function wrap(ctx: CanvasRenderingContext2D, text: string, maxWidth: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    const candidate = line ? `${line} ${word}` : word;
    if (ctx.measureText(candidate).width > maxWidth && line) {
      lines.push(line);
      line = word;
    } else line = candidate;
  }
  if (line) lines.push(line);
  return lines.slice(0, 4);
}

function roundRect(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, h: number, r: number): void {
  ctx.beginPath();
  ctx.roundRect(x, y, w, h, r);
}
