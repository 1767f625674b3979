/**
 * Writes workflows/examples/*.json: ComfyUI's classic SD-1.x example graphs (hires fix, inpainting, outpainting,
 * area composition, noisy latent composition, LoRA, textual inversion, SamplerCustomAdvanced) in ComfyUI's UI
 * format, from the API-format graphs below. Widget values are laid out by our node definitions (the order the
 * editor and ComfyUI use), nodes placed in columns by their depth in the graph.
 *
 *   node --import tsx tools/examples/build-examples.ts
 *
 * The checkpoint is ComfyUI's usual v1-5-pruned-emaonly.safetensors; the input files, LoRA and embedding are
 * named in each example's note. The tests (packages/nodes-tgate/test/example-workflows.test.ts) run every file
 * on a small SD-1.5-shaped checkpoint, plain and with TGATE + DeepCache on its MODEL.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPacks, NodeRegistry, widgetLayout, type ApiPrompt } from '@gategraph/core';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CKPT = 'v1-5-pruned-emaonly.safetensors';
const NEGATIVE = 'text, watermark, blurry, low quality';

type Inputs = Record<string, unknown>;
type Node = { class_type: string; inputs: Inputs; _meta?: { title: string } };
interface Example {
  file: string;
  /** Shown as a Note node beside the graph: what it does and what it needs. */
  note: string;
  prompt: Record<string, Node>;
}

const loader = (): Record<string, Node> => ({ '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: CKPT } } });
const encode = (id: string, text: string, clip: [string, number] = ['4', 1], title?: string): Record<string, Node> => ({
  [id]: { class_type: 'CLIPTextEncode', inputs: { text, clip }, ...(title ? { _meta: { title } } : {}) },
});
const ksampler = (inputs: Inputs): Node => ({
  class_type: 'KSampler',
  inputs: { seed: 156680208700286, steps: 20, cfg: 8, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], ...inputs },
});
const output = (samples: [string, number], prefix: string, vae: [string, number] = ['4', 2]): Record<string, Node> => ({
  '8': { class_type: 'VAEDecode', inputs: { samples, vae } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: prefix, images: ['8', 0] } },
});

