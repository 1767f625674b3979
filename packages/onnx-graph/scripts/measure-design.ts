// Measures the two designs DESIGN.md leaves open for TGATE's attn2 caching on a static graph:
//   separate: a capture session (full UNet + attn2 outputs) and a reuse session (attn2 outputs as inputs), both
//             alive, as a full + reuse configuration needs them;
//   if:       one session of an If-gated graph (buildIfGated): compute+capture when the condition is true,
//             cached pass-through when false;
//   plain:    the unmodified UNet alone, the RAM baseline of an ungated run.
// Each design runs in its own child process so peak RSS (VmHWM) is its own.
//   node --import tsx packages/onnx-graph/scripts/measure-design.ts [model.onnx] [--px 128] [--steps 3] [--no-prepack]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { buildIfGated, deriveModel, discoverUNet, ensureCacheDir, loadModel, saveModel, unetInputShapes } from '../src/index.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : fallback;
};
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--px') && !args[i - 1]?.startsWith('--steps') && !args[i - 1]?.startsWith('--child') && !args[i - 1]?.startsWith('--dir') && !args[i - 1]?.startsWith('--opt'));
const here = dirname(fileURLToPath(import.meta.url));
const modelPath = resolve(positional[0] ?? join(here, '..', '..', '..', 'models', 'tiny-sd', 'unet', 'model.onnx'));
const px = Number(flag('--px', '128'));
const steps = Number(flag('--steps', '3'));
const noPrepack = args.includes('--no-prepack');
// 'all' (ORT's default) includes the NCHWc layout transformer, which rewrites Conv weights into new (anonymous)
// buffers; 'extended' keeps them as loaded, so external weights can stay memory-mapped.
const optLevel = flag('--opt', 'all') as 'all' | 'extended' | 'basic' | 'disabled';
const workDir = resolve(flag('--dir', join(dirname(modelPath), '.gategraph-derived', 'measure')));

function memory() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { rssMB: Math.round(kb('VmRSS')), anonMB: Math.round(kb('RssAnon')), fileMB: Math.round(kb('RssFile')), peakMB: Math.round(kb('VmHWM')) };
}

function tensor(dims: number[], fill = 0.5): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37 + fill);
  return new ort.Tensor('float32', data, dims);
}

async function child(design: string) {
  const meta = JSON.parse(readFileSync(join(workDir, 'meta.json'), 'utf8')) as {
    shapes: Record<string, number[]>;
    attn2: Array<{ output: string; dims: number[] }>;
    condition: string;
  };
  const opts: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
    graphOptimizationLevel: optLevel,
    ...(noPrepack ? { extra: { session: { disable_prepacking: '1' } } } : {}),
  };
  const feedsFor = (batch: number) => {
    const f: Record<string, ort.Tensor> = {};
    for (const [name, dims] of Object.entries(meta.shapes)) f[name] = name === 'timestep' ? new ort.Tensor('float32', new Float32Array(batch).fill(500), [batch]) : tensor([batch, ...dims.slice(1)]);
    return f;
  };
  const cached = (batch: number, prefix = '') => Object.fromEntries(meta.attn2.map((a) => [`${prefix}${a.output}`, tensor([batch, ...a.dims.slice(1)], 0.1)]));
  const pick = (s: ort.InferenceSession, f: Record<string, ort.Tensor>) => Object.fromEntries(s.inputNames.map((n) => [n, f[n]!]));
  const before = memory();
  const t0 = performance.now();
  let full: () => Promise<unknown>;
  let reuse: (() => Promise<unknown>) | undefined;
  if (design === 'plain') {
    const s = await ort.InferenceSession.create(join(workDir, 'plain.onnx'), opts);
    full = () => s.run(pick(s, feedsFor(2)));
  } else if (design === 'separate') {
    const cap = await ort.InferenceSession.create(join(workDir, 'capture.onnx'), opts);
    const re = await ort.InferenceSession.create(join(workDir, 'reuse.onnx'), opts);
    full = () => cap.run(pick(cap, feedsFor(2)));
    reuse = () => re.run(pick(re, { ...feedsFor(1), ...cached(1) }));
  } else {
    const s = await ort.InferenceSession.create(join(workDir, 'if.onnx'), opts);
    const on = new ort.Tensor('bool', [true], []);
    const off = new ort.Tensor('bool', [false], []);
    // Compute steps still need every cached input fed: a batch-1 dummy of the right token/channel sizes.
    full = () => s.run(pick(s, { ...feedsFor(2), ...cached(1, 'cached::'), [meta.condition]: on }));
    reuse = () => s.run(pick(s, { ...feedsFor(1), ...cached(1, 'cached::'), [meta.condition]: off }));
  }
  const createMs = performance.now() - t0;
  const afterCreate = memory();
  const time = async (fn: () => Promise<unknown>) => {
    await fn(); // warm-up
    const ms: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await fn();
      ms.push(performance.now() - t);
    }
    return Math.round(ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)]!);
  };
  const fullMs = await time(full);
  const reuseMs = reuse ? await time(reuse) : undefined;
  console.log(JSON.stringify({ design, createMs: Math.round(createMs), fullStepMs: fullMs, reuseStepMs: reuseMs, before, afterCreate, end: memory() }));
}

async function main() {
  const childDesign = flag('--child', '');
  if (childDesign) return child(childDesign);
  ensureCacheDir(dirname(workDir));
  mkdirSync(workDir, { recursive: true });
  const file = loadModel(modelPath);
  const unet = discoverUNet(file.proto);
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2');
  const outputs = attn2.map((a) => a.output);
  const save = (m: typeof file.proto, name: string) => saveModel(m, join(workDir, name), { baseDir: file.baseDir });
  save(file.proto, 'plain.onnx');
  const capture = deriveModel(file.proto, { capture: outputs }, { baseDir: file.baseDir });
  save(capture.model, 'capture.onnx');
  save(deriveModel(file.proto, { reuse: outputs }, { baseDir: file.baseDir }).model, 'reuse.onnx');
  const gated = buildIfGated(file.proto, unet, attn2, { baseDir: file.baseDir });
  save(gated.model, 'if.onnx');
  const shapes = unetInputShapes(file.proto, { batch: 2, height: px, width: px });
  const { inferShapes } = await import('../src/shapes.ts');
  const env = inferShapes(file.proto, shapes, { baseDir: file.baseDir });
  const meta = { shapes, attn2: outputs.map((o) => ({ output: o, dims: env.get(o)!.shape })), condition: gated.condition };
  (await import('node:fs')).writeFileSync(join(workDir, 'meta.json'), JSON.stringify(meta));
  console.log(`model ${modelPath}, ${px}x${px} px, full step batch 2 (CFG), reuse step batch 1, median of ${steps}, graph optimization ${optLevel}${noPrepack ? ', prepacking disabled' : ''}`);
  for (const design of ['plain', 'separate', 'if']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), modelPath, '--child', design, '--px', String(px), '--steps', String(steps), '--dir', workDir, '--opt', optLevel, ...(noPrepack ? ['--no-prepack'] : [])], { encoding: 'utf8' });
    if (r.status !== 0) console.log(design, 'FAILED', r.stderr.slice(-2000));
    else console.log(r.stdout.trim());
  }
}

await main();
