/**
 * Which sampler / scheduler / cfg gives the best images on a model of the tiny-sd domain? Runs the default
 * workflow's graph through this pack (validation + executor, as the server does) for each combination on the
 * same captions and seeds, scores every image with the pixel judge (packages/judge) and prints a table.
 *
 *   node --import tsx packages/nodes-tgate/src/scripts/compare-samplers.ts [--model models/tiny-sd] [--images 48]
 *        [--steps 25] [--combos ddim/normal/6,dpmpp_2m/karras/6,...]
 *
 * Not imported by the pack; it lives in src/ so the type checker covers it.
 */
import { mkdtempSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Executor, loadPacks, NodeRegistry, silentLogger, validatePrompt, type ApiPrompt, type HostPaths } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { formatCaption, judge, loadDomain, rng, sampleScene, tally, type Verdict } from '@gategraph/judge';
import { readFileSync } from 'node:fs';

const repoRoot = resolve(fileURLToPath(new URL('../../../..', import.meta.url)));
const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};

const modelDir = resolve(option('model', join(repoRoot, 'models', 'tiny-sd')));
const count = Number(option('images', '48'));
const steps = Number(option('steps', '25'));
const combos = option('combos', 'ddim/normal/6,dpmpp_2m/karras/6,euler/normal/6,euler_ancestral/normal/6,dpmpp_2m/normal/6,ddim/normal/4,ddim/normal/8')
  .split(',')
  .map((c) => {
    const [sampler, scheduler, cfg] = c.split('/');
    return { sampler: sampler!, scheduler: scheduler!, cfg: Number(cfg) };
  });

const dir = mkdtempSync(join(tmpdir(), 'compare-samplers-'));
const paths: HostPaths = { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(dir, 'models') };
for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
symlinkSync(modelDir, join(paths.models, 'model'), 'dir');
process.env.GATEGRAPH_MODELS = paths.models;

const registry = new NodeRegistry();
await loadPacks({ packages: [join(repoRoot, 'packages', 'nodes-tgate')], registry });
const executor = new Executor(registry, { paths, logger: silentLogger });
const domain = loadDomain(join(modelDir, 'domain.json'));
const random = rng(1234);
const captions = Array.from({ length: count }, () => formatCaption(sampleScene(domain, random).caption, domain));

function graph(caption: string, seed: number, combo: (typeof combos)[number]): ApiPrompt {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'model' } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: domain.image_size, height: domain.image_size, batch_size: 1 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: caption, clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['4', 1] } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        model: ['4', 0], seed, steps, cfg: combo.cfg, sampler_name: combo.sampler, scheduler: combo.scheduler,
        positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1,
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: `${combo.sampler}-${combo.scheduler}-${combo.cfg}/img` } },
  };
}

console.log(`${modelDir}: ${count} captions x ${combos.length} settings, ${steps} steps; images in ${paths.output}`);
console.log('sampler/scheduler/cfg          overall  all-right  ms/image');
for (const combo of combos) {
  const verdicts: Verdict[] = [];
  const started = performance.now();
  for (const [i, caption] of captions.entries()) {
    const validation = await validatePrompt(graph(caption, 1000 + i, combo), registry);
    if (!validation.ok) throw new Error(JSON.stringify(validation.nodeErrors));
    const result = await executor.run(validation.prompt, { promptId: `${i}`, outputs: validation.outputs });
    if (result.status !== 'success') throw new Error(result.error?.message);
    const file = (result.outputs['9']!.images as { filename: string; subfolder: string }[])[0]!;
    const png = decodePng(readFileSync(join(paths.output, file.subfolder, file.filename)));
    verdicts.push(judge(caption, { width: png.width, height: png.height, data: png.data }, domain));
  }
  const t = tally(verdicts);
  const label = `${combo.sampler}/${combo.scheduler}/${combo.cfg}`.padEnd(30);
  const ms = ((performance.now() - started) / count).toFixed(0);
  console.log(`${label} ${(100 * t.overall.accuracy).toFixed(1).padStart(6)} %  ${(100 * t.allAttributesCorrect).toFixed(1).padStart(6)} %  ${ms.padStart(8)}`);
}
