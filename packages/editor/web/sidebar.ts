/**
 * The left sidebar (ComfyUI's): a column of buttons, each showing one panel (node library, model library,
 * workflows, templates) beside the canvas; clicking the shown panel's button again hides it.
 */
export interface SidebarPanel {
  id: string;
  label: string;
  title: string;
  /** Fills the panel's element; called each time the panel is shown (lists are read again then). */
  render(container: HTMLElement): void | Promise<void>;
}

export function installSidebar(bar: HTMLElement, area: HTMLElement, panels: SidebarPanel[]): { show(id: string): void; toggle(id: string): void } {
  let shown: string | undefined;
  const buttons = panels.map((panel) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'gg-sidebar-button';
    button.dataset.panel = panel.id;
    button.textContent = panel.label;
    button.title = panel.title;
    button.setAttribute('aria-pressed', 'false');
    button.addEventListener('click', () => (shown === panel.id ? hide() : show(panel.id)));
    return button;
  });
  bar.replaceChildren(...buttons);

  function hide(): void {
    shown = undefined;
    area.hidden = true;
    for (const b of buttons) b.setAttribute('aria-pressed', 'false');
  }
  function show(id: string): void {
    const panel = panels.find((p) => p.id === id);
    if (!panel) return;
    shown = id;
    area.hidden = false;
    area.dataset.panel = id;
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.panel === id));
    const container = document.createElement('div');
    container.className = `gg-panel gg-panel-${id}`;
    area.replaceChildren(container);
    void Promise.resolve(panel.render(container)).catch((error: Error) => {
      container.textContent = error.message;
    });
  }
  area.hidden = true;
  return { show, toggle: (id) => (shown === id ? hide() : show(id)) };
}

/** A heading and a list, the shape every sidebar panel has. */
export function panelSection(container: HTMLElement, heading: string): HTMLUListElement {
  const h = document.createElement('h3');
  h.textContent = heading;
  const list = document.createElement('ul');
  container.append(h, list);
  return list;
}
