/**
 * The model library (ComfyUI's sidebar tab): the model files the server offers, by kind, as its loader nodes'
 * combos list them in /object_info (checkpoints from CheckpointLoaderSimple's ckpt_name, LoRAs from
 * LoraLoader's lora_name, VAEs from VAELoader's vae_name, ...); a click adds that loader with the file chosen.
 */
import type { EditorApp } from './app.ts';
import type { ObjectInfoEntry } from './object-info.ts';
import { viewCenter } from './node-library.ts';
import type { SidebarPanel } from './sidebar.ts';
import { panelSection } from './sidebar.ts';

/** Model kinds by the loader input that lists them, in the order shown; the loader is ComfyUI's own when present. */
const KINDS: { input: string; label: string; loader: string }[] = [
  { input: 'ckpt_name', label: 'Checkpoints', loader: 'CheckpointLoaderSimple' },
  { input: 'lora_name', label: 'LoRAs', loader: 'LoraLoader' },
  { input: 'vae_name', label: 'VAEs', loader: 'VAELoader' },
  { input: 'unet_name', label: 'Diffusion models', loader: 'UNETLoader' },
  { input: 'clip_name', label: 'Text encoders', loader: 'CLIPLoader' },
  { input: 'control_net_name', label: 'ControlNets', loader: 'ControlNetLoader' },
  { input: 'upscale_model_name', label: 'Upscale models', loader: 'UpscaleModelLoader' },
];

export interface ModelGroup {
  label: string;
  loader: string;
  input: string;
  files: string[];
}

/** The model files per kind, from the loaders the server has (ComfyUI's loader first, else any with that input). */
export function modelGroups(info: Record<string, ObjectInfoEntry>): ModelGroup[] {
  const groups: ModelGroup[] = [];
  for (const kind of KINDS) {
    const candidates = [info[kind.loader], ...Object.values(info)].filter((e): e is ObjectInfoEntry => !!e);
    const loader = candidates.find((e) => Array.isArray(e.input.required?.[kind.input]?.[0]));
    if (!loader) continue;
    const files = (loader.input.required[kind.input]![0] as unknown[]).map(String);
    groups.push({ label: kind.label, loader: loader.name, input: kind.input, files });
  }
  return groups;
}

export function modelLibraryPanel(app: EditorApp): SidebarPanel {
  return {
    id: 'models',
    label: 'Models',
    title: 'Model library: click a file to add its loader',
    render(container) {
      for (const group of modelGroups(app.objectInfo)) {
        const list = panelSection(container, group.label);
        list.dataset.kind = group.input;
        if (!group.files.length) {
          const li = document.createElement('li');
          li.className = 'gg-panel-empty';
          li.textContent = 'none on the server';
          list.append(li);
        }
        for (const file of group.files) {
          const li = document.createElement('li');
          li.className = 'gg-panel-item';
          li.dataset.file = file;
          li.textContent = file;
          li.title = `Add a ${group.loader} loading ${file}`;
          li.addEventListener('click', () => {
            const node = app.addNode(group.loader, viewCenter(app));
            const widget = node?.widgets?.find((w) => w.name === group.input);
            if (widget) widget.value = file;
            app.canvas.setDirty(true, true);
          });
          list.append(li);
        }
      }
    },
  };
}
