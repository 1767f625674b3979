/**
 * The node search box (double-click on the canvas, as in ComfyUI): type to filter node classes by display
 * name, class type, category and description; Enter or a click adds the node where the box was opened.
 * Opened by releasing a link on empty canvas, it offers only nodes that can take (or give) that type and
 * connects the new node.
 */
import type { EditorApp } from './app.ts';
import { typesCompatible } from './core.ts';
import type { LGraphNodeType } from './litegraph.ts';
import type { ObjectInfoEntry } from './object-info.ts';
import { describeInputs } from './object-info.ts';
import { EDITOR_ONLY_ENTRIES } from './virtual-nodes.ts';

interface SearchOptions {
  node_from?: LGraphNodeType;
  slot_from?: { type?: string; name?: string } | number | string;
  node_to?: LGraphNodeType;
  type_filter_in?: string;
  type_filter_out?: string;
}

const MAX_RESULTS = 40;

export function installSearchBox(app: EditorApp): void {
  const canvas = app.canvas as unknown as { showSearchBox: (event: MouseEvent, options?: SearchOptions) => void };
  canvas.showSearchBox = (event, options = {}) => openSearchBox(app, event, options);
}

/** The box's height at most (style.css .gg-search), for placing it. */
const SEARCH_BOX_HEIGHT = 360;
/** Clicks on the list this soon after opening belong to the double-click that opened it. */
const IGNORE_CLICKS_MS = 250;

export function openSearchBox(app: EditorApp, event: MouseEvent, options: SearchOptions = {}): void {
  document.querySelector('.gg-search')?.remove();
  const graphPos = app.canvas.convertEventToCanvasOffset(event) as [number, number];
  const box = document.createElement('div');
  box.className = 'gg-search';
  box.innerHTML = `<input type="search" placeholder="Search nodes…" aria-label="Search nodes" spellcheck="false"><ul role="listbox"></ul>`;
  // The box opens below the cursor, or wholly above it near the bottom edge, never with its list under the
  // cursor: the clicks of the double-click that opened it (a slow page handles them late) would land on an entry
  // and add that node.
  box.style.left = `${Math.min(event.clientX, innerWidth - 420)}px`;
  box.style.top = `${event.clientY + SEARCH_BOX_HEIGHT <= innerHeight ? event.clientY : Math.max(0, event.clientY - SEARCH_BOX_HEIGHT - 8)}px`;
  const openedAt = performance.now();
  document.body.append(box);
  const input = box.querySelector('input')!;
  const list = box.querySelector('ul')!;
  let results: ObjectInfoEntry[] = [];
  let selected = 0;

  const wantInput = options.type_filter_in ?? (options.node_from ? slotType(options.slot_from) : undefined);
  const wantOutput = options.type_filter_out ?? (options.node_to ? slotType(options.slot_from) : undefined);
  const candidates = [...Object.values(app.objectInfo), ...EDITOR_ONLY_ENTRIES].filter((entry) => {
    if (wantInput) return describeInputs(entry).some((i) => typesCompatible(i.spec.kind === 'SOCKET' ? i.spec.type : i.spec.kind, wantInput));
    if (wantOutput) return entry.output.some((t) => typesCompatible(t, wantOutput));
    return true;
  });

  const render = () => {
    results = rank(candidates, input.value).slice(0, MAX_RESULTS);
    selected = Math.min(selected, Math.max(0, results.length - 1));
    list.replaceChildren(
      ...results.map((entry, i) => {
        const li = document.createElement('li');
        li.setAttribute('role', 'option');
        li.dataset.type = entry.name;
        if (i === selected) li.classList.add('selected');
        const name = document.createElement('span');
        name.className = 'gg-search-name';
        name.textContent = entry.display_name || entry.name;
        const category = document.createElement('span');
        category.className = 'gg-search-category';
        category.textContent = entry.category;
        li.append(name, category);
        if (entry.description) li.title = entry.description;
        li.addEventListener('mousedown', (e) => {
          e.preventDefault();
          // The double-click that opened the box is not a choice (its late events can reach the list).
          if (performance.now() - openedAt < IGNORE_CLICKS_MS) return;
          choose(entry);
        });
        return li;
      }),
    );
    list.children[selected]?.scrollIntoView({ block: 'nearest' });
  };

  const close = () => {
    box.remove();
    app.canvasEl.focus();
  };
  const choose = (entry: ObjectInfoEntry) => {
    close();
    const node = app.addNode(entry.name, graphPos);
    if (!node) return;
    if (options.node_from && wantInput) {
      const from = options.node_from;
      const outSlot = typeof options.slot_from === 'number' ? options.slot_from : from.findOutputSlot((options.slot_from as { name?: string })?.name ?? '');
      const target = node.inputs?.findIndex((i) => typesCompatible(i.type as string, wantInput)) ?? -1;
      if (outSlot >= 0 && target >= 0) from.connect(outSlot, node, target);
    } else if (options.node_to && wantOutput) {
      const to = options.node_to;
      const inSlot = typeof options.slot_from === 'number' ? options.slot_from : to.findInputSlot((options.slot_from as { name?: string })?.name ?? '');
      const source = node.outputs?.findIndex((o) => typesCompatible(o.type as string, wantOutput)) ?? -1;
      if (inSlot >= 0 && source >= 0) node.connect(source, to, inSlot);
    }
  };

  input.addEventListener('input', () => {
    selected = 0;
    render();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      selected = (selected + (e.key === 'ArrowDown' ? 1 : -1) + results.length) % Math.max(1, results.length);
      render();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      const entry = results[selected];
      if (entry) choose(entry);
    } else if (e.key === 'Escape') {
      close();
    }
    e.stopPropagation();
  });
  input.addEventListener('blur', () => setTimeout(() => box.isConnected && close(), 150));
  render();
  input.focus();
}

function slotType(slot: SearchOptions['slot_from']): string | undefined {
  return typeof slot === 'object' && slot ? slot.type : undefined;
}

/** Best matches first: name prefix, then word prefix, then substring of name, class, category, description. */
export function rank(entries: ObjectInfoEntry[], query: string): ObjectInfoEntry[] {
  const q = query.trim().toLowerCase();
  if (!q) return [...entries].sort((a, b) => a.category.localeCompare(b.category) || a.display_name.localeCompare(b.display_name));
  const words = q.split(/\s+/);
  const scored: { entry: ObjectInfoEntry; score: number }[] = [];
  for (const entry of entries) {
    const name = (entry.display_name || entry.name).toLowerCase();
    const id = entry.name.toLowerCase();
    const haystack = `${name} ${id} ${entry.category.toLowerCase()} ${entry.description.toLowerCase()}`;
    if (!words.every((w) => haystack.includes(w))) continue;
    let score = 0;
    if (name.startsWith(q) || id.startsWith(q)) score += 100;
    else if (name.split(/[\s_/()-]+/).some((w) => w.startsWith(words[0]!))) score += 60;
    if (name.includes(q) || id.includes(q)) score += 30;
    score -= name.length / 100;
    scored.push({ entry, score });
  }
  return scored.sort((a, b) => b.score - a.score).map((s) => s.entry);
}
