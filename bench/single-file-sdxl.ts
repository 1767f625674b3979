/**
 * SDXL base from a single-file checkpoint at SDXL's published widths (Stability's sgm layout, float16, random weights:
 * tools/test-checkpoints' `sdxl-full`, which holds exactly the weights of tools/test-models' full-scale `sdxl` export):
 * what the first load costs, whether the graphs built from the file compute what the export computes, whether they
 * have the export's structure (MACs, the modules TGATE and DeepCache find), and what a cached load costs beside opening
 * the export. The small-width files of the tests (`sdxl-small`) cannot show the first three at SDXL's sizes.
 *
 *   node --import tsx bench/single-file-sdxl.ts [--checkpoint .gategraph/test-checkpoints-full/sdxl.safetensors]
 *        [--export .gategraph/test-models-full/sdxl] [--work .gategraph/bench-single-file-sdxl]
 *        [--latent 16] [--opens 1] [--check-tolerance 2e-2] [--no-check] [--no-open] [--keep]
 *
 * Without the checkpoint or the export the bench prints the commands that make them and exits 0.
 *
 * Each figure comes from a child process of its own, so that its peak RSS (VmHWM) is its own:
 *  1. first load: modelFolderFromCheckpoint(checkpoint, {text: 'sdxl', prediction: 'epsilon'}) into a fresh cache
 *     folder under --work: the checkpoint's sha256, then each component's build (onBuild gives the order), with the
 *     peak reset between phases (/proc/self/clear_refs); the built float32 files' sizes.
 *  2. check: text_encoder, text_encoder_2, unet, vae_decoder and vae_encoder of the built folder against the
 *     export's, each graph opened alone in a child (plain onnxruntime sessions on model.onnx as built / exported,
 *     the engine's CPU settings) on the same inputs: the ids of ("", a real prompt) from the built folder's
 *     tokenizers (the export's tokenizers must give the same ids), a seeded latent of --latent x --latent at batch 2
 *     with seeded text conditioning ([2, 77, 2048], text_embeds [2, 1280]) and SDXL time ids, a seeded latent /
 *     image for the VAE. Relative L2 error and max |diff| per output; the file's weights are float16 roundings of
 *     the export's float32 ones, so the outputs differ by that rounding, not by float32 noise: the bench fails
 *     (exit 1) only above --check-tolerance. Every output both graphs have is compared; the summary names
 *     hidden_states.11 (SDXL's conditioning from text_encoder), hidden_states.31 and text_embeds (text_encoder_2).
 *  3. structure (in this process, graphs without their weights): the module discovery TGATE and DeepCache use
 *     (attention modules, up layers, DeepCache branches) and the MACs counted from the graphs (onnx-graph countMacs
 *     through bench/plan-macs.ts) at 1024x1024: one CFG call (batch 2) and a 25-step image plain, with TGATE,
 *     DeepCache 3/0 and both (bench/tgate-sdxl.ts's plans). Built and export must agree exactly (exit 1).
 *  4. cached load: the built folder opened once (openModelFolder derives the fused-attention graphs the first
 *     time, as the engine does) and the export once, untimed for the comparison; then --opens pairs of a second
 *     modelFolderFromCheckpoint on the same cache (nothing built) + openModelFolder against openModelFolder on the
 *     export, alternating. An opened SDXL holds about 14 GB: each open waits for that much MemAvailable and is
 *     skipped (said, not failed) when the machine does not have it.
 * The run folder under --work (about 14 GB of float32 files) is deleted at the end unless --keep.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  ClipTokenizer,
  DEFAULT_SESSION_SETTINGS,
  combinePlans,
  modelFolderFromCheckpoint,
  openModelFolder,
  planDeepCache,
  planTgate,
  randn,
  type ExecutionPlan,
} from '../packages/diffusion/src/index.ts';
import { checkpointSha256 } from '../packages/onnx-graph/src/build/index.ts';
import { deepFeature, discoverUNet, loadModel, readDeclaredIo, upLayers, type DeclaredTensor } from '../packages/onnx-graph/src/index.ts';
import { CHILD_RESULT, cliOptions, compareOutputs, gbOfBytes, mb, memAvailableMB, phases, python, repoRoot, rssMB, runChildRole, sec, type Phase } from './measure.ts';
import { PlanMacCounter } from './plan-macs.ts';

// The onnxruntime-node the engine loads (a dependency of packages/diffusion, not of the repository root).
type OrtModule = typeof import('../packages/diffusion/node_modules/onnxruntime-node/dist/index.js');
type OrtTensor = InstanceType<OrtModule['Tensor']>;
type SessionOptions = import('../packages/diffusion/node_modules/onnxruntime-node/dist/index.js').InferenceSession.SessionOptions;
const ort = createRequire(join(repoRoot, 'packages', 'diffusion', 'package.json'))('onnxruntime-node') as OrtModule;

const thisFile = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const { option, positiveInt, flag } = cliOptions(args);
const usage = (message: string): never => {
  console.error(`bench/single-file-sdxl: ${message}`);
  process.exit(64);
};
const gate = join(repoRoot, '.gategraph');
const CHECKPOINT = resolve(option('checkpoint', join(gate, 'test-checkpoints-full', 'sdxl.safetensors')));
const EXPORT = resolve(option('export', join(gate, 'test-models-full', 'sdxl')));
const WORK = resolve(option('work', join(gate, 'bench-single-file-sdxl')));
const FAMILY = { text: 'sdxl', prediction: 'epsilon' } as const;
const LATENT = positiveInt('latent', '16');
const OPENS = positiveInt('opens', '1');
const TOLERANCE = Number(option('check-tolerance', '2e-2'));
if (!(TOLERANCE > 0)) usage(`--check-tolerance must be a positive number; got ${option('check-tolerance', '2e-2')}`);
if (LATENT % 4 !== 0) usage(`--latent must be a multiple of 4 (SDXL's UNet halves the latent twice); got ${LATENT}`);
const PROMPT = 'a photo of an astronaut riding a horse on mars';
const COMPONENTS = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder'] as const;
type Component = (typeof COMPONENTS)[number];

// ==== children ==================================================================================================

/** The engine's CPU session settings (sessions.ts): all cores, no spinning, full graph optimization. */
const sessionOptions = (): SessionOptions => ({
  executionProviders: ['cpu'],
  graphOptimizationLevel: DEFAULT_SESSION_SETTINGS.graphOptimizationLevel,
  intraOpNumThreads: DEFAULT_SESSION_SETTINGS.intraOpNumThreads,
  enableCpuMemArena: DEFAULT_SESSION_SETTINGS.enableCpuMemArena,
  logSeverityLevel: 3,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

/** The inputs of one component's check, the same for both graphs; their shapes follow what the export declares. */
function checkInputs(component: Component, builtDir: string): { values: Record<string, { data: Float32Array | number[]; shape: number[] }>; note: string } {
  const declared = readDeclaredIo(join(EXPORT, component, 'model.onnx'));
  const dim = (name: string, axis: number): number => {
    const d = declared.inputs.find((x) => x.name === name)?.shape[axis];
    if (typeof d !== 'number') throw new Error(`${EXPORT}/${component}: input ${name} has no fixed dim ${axis}`);
    return d;
  };
  if (component === 'text_encoder' || component === 'text_encoder_2') {
    const folder = component === 'text_encoder' ? 'tokenizer' : 'tokenizer_2';
    const built = ClipTokenizer.load(join(builtDir, folder));
    const exported = ClipTokenizer.load(join(EXPORT, folder));
    const ids = ['', PROMPT].flatMap((text) => built.encode(text).ids);
    const theirs = ['', PROMPT].flatMap((text) => exported.encode(text).ids);
    if (JSON.stringify(ids) !== JSON.stringify(theirs)) throw new Error(`${folder}: the built folder's tokenizer and the export's give different ids for ("", "${PROMPT}")`);
    return { values: { input_ids: { data: ids, shape: [2, ids.length / 2] } }, note: `ids of ("", "${PROMPT}") from ${folder}/ (the export's tokenizer gives the same ids), pad ${built.padId}` };
  }
  const l = LATENT;
  if (component === 'unet') {
    const context = dim('encoder_hidden_states', 2);
    const pooled = dim('text_embeds', 1);
    return {
      values: {
        sample: randn([2, 4, l, l], 1),
        timestep: { data: [621.5, 621.5], shape: [2] },
        encoder_hidden_states: randn([2, 77, context], 2),
        text_embeds: randn([2, pooled], 3),
        // (original h, w, crop top, left, target h, w): a square and a cropped landscape item, as a sampler sends them
        time_ids: { data: [1024, 1024, 0, 0, 1024, 1024, 832, 1216, 0, 64, 832, 1216], shape: [2, 6] },
      },
      note: `seeded latent [2, 4, ${l}, ${l}], timestep 621.5, seeded context [2, 77, ${context}] and text_embeds [2, ${pooled}], time ids of 1024x1024 and 832x1216 cropped`,
    };
  }
  if (component === 'vae_decoder') return { values: { latent_sample: randn([1, 4, l, l], 4) }, note: `seeded latent [1, 4, ${l}, ${l}] (unscaled)` };
  const image = randn([1, 3, 8 * l, 8 * l], 5);
  for (let i = 0; i < image.data.length; i++) image.data[i] = Math.max(-1, Math.min(1, image.data[i]! * 0.5));
  return { values: { sample: image }, note: `seeded image [1, 3, ${8 * l}, ${8 * l}] in [-1, 1]` };
}

/** An ort tensor of a declared input: its dtype, and a scalar where the graph declares one (the export's timestep). */
function feed(d: DeclaredTensor, v: { data: Float32Array | number[]; shape: number[] }): OrtTensor {
  const shape = d.shape.length === 0 ? [] : v.shape;
  const values = d.shape.length === 0 ? [Number(v.data[0])] : Array.from(v.data);
  switch (d.type) {
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(values.map((x) => BigInt(Math.round(x)))), shape);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(values.map((x) => Math.round(x))), shape);
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from(values), shape);
    default:
      throw new Error(`input ${d.name}: type ${d.type} is not fed by this bench`);
  }
}

