/**
 * The node library (ComfyUI's sidebar tab): every node class of /object_info, and the editor-only nodes,
 * in a tree by category; a click adds the node in the middle of the view, a drag drops it where it is let go.
 */
import type { EditorApp } from './app.ts';
import type { SidebarPanel } from './sidebar.ts';
import { EDITOR_ONLY_ENTRIES } from './virtual-nodes.ts';

export const NODE_DRAG_TYPE = 'application/x-gategraph-node';

/** The graph position at the middle of the canvas, where a clicked node goes. */
export function viewCenter(app: EditorApp): [number, number] {
  const ds = app.canvas.ds as unknown as { scale: number; offset: [number, number] };
  return [app.canvasEl.width / 2 / ds.scale - ds.offset[0], app.canvasEl.height / 2 / ds.scale - ds.offset[1]];
}

export function nodeLibraryPanel(app: EditorApp): SidebarPanel {
  return {
    id: 'nodes',
    label: 'Nodes',
    title: 'Node library: click to add, or drag onto the canvas',
    render(container) {
      const filter = document.createElement('input');
      filter.type = 'search';
      filter.placeholder = 'Filter nodes…';
      filter.setAttribute('aria-label', 'Filter nodes');
      const tree = document.createElement('div');
      tree.className = 'gg-node-tree';
      container.append(filter, tree);
      const entries = [...Object.values(app.objectInfo), ...EDITOR_ONLY_ENTRIES];
      const fill = () => {
        const q = filter.value.trim().toLowerCase();
        const byCategory = new Map<string, typeof entries>();
        for (const entry of entries) {
          const name = entry.display_name || entry.name;
          if (q && !`${name} ${entry.name} ${entry.category}`.toLowerCase().includes(q)) continue;
          const list = byCategory.get(entry.category || 'other') ?? [];
          list.push(entry);
          byCategory.set(entry.category || 'other', list);
        }
        tree.replaceChildren(
          ...[...byCategory.entries()]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([category, list]) => {
              const details = document.createElement('details');
              details.dataset.category = category;
              details.open = q !== '';
              const summary = document.createElement('summary');
              summary.textContent = category;
              const ul = document.createElement('ul');
              for (const entry of list.sort((a, b) => (a.display_name || a.name).localeCompare(b.display_name || b.name))) {
                const li = document.createElement('li');
                li.className = 'gg-panel-item';
                li.dataset.type = entry.name;
                li.textContent = entry.display_name || entry.name;
                li.title = entry.description || entry.name;
                li.draggable = true;
                li.addEventListener('click', () => {
                  const node = app.addNode(entry.name, viewCenter(app));
                  if (node) app.canvas.selectNode(node as never);
                });
                li.addEventListener('dragstart', (event) => {
                  event.dataTransfer?.setData(NODE_DRAG_TYPE, entry.name);
                  if (event.dataTransfer) event.dataTransfer.effectAllowed = 'copy';
                });
                ul.append(li);
              }
              details.append(summary, ul);
              return details;
            }),
        );
      };
      filter.addEventListener('input', fill);
      fill();
    },
  };
}

/** Dropping a node dragged from the library on the canvas adds it there. */
export function acceptNodeDrops(app: EditorApp, target: HTMLElement): void {
  target.addEventListener('dragover', (event) => {
    if (!event.dataTransfer?.types.includes(NODE_DRAG_TYPE)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  target.addEventListener('drop', (event) => {
    const type = event.dataTransfer?.getData(NODE_DRAG_TYPE);
    if (!type) return;
    event.preventDefault();
    const pos = app.canvas.convertEventToCanvasOffset(event) as [number, number];
    app.addNode(type, [pos[0], pos[1]]);
    app.canvas.setDirty(true, true);
  });
}