const EXAMPLES: Example[] = [
  {
    file: 'hires-fix-latent.json',
    note: 'Hires fix in latent space: a 512x512 image, its latent upscaled to 768x768, then resampled at denoise 0.5 so the detail fits the new size.',
    prompt: {
      ...loader(),
      ...encode('6', 'a cozy cabin in a snowy forest at dusk, warm light in the windows, detailed'),
      ...encode('7', NEGATIVE),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '3': ksampler({ latent_image: ['5', 0] }),
      '10': { class_type: 'LatentUpscale', inputs: { upscale_method: 'nearest-exact', width: 768, height: 768, crop: 'disabled', samples: ['3', 0] } },
      '11': ksampler({ steps: 14, sampler_name: 'dpmpp_2m', scheduler: 'karras', denoise: 0.5, latent_image: ['10', 0] }),
      ...output(['11', 0], 'hires-latent'),
    },
  },
  {
    file: 'hires-fix-image.json',
    note: 'Hires fix in pixel space: the first image decoded, scaled 1.5x with Lanczos, encoded again and resampled at denoise 0.5.',
    prompt: {
      ...loader(),
      ...encode('6', 'a lighthouse on a rocky coast under a stormy sky, waves crashing'),
      ...encode('7', NEGATIVE),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '3': ksampler({ latent_image: ['5', 0] }),
      '12': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
      '13': { class_type: 'ImageScaleBy', inputs: { upscale_method: 'lanczos', scale_by: 1.5, image: ['12', 0] } },
      '14': { class_type: 'VAEEncode', inputs: { pixels: ['13', 0], vae: ['4', 2] } },
      '11': ksampler({ steps: 14, denoise: 0.5, latent_image: ['14', 0] }),
      ...output(['11', 0], 'hires-image'),
    },
  },
  {
    file: 'inpaint.json',
    note: 'Inpainting: the transparent part of input/inpaint-source.png (an image with an alpha mask, e.g. painted in the mask editor) is repainted to the prompt.',
    prompt: {
      ...loader(),
      ...encode('6', 'a small red fox sitting on the grass'),
      ...encode('7', NEGATIVE),
      '10': { class_type: 'LoadImage', inputs: { image: 'inpaint-source.png' } },
      '11': { class_type: 'VAEEncodeForInpaint', inputs: { grow_mask_by: 6, pixels: ['10', 0], vae: ['4', 2], mask: ['10', 1] } },
      '3': ksampler({ latent_image: ['11', 0] }),
      ...output(['3', 0], 'inpaint'),
    },
  },
  {
    file: 'outpaint.json',
    note: 'Outpainting: input/outpaint-source.png padded by 128 pixels above and below, and the new border painted to match.',
    prompt: {
      ...loader(),
      ...encode('6', 'a wide mountain valley with a river, clear sky'),
      ...encode('7', NEGATIVE),
      '10': { class_type: 'LoadImage', inputs: { image: 'outpaint-source.png' } },
      '12': { class_type: 'ImagePadForOutpaint', inputs: { left: 0, top: 128, right: 0, bottom: 128, feathering: 40, image: ['10', 0] } },
      '11': { class_type: 'VAEEncodeForInpaint', inputs: { grow_mask_by: 8, pixels: ['12', 0], vae: ['4', 2], mask: ['12', 1] } },
      '3': ksampler({ latent_image: ['11', 0] }),
      ...output(['3', 0], 'outpaint'),
    },
  },
  {
    file: 'area-composition.json',
    note: 'Area composition: a background prompt for the whole image, and two prompts limited to its left and right halves (ConditioningSetArea), combined.',
    prompt: {
      ...loader(),
      ...encode('6', 'a sunny meadow with distant hills', ['4', 1], 'Background'),
      ...encode('7', NEGATIVE),
      ...encode('20', 'a tall oak tree', ['4', 1], 'Left half'),
      ...encode('21', 'a wooden farmhouse', ['4', 1], 'Right half'),
      '22': { class_type: 'ConditioningSetArea', inputs: { width: 256, height: 512, x: 0, y: 0, strength: 1.2, conditioning: ['20', 0] } },
      '23': { class_type: 'ConditioningSetArea', inputs: { width: 256, height: 512, x: 256, y: 0, strength: 1.2, conditioning: ['21', 0] } },
      '24': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['22', 0] } },
      '25': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['24', 0], conditioning_2: ['23', 0] } },
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '3': ksampler({ positive: ['25', 0], latent_image: ['5', 0] }),
      ...output(['3', 0], 'area-composition'),
    },
  },
  {
    file: 'noisy-latent-composition.json',
    note: 'Noisy latent composition: a background and a subject sampled part-way (leftover noise kept), the subject pasted into the background, and the rest of the steps run on the composite.',
    prompt: {
      ...loader(),
      ...encode('6', 'a calm lake surrounded by pine trees', ['4', 1], 'Background'),
      ...encode('7', NEGATIVE),
      ...encode('20', 'a red canoe', ['4', 1], 'Subject'),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '21': { class_type: 'EmptyLatentImage', inputs: { width: 256, height: 256, batch_size: 1 } },
      '22': {
        class_type: 'KSamplerAdvanced',
        inputs: { add_noise: 'enable', noise_seed: 7, steps: 20, cfg: 8, sampler_name: 'euler', scheduler: 'normal', start_at_step: 0, end_at_step: 12, return_with_leftover_noise: 'enable', model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] },
      },
      '23': {
        class_type: 'KSamplerAdvanced',
        inputs: { add_noise: 'enable', noise_seed: 8, steps: 20, cfg: 8, sampler_name: 'euler', scheduler: 'normal', start_at_step: 0, end_at_step: 12, return_with_leftover_noise: 'enable', model: ['4', 0], positive: ['20', 0], negative: ['7', 0], latent_image: ['21', 0] },
      },
      '24': { class_type: 'LatentComposite', inputs: { x: 128, y: 192, feather: 16, samples_to: ['22', 0], samples_from: ['23', 0] } },
      '3': {
        class_type: 'KSamplerAdvanced',
        inputs: { add_noise: 'disable', noise_seed: 7, steps: 20, cfg: 8, sampler_name: 'euler', scheduler: 'normal', start_at_step: 12, end_at_step: 10000, return_with_leftover_noise: 'disable', model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['24', 0] },
      },
      ...output(['3', 0], 'noisy-latent-composition'),
    },
  },
  {
    file: 'lora.json',
    note: 'A LoRA (models/loras/example-lora.safetensors) applied to both the model and its text encoder.',
    prompt: {
      ...loader(),
      '10': { class_type: 'LoraLoader', inputs: { lora_name: 'example-lora.safetensors', strength_model: 1, strength_clip: 1, model: ['4', 0], clip: ['4', 1] } },
      ...encode('6', 'a watercolor painting of a harbour town', ['10', 1]),
      ...encode('7', NEGATIVE, ['10', 1]),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '3': ksampler({ model: ['10', 0], latent_image: ['5', 0] }),
      ...output(['3', 0], 'lora'),
    },
  },
  {
    file: 'textual-inversion.json',
    note: 'Textual inversion: embedding:example-embedding in the prompt reads models/embeddings/example-embedding.safetensors (weights work as for words).',
    prompt: {
      ...loader(),
      ...encode('6', 'a portrait in the style of (embedding:example-embedding:1.1), soft light'),
      ...encode('7', NEGATIVE),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '3': ksampler({ latent_image: ['5', 0] }),
      ...output(['3', 0], 'textual-inversion'),
    },
  },
  {
    file: 'sampler-custom-advanced.json',
    note: 'Custom sampling: noise, guidance, sampler and noise levels as separate nodes (RandomNoise, CFGGuider, KSamplerSelect, BasicScheduler) joined by SamplerCustomAdvanced.',
    prompt: {
      ...loader(),
      ...encode('6', 'an old stone bridge over a stream in autumn'),
      ...encode('7', NEGATIVE),
      '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '10': { class_type: 'RandomNoise', inputs: { noise_seed: 42 } },
      '11': { class_type: 'CFGGuider', inputs: { cfg: 7, model: ['4', 0], positive: ['6', 0], negative: ['7', 0] } },
      '12': { class_type: 'KSamplerSelect', inputs: { sampler_name: 'dpmpp_2m_sde' } },
      '13': { class_type: 'BasicScheduler', inputs: { scheduler: 'karras', steps: 20, denoise: 1, model: ['4', 0] } },
      '3': { class_type: 'SamplerCustomAdvanced', inputs: { noise: ['10', 0], guider: ['11', 0], sampler: ['12', 0], sigmas: ['13', 0], latent_image: ['5', 0] } },
      ...output(['3', 0], 'sampler-custom-advanced'),
    },
  },
];

