/**
 * Workflow templates: the repository's workflows/*.json, bundled into the editor at build time (vite's
 * import.meta.glob), so they are there whatever server serves the editor and need no route of its own.
 * An API-format file beside a UI-format one of the same name (default.json / default.ui.json) is the same
 * workflow: only the UI one is listed. API-format templates are laid out on opening.
 */
import type { SidebarPanel } from './sidebar.ts';
import { panelSection } from './sidebar.ts';
import type { WorkflowTabs } from './workflow-tabs.ts';

declare global {
  interface ImportMeta {
    glob(pattern: string, options: { eager: true; import: 'default' }): Record<string, unknown>;
  }
}

const files = import.meta.glob('../../../workflows/*.json', { eager: true, import: 'default' });

/** What the known templates are; others are listed by file name. */
const DESCRIPTIONS: Record<string, [string, string]> = {
  default: ['Text to image', 'The default graph: checkpoint, prompts, KSampler, VAE decode, save'],
  tgate: ['TGATE', 'Text to image with TGATE: cross-attention cached after the gate step'],
  'tgate-compare': ['Plain vs TGATE', 'The same prompt and seed through a plain and a TGATE sampler, side by side'],
};

export interface Template {
  id: string;
  title: string;
  description: string;
  workflow: unknown;
}

export function templates(): Template[] {
  const byName = new Map<string, unknown>();
  for (const [path, workflow] of Object.entries(files)) byName.set(path.split('/').pop()!.replace(/\.json$/, ''), workflow);
  return [...byName.entries()]
    .filter(([name]) => !(name.endsWith('.ui') ? false : byName.has(`${name}.ui`)))
    .map(([name, workflow]) => {
      const id = name.replace(/\.ui$/, '');
      const [title, description] = DESCRIPTIONS[id] ?? [id, `workflows/${name}.json`];
      return { id, title, description, workflow };
    })
    .sort((a, b) => Number(b.id === 'default') - Number(a.id === 'default') || a.title.localeCompare(b.title));
}

export function templatesPanel(tabs: WorkflowTabs): SidebarPanel {
  return {
    id: 'templates',
    label: 'Templates',
    title: 'Workflow templates (opened in a new tab)',
    render(container) {
      const list = panelSection(container, 'Templates');
      for (const template of templates()) {
        const li = document.createElement('li');
        li.dataset.template = template.id;
        li.className = 'gg-panel-item';
        li.innerHTML = '<b></b><small></small>';
        li.querySelector('b')!.textContent = template.title;
        li.querySelector('small')!.textContent = template.description;
        li.title = 'Open in a new tab';
        li.addEventListener('click', () => tabs.openInNewTab(JSON.parse(JSON.stringify(template.workflow)), template.title));
        list.append(li);
      }
    },
  };
}