async function child(role: string): Promise<unknown> {
  const cacheDir = resolve(option('cache-dir', ''));
  const rssStartMB = rssMB('self');
  if (role === 'first-load') {
    const p = phases();
    p.next('sha256');
    await checkpointSha256(CHECKPOINT, cacheDir);
    p.next('lookup');
    const order: string[] = [];
    const folder = await modelFolderFromCheckpoint(CHECKPOINT, FAMILY, {
      cacheDir,
      onBuild: (name) => {
        order.push(name);
        p.next(`build ${name}`);
        console.error(`  [first load] building ${name}`);
      },
    });
    p.next('end');
    const components = Object.fromEntries(
      Object.entries(folder.components).map(([name, c]) => [
        name,
        { dataBytes: statSync(join(c.dir, 'model.onnx_data')).size, onnxBytes: statSync(c.modelPath).size, build: c.build },
      ]),
    );
    return { rssStartMB, resettable: p.resettable, phases: p.list, order, built: folder.built, components, dir: folder.dir };
  }
  if (role === 'check') {
    // One graph: open, run once on the check's inputs, write every output to --out (raw float32) for the parent.
    const component = option('component', '') as Component;
    const graph = resolve(option('graph', ''));
    const out = resolve(option('out', ''));
    const { values } = checkInputs(component, option('built-dir', ''));
    const declared = readDeclaredIo(graph);
    const feeds: Record<string, OrtTensor> = {};
    for (const d of declared.inputs) {
      const v = values[d.name];
      if (!v) throw new Error(`${graph}: input ${d.name} is not one this bench feeds (${Object.keys(values).join(', ')})`);
      feeds[d.name] = feed(d, v);
    }
    const p = phases();
    p.next('open');
    const session = await ort.InferenceSession.create(graph, sessionOptions());
    p.next('run');
    const result = await session.run(feeds);
    p.next('end');
    mkdirSync(out, { recursive: true });
    const outputs: Record<string, number[]> = {};
    for (const [name, t] of Object.entries(result)) {
      if (!(t instanceof ort.Tensor) || t.type !== 'float32') continue;
      const data = t.data as Float32Array;
      writeFileSync(join(out, `${name}.f32`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      outputs[name] = t.dims.map(Number);
    }
    await session.release();
    return { rssStartMB, phases: p.list, outputs };
  }
  if (role === 'open') {
    // openModelFolder on --dir (the export), or on a second modelFolderFromCheckpoint's result (--cached).
    const p = phases();
    let built: string[] = [];
    let dir = option('dir', '');
    if (flag('cached')) {
      p.next('find');
      const folder = await modelFolderFromCheckpoint(CHECKPOINT, FAMILY, { cacheDir });
      built = folder.built;
      dir = folder.dir;
    }
    p.next('open');
    const model = await openModelFolder(dir);
    p.next('end');
    const fused = { unet: model.unet.path.includes('.gategraph-derived'), vae_decoder: model.vaeDecoder.path.includes('.gategraph-derived') };
    await model.release();
    return { rssStartMB, phases: p.list, built, fused, warnings: model.warnings };
  }
  throw new Error(`unknown child role ${role}`);
}

if (flag('child')) {
  try {
    const result = await child(option('child', ''));
    process.stdout.write(`${CHILD_RESULT}${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    console.error(`bench/single-file-sdxl child: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  }
}

/** Runs a child role; resolves with its result (rejects when it fails). */
const runChild = <T>(role: string, extra: string[] = []): Promise<T> => runChildRole<T>(thisFile, args, role, extra);

// ==== files =====================================================================================================
{
  const missing: string[] = [];
  const commands: string[][] = [];
  if (!existsSync(join(EXPORT, 'model_index.json')) || !existsSync(join(EXPORT, 'unet', 'model.onnx'))) {
    missing.push(EXPORT);
    // make_test_models.py writes <out>/<layout name>: the layout is `sdxl` whatever --export's folder is called.
    commands.push([python, 'tools/test-models/make_test_models.py', '--out', dirname(EXPORT), '--scale', 'full', '--only', 'sdxl']);
  }
  if (!existsSync(CHECKPOINT)) {
    missing.push(CHECKPOINT);
    // The checkpoint's weights are checked against the export while it is written, so the export comes first.
    commands.push([python, 'tools/test-checkpoints/make_checkpoints.py', '--out', dirname(CHECKPOINT), '--scale', 'full', '--only', 'sdxl-full', '--sdxl-export', EXPORT]);
  }
  if (commands.length) {
    const renamed = missing.includes(EXPORT) && basename(EXPORT) !== 'sdxl' ? ` (the export lands in ${join(dirname(EXPORT), 'sdxl')}: give that as --export)` : '';
    const named = basename(CHECKPOINT) !== 'sdxl.safetensors' && missing.includes(CHECKPOINT) ? ` (the checkpoint is written as ${join(dirname(CHECKPOINT), 'sdxl.safetensors')})` : '';
    console.log(
      `skipped: ${missing.join(', ')} missing. Make ${commands.length > 1 ? 'them' : 'it'} with\n${commands.map((c) => `  ${c.join(' ')}`).join('\n')}${renamed}${named}\n` +
        '(SDXL-size random weights: the export takes about 4 minutes, 16 GB of memory and 13 GB of disk, the checkpoint about 1.5 minutes, 10.5 GB of memory ' +
        'and 6.9 GB of disk; figures in bench/README.md and tools/test-checkpoints/README.md). The bench itself needs about 14 GB of disk under --work while it runs.',
    );
    process.exit(0);
  }
}

const [load1AtStart] = loadavg();
console.log(
  `bench/single-file-sdxl: ${new Date().toISOString()}, ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), load average ${load1AtStart!.toFixed(2)}, ` +
    `MemAvailable ${gbOfBytes(memAvailableMB() * 2 ** 20)}\n  checkpoint ${CHECKPOINT} (${gbOfBytes(statSync(CHECKPOINT).size)})\n  export     ${EXPORT}`,
);
mkdirSync(WORK, { recursive: true });
const runDir = mkdtempSync(join(WORK, 'run-'));
const cleanup = () => {
  if (!flag('keep')) rmSync(runDir, { recursive: true, force: true });
};
process.on('exit', cleanup);
const report: string[] = [];
let failed = false;
const say = (...lines: string[]) => {
  console.log(lines.join('\n'));
  report.push(...lines);
};
const fail = (message: string) => {
  console.error(`FAIL ${message}`);
  report.push(`FAIL ${message}`);
  failed = true;
};

// ==== 1. first load =============================================================================================
type ComponentInfo = { dataBytes: number; onnxBytes: number; build?: { seconds: number; dataBytes: number; convertedElements: number } };
type FirstLoad = { rssStartMB: number; resettable: boolean; phases: Phase[]; order: string[]; built: string[]; components: Record<string, ComponentInfo>; dir: string };
const cacheDir = join(runDir, 'cache');
console.log(`\n== first load: ${basename(CHECKPOINT)} into a fresh cache folder (${cacheDir})`);
const first = await runChild<FirstLoad>('first-load', ['--cache-dir', cacheDir]);
const builtDir = first.dir;
{
  const buildPhases = first.phases.filter((p) => p.name === 'sha256' || p.name.startsWith('build '));
  const peak = Math.max(...first.phases.map((p) => p.peakMB));
  const totalData = Object.values(first.components).reduce((s, c) => s + c.dataBytes, 0);
  const totalOnnx = Object.values(first.components).reduce((s, c) => s + c.onnxBytes, 0);
  say(
    `first load of ${basename(CHECKPOINT)} (${gbOfBytes(statSync(CHECKPOINT).size)}, float16), child process, fresh cache folder; peak RSS per phase` +
      `${first.resettable ? ' (reset between phases)' : ' (cumulative: this kernel does not reset VmHWM)'}, node + tsx at start ${first.rssStartMB.toFixed(0)} MB:`,
    ...buildPhases.map((p) => {
      const c = p.name.startsWith('build ') ? first.components[p.name.slice(6)] : undefined;
      const detail = c?.build
        ? `, built in ${sec(c.build.seconds)}: ${gbOfBytes(c.dataBytes)} of float32 weights (${(c.build.convertedElements / 1e6).toFixed(1)} M values converted), graph ${(c.onnxBytes / 1e6).toFixed(2)} MB`
        : '';
      return `  ${p.name.padEnd(22)} ${sec(p.seconds).padStart(8)}  peak ${p.peakMB.toFixed(0).padStart(5)} MB${detail}`;
    }),
    `  total                  ${sec(buildPhases.reduce((s, p) => s + p.seconds, 0)).padStart(8)}  peak ${peak.toFixed(0).padStart(5)} MB = ${(peak / mb(totalData)).toFixed(3)}x the float32 model ` +
      `(${gbOfBytes(totalData)} of model.onnx_data + ${(totalOnnx / 1e6).toFixed(1)} MB of graphs); order ${first.order.join(', ')}`,
  );
  if (first.built.length !== COMPONENTS.length) fail(`the first load built ${first.built.join(', ')}, not all five components`);
}

// ==== 2. check: built graphs against the export's ==============================================================
/** Outputs whose error the summary names: SDXL's conditioning (the penultimate raw states, the pooled projection). */
const NAMED: Record<Component, string[]> = {
  text_encoder: ['hidden_states.11', 'last_hidden_state', 'pooler_output'],
  text_encoder_2: ['hidden_states.31', 'text_embeds', 'last_hidden_state'],
  unet: ['out_sample'],
  vae_decoder: ['sample'],
  vae_encoder: ['latent_parameters'],
};
type CheckRun = { rssStartMB: number; phases: Phase[]; outputs: Record<string, number[]> };
if (!flag('no-check')) {
  console.log(`\n== check: the built graphs against the export's on the same inputs (tolerance ${TOLERANCE} relative L2; float16 weights in the file)`);
  for (const component of COMPONENTS) {
    const builtGraph = join(builtDir, component, 'model.onnx');
    const exportGraph = join(EXPORT, component, 'model.onnx');
    const need = (statSync(join(builtDir, component, 'model.onnx_data')).size * 1.15) / 2 ** 20 + 1024;
    if (memAvailableMB() < need) {
      say(`check ${component}: skipped: MemAvailable ${memAvailableMB().toFixed(0)} MB, one session needs about ${need.toFixed(0)} MB`);
      continue;
    }
    const runs: Record<'built' | 'export', CheckRun> = {
      built: await runChild<CheckRun>('check', ['--component', component, '--graph', builtGraph, '--out', join(runDir, 'check', 'built', component), '--built-dir', builtDir]),
      export: await runChild<CheckRun>('check', ['--component', component, '--graph', exportGraph, '--out', join(runDir, 'check', 'export', component), '--built-dir', builtDir]),
    };
    const read = (side: 'built' | 'export', name: string) => {
      const b = readFileSync(join(runDir, 'check', side, component, `${name}.f32`));
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    };
    const common = Object.keys(runs.export.outputs).filter((n) => n in runs.built.outputs);
    const missing = Object.keys(runs.export.outputs).filter((n) => !(n in runs.built.outputs));
    if (missing.length) fail(`${component}: the built graph lacks the export's outputs ${missing.join(', ')}`);
    let worst = { name: '', rel: 0 };
    const errors = new Map<string, ReturnType<typeof compareOutputs>>();
    for (const name of common) {
      if (JSON.stringify(runs.built.outputs[name]) !== JSON.stringify(runs.export.outputs[name])) {
        fail(`${component} ${name}: shape [${runs.built.outputs[name]}] built, [${runs.export.outputs[name]}] export`);
        continue;
      }
      const c = compareOutputs(read('built', name), read('export', name));
      errors.set(name, c);
      if (!(c.rel <= worst.rel)) worst = { name, rel: c.rel };
    }
    const time = (r: CheckRun, phase: string) => r.phases.find((p) => p.name === phase)!;
    const peak = (r: CheckRun) => Math.max(...r.phases.map((p) => p.peakMB));
    const fmt = (name: string) => {
      const c = errors.get(name);
      return c ? `${name} ${c.rel.toExponential(2)} (max |diff| ${c.maxDiff.toExponential(2)} of max |value| ${c.maxRef.toPrecision(3)})` : `${name} -`;
    };
    const named = NAMED[component].filter((n) => errors.has(n));
    say(
      `check ${component}: ${checkInputs(component, builtDir).note}`,
      `  relative L2, built vs export: ${named.map(fmt).join('; ')}` +
        (common.length > named.length ? `; worst of all ${common.length} outputs: ${worst.name} ${worst.rel.toExponential(2)}` : ''),
      `  open + run: built ${sec(time(runs.built, 'open').seconds)} + ${sec(time(runs.built, 'run').seconds)}, peak RSS ${peak(runs.built).toFixed(0)} MB; ` +
        `export ${sec(time(runs.export, 'open').seconds)} + ${sec(time(runs.export, 'run').seconds)}, peak RSS ${peak(runs.export).toFixed(0)} MB (plain sessions, graphs as built / exported)`,
    );
    if (!(worst.rel <= TOLERANCE)) fail(`${component}: ${worst.name} differs from the export's by ${worst.rel.toExponential(2)} relative L2 (tolerance ${TOLERANCE})`);
    rmSync(join(runDir, 'check'), { recursive: true, force: true });
  }
}

// ==== 3. structure: module discovery and MACs ==================================================================
{
  console.log('\n== structure: module discovery and MACs from the graphs (1024x1024)');
  const STEPS = 25;
  // bench/tgate-sdxl.ts's configurations: plain, TGATE v2's SDXL defaults, DeepCache 3/0, T-GATE's combination.
  const plans: Array<[string, ExecutionPlan]> = [
    ['plain', planTgate({ steps: STEPS, gateStep: STEPS })],
    ['TGATE', planTgate({ steps: STEPS, gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2, cacheSelfAttn: true })],
    ['DeepCache 3/0', planDeepCache({ steps: STEPS, cacheInterval: 3, cacheBranchId: 0 })],
    [
      'TGATE + DeepCache',
      combinePlans(planTgate({ steps: STEPS, gateStep: 10, spInterval: 1, warmUp: 0, cacheSelfAttn: false }), planDeepCache({ steps: STEPS, cacheInterval: 3, cacheBranchId: 0 })),
    ],
  ];
  const T = (n: number) => `${(n / 1e12).toFixed(3)}T`;
  const structureOf = (unetDir: string) => {
    const file = loadModel(join(unetDir, 'model.onnx'));
    const s = discoverUNet(file.proto);
    const counter = new PlanMacCounter(file, s);
    const layers = upLayers(s);
    const branches = Array.from({ length: layers.length - 1 }, (_, k) => {
      const f = deepFeature(s, k);
      return `${k}: ${f.shallowLayers.map((l) => l.resnet).join(' ')}`;
    });
    const call = counter.macsOf('', { batch: 2, height: 1024, width: 1024 });
    return {
      nodes: file.proto.graph!.node.length,
      attention: s.attention.map((a) => `${a.kind} ${a.path}`).sort(),
      layers: layers.map((l) => `${l.resnet} ${l.attention ?? '-'}`),
      branches,
      call,
      plans: plans.map(([name, plan]) => [name, counter.planMacs(plan, { height: 1024, width: 1024 })] as const),
    };
  };
  const b = structureOf(join(builtDir, 'unet'));
  const e = structureOf(join(EXPORT, 'unet'));
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  const kinds = (list: string[]) => `${list.filter((a) => a.startsWith('attn1')).length} attn1 + ${list.filter((a) => a.startsWith('attn2')).length} attn2`;
  say(
    `structure: built UNet ${b.nodes} nodes, export ${e.nodes}; attention modules: built ${kinds(b.attention)}, export ${kinds(e.attention)} (${same(b.attention, e.attention) ? 'the same paths' : 'DIFFERENT paths'}); ` +
      `up layers ${b.layers.length} / ${e.layers.length} (${same(b.layers, e.layers) ? 'the same' : 'DIFFERENT'}); DeepCache branches 0..${b.branches.length - 1} / 0..${e.branches.length - 1} ` +
      `(${same(b.branches, e.branches) ? 'the same up layers run on every branch' : 'DIFFERENT'})`,
    `  MACs of one CFG call (batch 2) at 1024x1024: conv/linear built ${T(b.call.weight)} / export ${T(e.call.weight)}; with the attention products ${T(b.call.total)} / ${T(e.call.total)}`,
    ...b.plans.map(([name, m], i) => {
      const x = e.plans[i]![1];
      return `  ${name.padEnd(18)} 25 steps, CFG, per image: conv/linear built ${T(m.weight)} / export ${T(x.weight)}; with attention products ${T(m.total)} / ${T(x.total)} (${m.cfgSteps} CFG + ${m.singleSteps} single steps)`;
    }),
  );
  if (!same(b.attention, e.attention)) fail('the attention modules discovered in the built UNet are not the export\'s');
  if (!same(b.layers, e.layers) || !same(b.branches, e.branches)) fail('the up layers / DeepCache branches of the built UNet are not the export\'s');
  if (!same(b.call, e.call) || !same(b.plans, e.plans)) fail('the MAC counts of the built UNet differ from the export\'s');
}

// ==== 4. cached load vs opening the export =====================================================================
type OpenRun = { rssStartMB: number; phases: Phase[]; built: string[]; fused: Record<string, boolean>; warnings: string[] };
if (!flag('no-open')) {
  const modelBytes = Object.values(first.components).reduce((s, c) => s + c.dataBytes, 0);
  const need = (modelBytes * 1.1) / 2 ** 20 + 1024;
  const phase = (r: OpenRun, name: string) => r.phases.find((p) => p.name === name)?.seconds ?? 0;
  const peak = (r: OpenRun) => Math.max(...r.phases.map((p) => p.peakMB));
  /** One open in a child, when the machine has the memory for it. */
  const open = async (what: 'built' | 'cached' | 'export'): Promise<OpenRun | undefined> => {
    if (memAvailableMB() < need) {
      say(`  ${what} open skipped: MemAvailable ${memAvailableMB().toFixed(0)} MB, an opened SDXL needs about ${need.toFixed(0)} MB`);
      return undefined;
    }
    const extra = what === 'cached' ? ['--cached', '--cache-dir', cacheDir] : ['--dir', what === 'built' ? builtDir : EXPORT];
    return runChild<OpenRun>('open', extra);
  };
  console.log(`\n== cached load vs opening the export (${OPENS} alternating pair${OPENS > 1 ? 's' : ''}, after one open of each)`);
  const primeBuilt = await open('built');
  const primeExport = await open('export');
  if (primeBuilt && primeExport) {
    say(
      `first opens (openModelFolder; attention-fused graphs derived where missing): built folder ${sec(phase(primeBuilt, 'open'))}, peak RSS ${peak(primeBuilt).toFixed(0)} MB (fused: unet ${primeBuilt.fused.unet}, vae_decoder ${primeBuilt.fused.vae_decoder}); ` +
        `export ${sec(phase(primeExport, 'open'))}, peak RSS ${peak(primeExport).toFixed(0)} MB (fused: unet ${primeExport.fused.unet}, vae_decoder ${primeExport.fused.vae_decoder})`,
    );
    const cached: OpenRun[] = [];
    const exported: OpenRun[] = [];
    for (let i = 0; i < OPENS; i++) {
      for (const which of i % 2 ? (['export', 'cached'] as const) : (['cached', 'export'] as const)) {
        const r = await open(which);
        if (!r) continue;
        if (which === 'cached') {
          if (r.built.length) fail(`the cached load built ${r.built.join(', ')} again`);
          cached.push(r);
          console.log(`  cached load: find ${sec(phase(r, 'find'))} + open ${sec(phase(r, 'open'))}, peak ${peak(r).toFixed(0)} MB`);
        } else {
          exported.push(r);
          console.log(`  export open: ${sec(phase(r, 'open'))}, peak ${peak(r).toFixed(0)} MB`);
        }
      }
    }
    if (cached.length && exported.length) {
      const med = (xs: number[]) => [...xs].sort((a, c) => a - c)[xs.length >> 1]!;
      const find = med(cached.map((r) => phase(r, 'find')));
      const openS = med(cached.map((r) => phase(r, 'open')));
      const total = med(cached.map((r) => phase(r, 'find') + phase(r, 'open')));
      const exportS = med(exported.map((r) => phase(r, 'open')));
      say(
        `cached load (${cached.length === 1 ? 'one run' : `median of ${cached.length}`}, child processes): modelFolderFromCheckpoint ${sec(find)} (nothing built) + openModelFolder ${sec(openS)} = ${sec(total)}; ` +
          `openModelFolder on the export ${sec(exportS)}: cached / export ${(total / exportS).toFixed(2)}x; peak RSS ${med(cached.map(peak)).toFixed(0)} MB vs ${med(exported.map(peak)).toFixed(0)} MB`,
      );
    }
  }
}

say(`load average at the end ${loadavg()[0]!.toFixed(2)} (at the start ${load1AtStart!.toFixed(2)}); MemAvailable ${gbOfBytes(memAvailableMB() * 2 ** 20)}`);
console.log(`\n==== summary ====\n${report.join('\n')}`);
if (flag('keep')) console.log(`kept: ${runDir}`);
process.exit(failed ? 1 : 0);
