/**
 * The workflows saved on the server (ComfyUI's workflow browser, through its /userdata routes): open one (in a
 * new tab), delete one, save the tab shown under a name.
 */
import type { EditorApp } from './app.ts';
import type { SidebarPanel } from './sidebar.ts';
import { panelSection } from './sidebar.ts';
import { deleteServerWorkflow, listServerWorkflows, loadServerWorkflow, saveServerWorkflow } from './userdata.ts';
import { fileName } from './workflow-io.ts';
import type { WorkflowTabs } from './workflow-tabs.ts';

export function workflowBrowserPanel(app: EditorApp, tabs: WorkflowTabs): SidebarPanel {
  const report = (promise: Promise<unknown>) => promise.catch((error: Error) => app.notify('error', error.message));
  return {
    id: 'workflows',
    label: 'Workflows',
    title: 'Workflows saved on the server',
    async render(container) {
      const save = document.createElement('button');
      save.type = 'button';
      save.textContent = 'Save current…';
      save.title = 'Save the workflow shown on the server';
      const list = panelSection(container, 'On the server');
      container.prepend(save);
      const fill = async () => {
        const names = await listServerWorkflows(app.api);
        if (!names.length) {
          const li = document.createElement('li');
          li.className = 'gg-panel-empty';
          li.textContent = 'No workflows saved yet';
          list.replaceChildren(li);
          return;
        }
        list.replaceChildren(
          ...names.map((name) => {
            const li = document.createElement('li');
            li.className = 'gg-panel-item';
            li.dataset.workflow = name;
            const label = document.createElement('span');
            label.textContent = name.replace(/\.json$/, '');
            label.title = 'Open in a new tab';
            const open = () =>
              report(loadServerWorkflow(app.api, name).then((json) => tabs.openInNewTab(json, name, { saved: true })));
            label.addEventListener('click', () => void open());
            const remove = document.createElement('button');
            remove.type = 'button';
            remove.className = 'gg-small';
            remove.textContent = 'Delete';
            remove.title = `Delete ${name} from the server`;
            remove.addEventListener('click', () => {
              if (app.settings?.get('Comfy.Workflow.ConfirmDelete') !== false && !confirm(`Delete ${name} from the server?`)) return;
              void report(deleteServerWorkflow(app.api, name).then(fill));
            });
            li.append(label, remove);
            return li;
          }),
        );
      };
      save.addEventListener('click', () => {
        const name = prompt('Save on the server as', tabs.activeName);
        if (!name) return;
        void report(
          saveServerWorkflow(app.api, fileName(name, '.json'), app.serializeGraph())
            .then(() => {
              tabs.markSaved();
              app.notify('info', `Saved ${fileName(name, '.json')} on the server`);
            })
            .then(fill),
        );
      });
      await fill();
    },
  };
}