const isLink = (v: unknown): v is [string, number] => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'number';

/** The API graph as a ComfyUI UI workflow (version 0.4), with a Note node carrying the example's note. */
function toUi(example: Example, registry: NodeRegistry): Record<string, unknown> {
  const prompt = example.prompt;
  const ids = Object.keys(prompt);
  // Column = longest path from a node without inputs: the graph reads left to right.
  const depth = new Map<string, number>();
  const depthOf = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    const sources = Object.values(prompt[id]!.inputs).filter(isLink).map((l) => depthOf(l[0]));
    const d = sources.length ? Math.max(...sources) + 1 : 0;
    depth.set(id, d);
    return d;
  };
  ids.forEach(depthOf);
  const rows = new Map<number, number>();
  const links: unknown[][] = [];
  const nodes = ids.map((id) => {
    const node = prompt[id]!;
    const definition = registry.get(node.class_type);
    if (!definition) throw new Error(`${example.file}: no node class ${node.class_type}`);
    const column = depth.get(id)!;
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    const inputs = Object.entries(definition.inputs)
      .filter(([, spec]) => spec.kind === 'SOCKET')
      .map(([name, spec]) => ({ name, type: (spec as { type: string }).type, link: null as number | null }));
    const widgets: unknown[] = [];
    for (const slot of widgetLayout(definition)) {
      const value = node.inputs[slot.name];
      if (value === undefined) throw new Error(`${example.file}: node ${id} (${node.class_type}) has no value for ${slot.name}`);
      widgets.push(value);
      if (slot.extraValues >= 1) widgets.push('fixed');
      if (slot.extraValues >= 2) widgets.push('');
    }
    return {
      id: Number(id),
      type: node.class_type,
      pos: [40 + column * 380, 40 + row * 260],
      size: [340, 200],
      flags: {},
      order: 0,
      mode: 0,
      inputs,
      outputs: definition.outputs.map((o: { type: string; name?: string }, slot: number) => ({ name: o.name ?? o.type, type: o.type, links: [] as number[], slot_index: slot })),
      properties: { 'Node name for S&R': node.class_type },
      widgets_values: widgets,
      ...(node._meta ? { title: node._meta.title } : {}),
    };
  });
  const byId = new Map(nodes.map((n) => [String(n.id), n]));
  for (const id of ids) {
    for (const [name, value] of Object.entries(prompt[id]!.inputs)) {
      if (!isLink(value)) continue;
      const from = byId.get(value[0])!;
      const to = byId.get(id)!;
      const input = to.inputs.find((i) => i.name === name);
      if (!input) throw new Error(`${example.file}: node ${id} has no socket ${name}`);
      const linkId = links.length + 1;
      input.link = linkId;
      from.outputs[value[1]]!.links.push(linkId);
      links.push([linkId, from.id, value[1], to.id, to.inputs.indexOf(input), from.outputs[value[1]]!.type]);
    }
  }
  // Execution order as the editor saves it: by column.
  [...nodes].sort((a, b) => depth.get(String(a.id))! - depth.get(String(b.id))! || a.id - b.id).forEach((n, k) => (n.order = k));
  const noteId = Math.max(...nodes.map((n) => n.id)) + 1;
  nodes.push({
    id: noteId,
    type: 'Note',
    pos: [40, 40 + (rows.get(0) ?? 1) * 260],
    size: [340, 120],
    flags: {},
    order: nodes.length,
    mode: 0,
    inputs: [],
    outputs: [],
    properties: { 'Node name for S&R': 'Note' },
    widgets_values: [example.note],
  } as (typeof nodes)[number]);
  return {
    last_node_id: noteId,
    last_link_id: links.length,
    nodes,
    links,
    groups: [],
    config: {},
    extra: { ds: { scale: 0.8, offset: [0, 0] } },
    version: 0.4,
  };
}

const registry = new NodeRegistry();
const report = await loadPacks({ packages: [join(root, 'packages', 'nodes-tgate')], registry });
if (report.failed.length) throw new Error(`the node pack did not load: ${JSON.stringify(report.failed)}`);
const folder = join(root, 'workflows', 'examples');
mkdirSync(folder, { recursive: true });
for (const example of EXAMPLES) {
  writeFileSync(join(folder, example.file), `${JSON.stringify(toUi(example, registry), null, 2)}\n`);
  console.log(`wrote workflows/examples/${example.file}`);
}
export type { ApiPrompt };
