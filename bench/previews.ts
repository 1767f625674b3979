/**
 * What the live latent previews cost the sampler: the default workflow's sampling (embedded model, 25 steps,
 * ddim, cfg 6) run without previews, with a preview every step, and paced as KSampler paces them (at most one
 * per PREVIEW_INTERVAL_MS), in alternating rounds. A preview is what KSampler sends: the model's clean-latent
 * estimate -> latent-to-RGB map -> PNG at latent resolution -> a binary websocket frame to a real client on
 * loopback. Prints the median time per image for each, the ratios, and a preview's own cost. Exits 1 if a
 * preview frame is not a PNG of the latent's size or frames went missing.
 *
 *   node --import tsx bench/previews.ts [--runs 9]
 *
 * The embedded model is the worst case: its UNet step takes milliseconds, so a fixed per-step cost weighs most;
 * on SD-size models a step takes seconds and the same preview (64x64 from a 64x64 latent) costs the same.
 */
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import {
  decodePng,
  encodePng,
  encodePrompt,
  latentPreviewRgb,
  openModelFolder,
  previewMapFor,
  randn,
  sample,
  schedulerForKSampler,
  zeros,
  OnnxUnetRunner,
} from '../packages/diffusion/src/index.ts';
import { previewPacer } from '../packages/nodes-tgate/src/index.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const at = args.indexOf('--runs');
const RUNS = at >= 0 ? Number(args[at + 1]) : 9;
const modelDir = resolve(process.env.GATEGRAPH_TEST_MODEL ?? join(repoRoot, 'models', 'tiny-sd'));

const model = await openModelFolder(modelDir);
const map = await previewMapFor(model);
const positive = (await encodePrompt(model, 'a large red circle at the top left on a gray background')).hiddenStates;
const negative = (await encodePrompt(model, '')).hiddenStates;
const [h, w] = model.io.unet.fixedLatentSize ?? [16, 16];
const shape = [1, model.io.unet.latentChannels, h, w];

// A real websocket pair on loopback: the server side sends what the server's hub sends, the client counts frames.
const http = createServer();
const wss = new WebSocketServer({ server: http });
await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
const port = (http.address() as { port: number }).port;
const serverSide = new Promise<WebSocket>((r) => wss.once('connection', r));
const client = new WebSocket(`ws://127.0.0.1:${port}`);
await new Promise((r) => client.once('open', r));
const socket = await serverSide;
let frames = 0;
let badFrame = '';
client.on('message', (data: Buffer) => {
  frames++;
  const png = decodePng(new Uint8Array(data.subarray(8)));
  if (png.width !== w || png.height !== h) badFrame = `a preview frame is ${png.width}x${png.height}, expected ${w}x${h}`;
});

type Mode = 'off' | 'every step' | 'paced';
const previewMs: Record<Mode, number> = { off: 0, 'every step': 0, paced: 0 };
const builtBy: Record<Mode, number> = { off: 0, 'every step': 0, paced: 0 };
let built = 0;
async function run(mode: Mode, seed: number): Promise<number> {
  const due = mode === 'paced' ? previewPacer() : () => true;
  const previews = mode !== 'off';
  const started = performance.now();
  await sample({
    unet: OnnxUnetRunner.forModel(model),
    scheduler: schedulerForKSampler({ sampler_name: 'ddim', scheduler: 'normal', steps: 25 }, model.schedulerConfig),
    positive,
    negative,
    cfg: 6,
    latent: zeros(shape),
    noise: randn(shape, seed),
    previews,
    onProgress(_step, _total, preview) {
      if (!preview || !due()) return;
      const t = performance.now();
      built++;
      const png = encodePng(latentPreviewRgb(preview, map));
      const frame = Buffer.alloc(8 + png.length);
      frame.writeUInt32BE(1, 0); // ComfyUI's binary event: preview image
      frame.writeUInt32BE(2, 4); // format: PNG
      frame.set(png, 8);
      socket.send(frame);
      previewMs[mode] += performance.now() - t;
      builtBy[mode]++;
    },
  });
  return performance.now() - started;
}

await run('off', 1);
await run('every step', 1);
await new Promise((r) => setTimeout(r, 200)); // the warm-up's frames arrive before counting starts
for (const m of Object.keys(previewMs) as Mode[]) {
  previewMs[m] = 0;
  builtBy[m] = 0;
}
built = 0;
frames = 0;
const MODES: Mode[] = ['off', 'every step', 'paced'];
const times: Record<Mode, number[]> = { off: [], 'every step': [], paced: [] };
for (let r = 0; r < RUNS; r++) {
  for (let k = 0; k < MODES.length; k++) {
    const mode = MODES[(k + r) % MODES.length]!;
    times[mode].push(await run(mode, 100 + r));
  }
}
await new Promise((r) => setTimeout(r, 200)); // let the last frames arrive
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const off = median(times.off);
const perPreview = (previewMs['every step'] + previewMs.paced) / (builtBy['every step'] + builtBy.paced);
console.log(`previews on ${modelDir}: 25 steps ddim cfg 6, ${RUNS} alternating rounds; one preview costs ${(perPreview * 1000).toFixed(0)} us to build and send`);
console.log('  mode        time / image   vs off   previews / image   preview work / image (share of the time)');
for (const mode of MODES) {
  const m = median(times[mode]);
  const per = builtBy[mode] / RUNS;
  const work = previewMs[mode] / RUNS;
  console.log(`  ${mode.padEnd(10)} ${m.toFixed(1).padStart(8)} ms   x${(m / off).toFixed(3)}   ${per.toFixed(1).padStart(8)}          ${work.toFixed(1).padStart(5)} ms (${((100 * work) / m).toFixed(1)} %)`);
}
console.log('  (the time columns carry the machine\'s noise; the last column is measured around the preview code itself)');
client.close();
wss.close();
http.close();
await model.release();
if (badFrame || frames !== built) {
  console.error(`FAIL: ${badFrame || `${frames} preview frames arrived, ${built} were sent`}`);
  process.exit(1);
}
