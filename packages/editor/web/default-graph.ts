/**
 * The graph a first visit opens: the repository's workflows/default.ui.json (copied next to the editor at build
 * time), else the same text-to-image graph built here from whatever of its node classes the server has.
 */
import type { EditorApp } from './app.ts';
import type { EditorNode } from './node-state.ts';

export const DEFAULT_WORKFLOW_URL = 'workflows/default.ui.json';

export async function loadDefaultGraph(app: EditorApp): Promise<void> {
  try {
    const response = await fetch(DEFAULT_WORKFLOW_URL, { cache: 'no-cache' });
    if (response.ok) {
      app.loadGraphData(await response.json());
      // The file's saved view is for some other window size: show the whole graph in this one.
      app.fitView();
      return;
    }
  } catch (error) {
    console.warn('gategraph: default workflow not available, building it', error);
  }
  buildDefaultGraph(app);
}

/**
 * CheckpointLoaderSimple "tiny-sd" -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler -> VAEDecode ->
 * SaveImage, laid out as ComfyUI's default graph. Classes the server lacks are left out.
 */
export function buildDefaultGraph(app: EditorApp): void {
  app.graph.clear();
  const add = (type: string, id: number, values: Record<string, unknown> = {}, size?: [number, number]) => {
    const node = app.addNode(type, [0, 0], id);
    if (!node) return undefined;
    for (const widget of node.widgets ?? []) if (widget.name in values) widget.value = values[widget.name];
    if (size) node.setSize([Math.max(size[0], node.size[0]), Math.max(size[1], node.size[1])]);
    return node;
  };
  const checkpoint = add('CheckpointLoaderSimple', 4);
  const names = checkpoint?.widgets?.find((w) => w.name === 'ckpt_name');
  const choices = ((names?.options as { values?: string[] } | undefined)?.values ?? []) as string[];
  if (names && choices.length) names.value = choices.find((c) => c.includes('tiny-sd')) ?? choices[0];
  const positive = add('CLIPTextEncode', 6, { text: 'a photograph of a red apple on a wooden table, soft light' }, [400, 160]);
  const negative = add('CLIPTextEncode', 7, { text: 'blurry, low quality' }, [400, 160]);
  const latent = add('EmptyLatentImage', 5, { width: 256, height: 256, batch_size: 1 });
  const sampler = add('KSampler', 3, { seed: 42, steps: 20, cfg: 7.5, sampler_name: 'euler', scheduler: 'normal', denoise: 1 });
  const decode = add('VAEDecode', 8);
  const save = add('SaveImage', 9, { filename_prefix: 'gategraph' }, [300, 320]);
  layoutColumns([[checkpoint], [positive, negative, latent], [sampler], [decode], [save]]);
  const link = (from: EditorNode | undefined, out: number, to: EditorNode | undefined, input: string) => {
    if (!from || !to) return;
    const slot = to.findInputSlot(input);
    if (slot >= 0) from.connect(out, to, slot);
  };
  link(checkpoint, 0, sampler, 'model');
  link(positive, 0, sampler, 'positive');
  link(negative, 0, sampler, 'negative');
  link(latent, 0, sampler, 'latent_image');
  link(checkpoint, 1, positive, 'clip');
  link(checkpoint, 1, negative, 'clip');
  link(sampler, 0, decode, 'samples');
  link(checkpoint, 2, decode, 'vae');
  link(decode, 0, save, 'images');
  app.fitView();
}

/** Places nodes in left-to-right columns, each column's nodes stacked, from their actual sizes. */
function layoutColumns(columns: (EditorNode | undefined)[][]): void {
  const gap = 50;
  const title = 30;
  let x = 0;
  for (const column of columns) {
    const nodes = column.filter((n): n is EditorNode => n !== undefined);
    if (!nodes.length) continue;
    let y = title;
    for (const node of nodes) {
      node.pos = [x, y];
      y += node.size[1] + title + gap / 2;
    }
    x += Math.max(...nodes.map((n) => n.size[0])) + gap;
  }
}
