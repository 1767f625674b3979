/**
 * SD-1.5 from a single-file checkpoint (ComfyUI's models/checkpoints/*.safetensors, LDM key layout): what the first
 * load (graphs built and weights converted in TypeScript) costs in time and memory, what a cached load costs beside
 * opening an ONNX export, and whether the built UNet runs a step as fast as an export of the same weights and at
 * least 2x faster than eager PyTorch.
 *
 *   node --import tsx bench/single-file.ts [--size 512] [--runs 3] [--batches 2,1] [--threads T] [--opens 2]
 *        [--checkpoint .gategraph/test-checkpoints-full/sd15-fp16.safetensors]
 *        [--step-checkpoint .gategraph/test-checkpoints-full/sd15.safetensors]
 *        [--export .gategraph/test-models-full/sd15-optimum] [--work .gategraph/bench-single-file]
 *        [--no-torch] [--no-load] [--no-step] [--make] [--keep] [--check-tolerance 1e-3]
 *
 * Files: random-weight SD-1.5 files from tools/test-checkpoints (float16 and float32 checkpoints) and the
 * optimum-layout export of the same weights from tools/test-models; without them the bench prints the commands
 * that make them and exits 0, or with --make runs them first.
 *
 * Load (each figure from a child process of its own, so that its peak RSS, VmHWM, is its own):
 *  1. first load: modelFolderFromCheckpoint on --checkpoint (the float16 file by default) into a fresh cache
 *     folder: the checkpoint's sha256 (remembered afterwards), then the four components one at a time (onBuild
 *     gives the order), then openModelFolder on the result (deriving the fused-attention graphs and opening the four
 *     sessions, as the engine does the first time). Time and peak RSS per phase: the peak is reset between phases
 *     (/proc/self/clear_refs), so each phase's peak includes only what the earlier ones left resident.
 *  2. the UNet alone (unetFromCheckpoint into another fresh folder): its build time and peak RSS, against the UNet's
 *     own float32 size.
 *  3. cached load: modelFolderFromCheckpoint on the same cache folder (nothing built: hashes of the small files) +
 *     openModelFolder; alternated with openModelFolder on the export (--opens pairs, after one untimed open of the
 *     export in case its fused graphs were never derived). Both read files the page cache holds.
 * The fp32 model size is the four components' model.onnx_data as built (the UNet's alone for the UNet figure).
 *
 * Step: one UNet call at --size px (latent size/8), batch 2 (one CFG step) and batch 1, three engines alternating:
 *  - built: the UNet built from --step-checkpoint (the float32 file, default: its weights are the export's byte for
 *    byte; the float16 file's are those rounded, which would make the outputs differ by the rounding) into a
 *    persistent cache (<work>/step-cache, built once), opened with openUnet as the engine opens it (attention fused);
 *    when the load part ran, the bench checks that its graph is the float16 build's node for node (the builder
 *    emits the same graph for both: every weight is converted to float32), so its timing is the float16 file's too;
 *  - export: <export>/unet opened the same way (also fused);
 *  - torch: bench/sd15_torch.py --checkpoint (eager, float32, the weights loaded from --step-checkpoint and checked
 *    byte for byte against the export's initializers: the claim that the test checkpoints hold test-models' weights).
 * Both onnxruntime sessions live in this process (same SessionPool, engine defaults: all cores unless --threads, which
 * sets the step's threads for both runtimes, no spinning; the load children always use the defaults), PyTorch
 * in its child (memory needed: bench/README.md). Check first (exit 1): one call at the largest batch on the same
 * inputs through all three; built vs export and built vs torch must agree within --check-tolerance (relative L2).
 * Then two untimed calls per engine and batch, then --runs rounds in which each batch runs on the three engines back
 * to back, the order rotating between rounds. Medians, ratios of medians and medians of the per-round ratios; the CPU
 * time other processes took during the rounds (/proc/stat), peak RSS of both processes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_SESSION_SETTINGS,
  OnnxUnetRunner,
  SessionPool,
  modelFolderFromCheckpoint,
  openModelFolder,
  openUnet,
  randn,
  timestepTensor,
  type OpenedUnet,
  type Tensor,
} from '../packages/diffusion/src/index.ts';
import { checkpointSha256, unetFromCheckpoint } from '../packages/onnx-graph/src/build/index.ts';
import { loadModel } from '../packages/onnx-graph/src/index.ts';
import {
  CHILD_RESULT,
  TorchSide,
  cliOptions,
  compareOutputs,
  gbOfBytes,
  loadMeter,
  mb,
  median,
  memAvailableMB,
  ms,
  peakRssMB,
  phases,
  python,
  repoRoot,
  rssMB,
  runChildRole,
  sec,
  type Phase,
} from './measure.ts';

const thisFile = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const { option, flag } = cliOptions(args);
const usage = (message: string): never => {
  console.error(`bench/single-file: ${message}`);
  process.exit(64);
};
const wholeNumbers = (name: string, fallback: string): number[] => {
  const v = option(name, fallback).split(',').map(Number);
  if (!v.length || !v.every((x) => Number.isInteger(x) && x >= 1)) usage(`--${name} takes whole numbers >= 1 separated by commas; got "${option(name, fallback)}"`);
  return v;
};
const gate = join(repoRoot, '.gategraph');
const CHECKPOINT = resolve(option('checkpoint', join(gate, 'test-checkpoints-full', 'sd15-fp16.safetensors')));
const STEP_CHECKPOINT = resolve(option('step-checkpoint', join(gate, 'test-checkpoints-full', 'sd15.safetensors')));
const EXPORT = resolve(option('export', join(gate, 'test-models-full', 'sd15-optimum')));
const WORK = resolve(option('work', join(gate, 'bench-single-file')));
const FAMILY = { text: 'sd1', prediction: 'epsilon' } as const;
/** RSS figures are in MB of 2^20 bytes (VmHWM / 1024, as the other benches print them); file sizes in GB of 1e9 bytes. */
const gb = (megabytes: number) => gbOfBytes(megabytes * 2 ** 20);

// ==== children: one measurement each, in a process of its own ==================================================
const componentsOf = (c: Awaited<ReturnType<typeof modelFolderFromCheckpoint>>['components']) =>
  Object.fromEntries(
    Object.entries(c).map(([name, x]) => [
      name,
      { dataBytes: statSync(join(x.dir, 'model.onnx_data')).size, onnxBytes: statSync(x.modelPath).size, fromCache: x.fromCache, build: x.build },
    ]),
  );

async function child(role: string): Promise<unknown> {
  const cacheDir = resolve(option('cache-dir', ''));
  const rssStartMB = rssMB('self');
  if (role === 'first-load') {
    const p = phases();
    p.next('sha256');
    await checkpointSha256(CHECKPOINT, cacheDir);
    p.next('lookup');
    const order: string[] = [];
    const t0 = performance.now();
    const folder = await modelFolderFromCheckpoint(CHECKPOINT, FAMILY, {
      cacheDir,
      onBuild: (name) => {
        order.push(name);
        p.next(`build ${name}`);
        console.error(`  [first load] building ${name}`);
      },
    });
    const buildS = (performance.now() - t0) / 1000;
    p.next('open');
    const t1 = performance.now();
    const model = await openModelFolder(folder.dir);
    const openS = (performance.now() - t1) / 1000;
    p.next('end');
    const fused = { unet: model.unet.path.includes('.gategraph-derived'), vae_decoder: model.vaeDecoder.path.includes('.gategraph-derived') };
    await model.release();
    return { rssStartMB, resettable: p.resettable, phases: p.list, order, built: folder.built, buildS, openS, fused, components: componentsOf(folder.components), dir: folder.dir, warnings: model.warnings };
  }
  if (role === 'unet') {
    const p = phases();
    p.next('unet');
    const unet = await unetFromCheckpoint(option('from', CHECKPOINT), { cacheDir });
    p.next('end');
    return { rssStartMB, resettable: p.resettable, phases: p.list, dir: unet.dir, fromCache: unet.fromCache, build: unet.build, dataBytes: statSync(join(unet.dir, 'model.onnx_data')).size };
  }
  if (role === 'cached-load') {
    const p = phases();
    p.next('find');
    const folder = await modelFolderFromCheckpoint(CHECKPOINT, FAMILY, { cacheDir });
    p.next('open');
    const model = await openModelFolder(folder.dir);
    p.next('end');
    await model.release();
    return { rssStartMB, phases: p.list, built: folder.built };
  }
  if (role === 'open-export') {
    const p = phases();
    p.next('open');
    const model = await openModelFolder(EXPORT);
    p.next('end');
    const fused = { unet: model.unet.path.includes('.gategraph-derived'), vae_decoder: model.vaeDecoder.path.includes('.gategraph-derived') };
    await model.release();
    return { rssStartMB, phases: p.list, fused };
  }
  throw new Error(`unknown child role ${role}`);
}

if (flag('child')) {
  try {
    const result = await child(option('child', ''));
    process.stdout.write(`${CHILD_RESULT}${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    console.error(`bench/single-file child: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  }
}

/** Runs a child role; resolves with its result (rejects when it fails). */
const runChild = <T>(role: string, extra: string[] = []): Promise<T> => runChildRole<T>(thisFile, args, role, extra);

// ==== options, files ============================================================================================
const SIZE = wholeNumbers('size', '512')[0]!;
const RUNS = wholeNumbers('runs', '3')[0]!;
const OPENS = wholeNumbers('opens', '2')[0]!;
const BATCHES = wholeNumbers('batches', '2,1');
const THREADS = wholeNumbers('threads', String(DEFAULT_SESSION_SETTINGS.intraOpNumThreads))[0]!;
const TOLERANCE = Number(option('check-tolerance', '1e-3'));
const NO_TORCH = flag('no-torch');
const DO_LOAD = !flag('no-load');
const DO_STEP = !flag('no-step');
if (SIZE % 64 !== 0) usage(`--size must be a multiple of 64 (latents are size/8 and the UNet halves them three times); got ${SIZE}`);
if (!(TOLERANCE > 0)) usage(`--check-tolerance must be a positive number; got ${option('check-tolerance', '1e-3')}`);

{
  // What is missing, and the commands that make it (the generators' item names are the file / folder names).
  const checkpoints = [...new Set([...(DO_LOAD ? [CHECKPOINT] : []), ...(DO_STEP ? [STEP_CHECKPOINT] : [])])].filter((f) => !existsSync(f));
  const exportMissing = !existsSync(join(EXPORT, 'model_index.json')) || !existsSync(join(EXPORT, 'unet', 'model.onnx'));
  const commands: string[][] = [];
  for (const out of new Set(checkpoints.map((f) => dirname(f)))) {
    const names = checkpoints.filter((f) => dirname(f) === out).map((f) => basename(f));
    commands.push([python, 'tools/test-checkpoints/make_checkpoints.py', '--out', out, '--scale', 'full', '--only', names.join(',')]);
  }
  if (exportMissing) commands.push([python, 'tools/test-models/make_test_models.py', '--out', dirname(EXPORT), '--scale', 'full', '--only', basename(EXPORT)]);
  if (commands.length) {
    const text = commands.map((c) => `  ${c.join(' ')}`).join('\n');
    if (!flag('make')) {
      console.log(
        `skipped: ${[...checkpoints, ...(exportMissing ? [EXPORT] : [])].join(', ')} missing. Make ${commands.length > 1 ? 'them' : 'it'} with\n${text}\n` +
          '(SD-1.5-size random weights: 4.3 + 2.1 GB of checkpoints and a 4.0 GB export, a few minutes and several GB of RAM each; ' +
          'sizes and times in bench/README.md), or run this bench with --make to do that first.',
      );
      process.exit(0);
    }
    for (const c of commands) {
      console.log(`making: ${c.join(' ')}`);
      const r = spawnSync(c[0]!, c.slice(1), { cwd: repoRoot, stdio: 'inherit', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
      if (r.status !== 0) {
        console.error(`bench/single-file: that command failed (exit ${r.status})`);
        process.exit(1);
      }
    }
  }
}

const [load1AtStart] = loadavg();
console.log(
  `bench/single-file: ${new Date().toISOString()}, ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), load average ${load1AtStart!.toFixed(2)}, ` +
    `MemAvailable ${gb(memAvailableMB())}\n  checkpoint (first load) ${CHECKPOINT}\n  checkpoint (step)       ${STEP_CHECKPOINT}\n  export                  ${EXPORT}`,
);
mkdirSync(WORK, { recursive: true });
const report: string[] = [];
let failed = false;

// ==== load ======================================================================================================
type ComponentInfo = { dataBytes: number; onnxBytes: number; build?: { seconds: number; dataBytes: number; convertedElements: number } };
type FirstLoad = { rssStartMB: number; resettable: boolean; phases: Phase[]; order: string[]; built: string[]; buildS: number; openS: number; fused: Record<string, boolean>; components: Record<string, ComponentInfo>; dir: string; warnings: string[] };
type UnetOnly = { rssStartMB: number; resettable: boolean; phases: Phase[]; dir: string; fromCache: boolean; build?: ComponentInfo['build']; dataBytes: number };
type CachedLoad = { rssStartMB: number; phases: Phase[]; built: string[] };
type ExportOpen = { rssStartMB: number; phases: Phase[]; fused: Record<string, boolean> };
const phaseOf = (p: Phase[], name: string) => p.find((x) => x.name === name)!;

let fp16UnetModel: string | undefined;
const runDir = mkdtempSync(join(WORK, 'run-'));
const cleanup = () => {
  if (!flag('keep')) rmSync(runDir, { recursive: true, force: true });
};
process.on('exit', cleanup);
if (DO_LOAD) {
  const firstCache = join(runDir, 'first-load');
  console.log(`\n== first load: ${basename(CHECKPOINT)} into a fresh cache folder (${firstCache})`);
  const first = await runChild<FirstLoad>('first-load', ['--cache-dir', firstCache]);
  fp16UnetModel = join(first.dir, 'unet', 'model.onnx');
  const buildPhases = first.phases.filter((p) => p.name === 'sha256' || p.name === 'lookup' || p.name.startsWith('build '));
  const buildPeak = Math.max(...buildPhases.map((p) => p.peakMB));
  const openPhase = phaseOf(first.phases, 'open');
  const totalBytes = Object.values(first.components).reduce((s, c) => s + c.dataBytes, 0);
  const unetBytes = first.components.unet!.dataBytes;
  const lines = [
    `first load of ${basename(CHECKPOINT)} (${gbOfBytes(statSync(CHECKPOINT).size)}), child process, fresh cache folder; peak RSS per phase${first.resettable ? ' (reset between phases)' : ' (cumulative: this kernel does not reset VmHWM)'}, node + tsx at start ${first.rssStartMB.toFixed(0)} MB:`,
    ...buildPhases.map((p) => {
      const c = p.name.startsWith('build ') ? first.components[p.name.slice(6)] : undefined;
      const detail = c?.build ? `, built in ${sec(c.build.seconds)}, ${gbOfBytes(c.dataBytes)} of float32 weights (${(c.build.convertedElements / 1e6).toFixed(1)} M values converted)` : '';
      return `  ${p.name.padEnd(22)} ${sec(p.seconds).padStart(8)}  peak ${p.peakMB.toFixed(0).padStart(5)} MB${detail}`;
    }),
    `  build total            ${sec(buildPhases.reduce((s, p) => s + p.seconds, 0)).padStart(8)}  peak ${buildPeak.toFixed(0).padStart(5)} MB` +
      ` = ${(buildPeak / mb(totalBytes)).toFixed(2)}x the float32 model (${gbOfBytes(totalBytes)} = ${mb(totalBytes).toFixed(0)} MB: the four model.onnx_data), ${(buildPeak / mb(unetBytes)).toFixed(2)}x the UNet's (${gbOfBytes(unetBytes)})`,
    `  first open             ${sec(openPhase.seconds).padStart(8)}  peak ${openPhase.peakMB.toFixed(0).padStart(5)} MB (openModelFolder: fused graphs derived (unet ${first.fused.unet}, vae_decoder ${first.fused.vae_decoder}), four sessions opened)`,
    `  first load, build + open: ${sec(buildPhases.reduce((s, p) => s + p.seconds, 0) + openPhase.seconds)}, peak RSS ${Math.max(buildPeak, openPhase.peakMB).toFixed(0)} MB`,
  ];
  if (first.warnings.length) lines.push(`  openModelFolder warnings: ${first.warnings.join('; ')}`);
  console.log(lines.join('\n'));
  report.push(...lines);

  const unetCache = join(runDir, 'unet-only');
  console.log(`\n== the UNet alone: unetFromCheckpoint(${basename(CHECKPOINT)}) into a fresh cache folder`);
  const u = await runChild<UnetOnly>('unet', ['--cache-dir', unetCache, '--from', CHECKPOINT]);
  rmSync(unetCache, { recursive: true, force: true });
  const up = phaseOf(u.phases, 'unet');
  const uLine = `UNet alone (unetFromCheckpoint, child process, fresh cache folder): ${sec(up.seconds)} (sha256 of the file included; build ${sec(u.build?.seconds ?? NaN)}), peak RSS ${up.peakMB.toFixed(0)} MB = ${(up.peakMB / mb(u.dataBytes)).toFixed(2)}x the UNet's float32 size (${gbOfBytes(u.dataBytes)} = ${mb(u.dataBytes).toFixed(0)} MB); node + tsx at start ${u.rssStartMB.toFixed(0)} MB`;
  console.log(uLine);
  report.push(uLine);
  const memoryVerdict =
    `first-load peak RSS <= 1.5x the float32 model: whole model ${(buildPeak / mb(totalBytes)).toFixed(2)}x (${buildPeak.toFixed(0)} MB / ${mb(totalBytes).toFixed(0)} MB) ${buildPeak <= 1.5 * mb(totalBytes) ? 'met' : 'NOT met'}; ` +
    `UNet alone ${(up.peakMB / mb(u.dataBytes)).toFixed(2)}x ${up.peakMB <= 1.5 * mb(u.dataBytes) ? 'met' : 'NOT met'}; with the first open ${(Math.max(buildPeak, openPhase.peakMB) / mb(totalBytes)).toFixed(2)}x`;

  console.log(`\n== cached load vs opening the export (${OPENS} alternating pair${OPENS > 1 ? 's' : ''}, after one untimed export open)`);
  const prime = await runChild<ExportOpen>('open-export');
  console.log(`  export, first open in this run: ${sec(phaseOf(prime.phases, 'open').seconds)} (fused: unet ${prime.fused.unet}, vae_decoder ${prime.fused.vae_decoder})`);
  const cached: CachedLoad[] = [];
  const exportOpens: ExportOpen[] = [];
  for (let i = 0; i < OPENS; i++) {
    for (const which of i % 2 ? ['export', 'cached'] : ['cached', 'export']) {
      if (which === 'cached') {
        const c = await runChild<CachedLoad>('cached-load', ['--cache-dir', firstCache]);
        if (c.built.length) {
          console.error(`FAIL the cached load built ${c.built.join(', ')} again`);
          failed = true;
        }
        cached.push(c);
        console.log(`  cached load: find ${sec(phaseOf(c.phases, 'find').seconds)} + open ${sec(phaseOf(c.phases, 'open').seconds)}, peak ${Math.max(...c.phases.map((x) => x.peakMB)).toFixed(0)} MB`);
      } else {
        const e = await runChild<ExportOpen>('open-export');
        exportOpens.push(e);
        console.log(`  export open: ${sec(phaseOf(e.phases, 'open').seconds)}, peak ${Math.max(...e.phases.map((x) => x.peakMB)).toFixed(0)} MB`);
      }
    }
  }
  const findS = median(cached.map((c) => phaseOf(c.phases, 'find').seconds));
  const cachedOpenS = median(cached.map((c) => phaseOf(c.phases, 'open').seconds));
  const cachedTotal = median(cached.map((c) => phaseOf(c.phases, 'find').seconds + phaseOf(c.phases, 'open').seconds));
  const exportS = median(exportOpens.map((e) => phaseOf(e.phases, 'open').seconds));
  const cLine =
    `cached load (median of ${OPENS}, child processes): modelFolderFromCheckpoint ${sec(findS)} (nothing built) + openModelFolder ${sec(cachedOpenS)} = ${sec(cachedTotal)}; ` +
    `openModelFolder on the export ${sec(exportS)}: cached / export ${(cachedTotal / exportS).toFixed(2)}x; peak RSS ${median(cached.map((c) => Math.max(...c.phases.map((x) => x.peakMB)))).toFixed(0)} MB vs ${median(exportOpens.map((e) => Math.max(...e.phases.map((x) => x.peakMB)))).toFixed(0)} MB`;
  console.log(cLine);
  report.push(cLine, memoryVerdict);
}

// ==== step ======================================================================================================
if (DO_STEP) {
  console.log(`\n== the UNet for the step timings: unetFromCheckpoint(${basename(STEP_CHECKPOINT)}) into ${join(WORK, 'step-cache')}`);
  const s = await runChild<UnetOnly>('unet', ['--cache-dir', join(WORK, 'step-cache'), '--from', STEP_CHECKPOINT]);
  const stepLine = s.fromCache
    ? `step UNet: ${basename(STEP_CHECKPOINT)}'s, from the cache (${sec(phaseOf(s.phases, 'unet').seconds)})`
    : `step UNet: built from ${basename(STEP_CHECKPOINT)} in ${sec(s.build!.seconds)}, peak RSS ${phaseOf(s.phases, 'unet').peakMB.toFixed(0)} MB`;
  console.log(stepLine);
  report.push(stepLine);
  if (fp16UnetModel && existsSync(fp16UnetModel)) {
    // The same builder on the two files must emit the same graph (weights converted to float32 either way): then the
    // step timings below hold for the float16 file's UNet too.
    const sig = (path: string) => {
      const g = loadModel(path).proto.graph!;
      return JSON.stringify({
        nodes: g.node.map((n) => [n.opType, n.domain, n.input, n.output, n.attribute.map((a) => a.name)]),
        inits: g.initializer.map((t) => [t.name, t.dims.map(Number), t.dataType]),
        io: [g.input.map((v) => v.name), g.output.map((v) => v.name)],
      });
    };
    const a = sig(fp16UnetModel);
    const same = a === sig(join(s.dir, 'model.onnx'));
    const nodes = (JSON.parse(a) as { nodes: unknown[] }).nodes.length;
    const line = `graph of the ${basename(STEP_CHECKPOINT)} UNet vs the ${basename(CHECKPOINT)} UNet: ${same ? `the same (${nodes} nodes; initializer names, shapes and types)` : 'DIFFERENT'}`;
    console.log(line);
    report.push(line);
    if (!same) failed = true;
  }
  cleanup(); // the first-load cache (the whole model, converted) is not needed any more

  const pool = new SessionPool({ intraOpNumThreads: THREADS });
  const exportUnetDir = join(EXPORT, 'unet');
  const torchChild = !NO_TORCH && existsSync(python) ? new TorchSide(['--unet', exportUnetDir, '--checkpoint', STEP_CHECKPOINT, '--threads', String(THREADS)]) : undefined;
  const engines: Array<{ key: 'built' | 'export'; unet: OpenedUnet; runner: OnnxUnetRunner }> = [];
  const opCounts = new Map<string, Map<string, number>>();
  for (const [key, dir] of [['built', s.dir], ['export', exportUnetDir]] as const) {
    const derivedBefore = existsSync(join(dir, '.gategraph-derived'));
    const t0 = performance.now();
    const unet = await openUnet(dir, { pool });
    console.log(
      `${key}: session open in ${sec((performance.now() - t0) / 1000)}${derivedBefore ? '' : ' (fused graph derived first)'} ` +
        `(attention ${unet.unet.path.includes('.gategraph-derived') ? 'fused' : 'as built/exported'}; ${unet.unet.path})`,
    );
    engines.push({ key, unet, runner: OnnxUnetRunner.forModel(unet) });
    const counts = new Map<string, number>();
    for (const n of loadModel(unet.unet.path).proto.graph!.node) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    opCounts.set(key, counts);
  }
  {
    // What onnxruntime is given: if the two graphs time differently, their operators say where to look.
    const [b, e] = [opCounts.get('built')!, opCounts.get('export')!];
    const total = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
    const differing = [...new Set([...b.keys(), ...e.keys()])].filter((op) => b.get(op) !== e.get(op)).sort();
    const line =
      `graphs as opened: built ${total(b)} nodes, export ${total(e)} nodes (MultiHeadAttention ${b.get('MultiHeadAttention') ?? 0} / ${e.get('MultiHeadAttention') ?? 0}); ` +
      `operator counts that differ (built / export): ${differing.map((op) => `${op} ${b.get(op) ?? 0}/${e.get(op) ?? 0}`).join(', ') || 'none'}`;
    console.log(line);
    report.push(line);
  }
  let torchInfo: Record<string, unknown> | undefined;
  try {
    torchInfo = await torchChild?.ready();
  } catch (err) {
    console.error(`FAIL ${(err as Error).message}`);
    process.exit(1);
  }
  const torch = torchInfo ? torchChild : undefined;
  if (torchInfo) {
    const w = torchInfo.weights as { checked: boolean; parameters?: number; elements?: number };
    const line =
      `pytorch ${String(torchInfo.torch)} eager, ${String(torchInfo.threads)} threads, OMP_WAIT_POLICY=${String(torchInfo.omp_wait_policy)}; weights loaded from ${basename(STEP_CHECKPOINT)}: ` +
      `all ${w.parameters} parameter tensors (${((w.elements ?? 0) / 1e6).toFixed(1)} M values) byte-identical to the export's initializers`;
    console.log(line);
    report.push(line);
  } else {
    console.log(`PyTorch column skipped: ${NO_TORCH ? '--no-torch' : torchChild ? 'torch is not installed for /usr/bin/python3' : `${python} not found`}`);
  }

  const io = engines[0]!.unet.io.unet;
  const xdim = io.crossAttentionDim;
  const latent = (batch: number) => [batch, io.sampleChannels, SIZE / 8, SIZE / 8];
  const ortCall = async (e: (typeof engines)[number], sample: Tensor, context: Tensor): Promise<Tensor> => {
    const eio = e.unet.io.unet;
    const batch = sample.shape[0]!;
    const out = await e.runner.run('full', { [eio.sample]: sample, [eio.timestep]: timestepTensor(eio, 500, batch), [eio.encoderHiddenStates]: context }, [eio.outSample]);
    return out[eio.outSample]!;
  };

  // ---- check: the same function on the three engines ----
  const checkBatch = Math.max(...BATCHES);
  {
    const sample = randn(latent(checkBatch), 11);
    const context = randn([checkBatch, 77, xdim], 12);
    const outs: Record<string, Float32Array> = {};
    for (const e of engines) {
      const t0 = performance.now();
      outs[e.key] = (await ortCall(e, sample, context)).data as Float32Array;
      console.log(`  check call, ${e.key}: ${ms(performance.now() - t0)} (untimed: first call)`);
      if (!outs[e.key]!.every(Number.isFinite)) {
        console.error(`FAIL the ${e.key} UNet's output has non-finite values`);
        process.exit(1);
      }
    }
    if (torch) outs.torch = (await torch.forward(sample.data, context.data, checkBatch, SIZE)).out;
    for (const [x, ref, required] of [['built', 'export', true], ['built', 'torch', true], ['export', 'torch', false]] as const) {
      if (!outs[x] || !outs[ref]) continue;
      const c = compareOutputs(outs[x]!, outs[ref]!);
      const ok = c.sameLength && c.rel < TOLERANCE;
      const line = `check (batch ${checkBatch}, ${SIZE} px, same inputs): ${x} vs ${ref}: relative L2 ${c.rel.toExponential(2)}, max |diff| ${c.maxDiff.toExponential(2)} (output max |value| ${c.maxRef.toFixed(3)}); tolerance ${TOLERANCE}: ${ok ? 'same' : 'FAIL'}`;
      console.log(line);
      report.push(line);
      if (!ok && required) failed = true;
    }
    if (failed) {
      console.error('FAIL the engines disagree on the same input: the timings would not compare the same computation');
      torch?.quit();
      process.exit(1);
    }
  }

  // ---- warm-up: two untimed calls per engine and batch (onnxruntime's arena settles in the second; bench/sd15.ts) ----
  const inputs = new Map(BATCHES.map((b) => [b, { sample: randn(latent(b), 31 + b), context: randn([b, 77, xdim], 41 + b) }]));
  for (const b of BATCHES) {
    for (let i = b === checkBatch ? 1 : 0; i < 2; i++) {
      for (const e of engines) await ortCall(e, inputs.get(b)!.sample, inputs.get(b)!.context);
      if (torch) await torch.ask({ cmd: 'unet', batch: b, size: SIZE, reps: 1 });
    }
  }
  console.log(`warm-up done; MemAvailable ${gb(memAvailableMB())}`);

  // ---- alternating rounds ----
  type Engine = 'built' | 'export' | 'torch';
  const names: Engine[] = torch ? ['built', 'export', 'torch'] : ['built', 'export'];
  const times = new Map(BATCHES.map((b) => [b, new Map(names.map((n) => [n, [] as number[]]))]));
  let minAvailable = memAvailableMB();
  const load = loadMeter(torch?.pid);
  const wall0 = performance.now();
  for (let r = 0; r < RUNS; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]!);
    for (const b of BATCHES) {
      const { sample, context } = inputs.get(b)!;
      for (const n of order) {
        let t: number;
        if (n === 'torch') t = (await torch!.ask<{ ms: number[] }>({ cmd: 'unet', batch: b, size: SIZE, reps: 1 })).ms[0]!;
        else {
          const e = engines.find((x) => x.key === n)!;
          const t0 = performance.now();
          await ortCall(e, sample, context);
          t = performance.now() - t0;
        }
        times.get(b)!.get(n)!.push(t);
        minAvailable = Math.min(minAvailable, memAvailableMB());
      }
    }
    console.error(`  round ${r + 1}/${RUNS} (order ${order.join(', ')}) done, ${((performance.now() - wall0) / 1000).toFixed(0)} s`);
  }
  const { wallS, othersCores, stealCores, load1AtEnd } = load.stop();
  const rss = { ort: peakRssMB('self'), torch: torch ? peakRssMB(torch.pid) : NaN };
  torch?.quit();
  for (const e of engines) await e.unet.release();
  await pool.freeAll();

  const loadLine =
    `load: other processes used ${othersCores.toFixed(2)} of ${availableParallelism()} cores on average during the ${wallS.toFixed(0)} s of timed rounds, the hypervisor stole ${stealCores.toFixed(2)} ` +
    `(load average ${load1AtStart!.toFixed(2)} at the start, ${load1AtEnd!.toFixed(2)} at the end, this bench included); MemAvailable at least ${gb(minAvailable)} during the rounds`;
  console.log(`\n${loadLine}`);
  report.push(loadLine);
  const date = new Date().toISOString().slice(0, 10);
  const table = [
    '| date | size | batch | threads | built ms | export ms | torch ms | built / export | torch / built | per round: built / export | per round: torch / built |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const verdicts: string[] = [];
  for (const b of BATCHES) {
    const t = times.get(b)!;
    const m = Object.fromEntries(names.map((n) => [n, median(t.get(n)!)])) as Record<Engine, number>;
    const perRound = (x: Engine, y: Engine) => t.get(x)!.map((v, i) => v / t.get(y)![i]!);
    const be = perRound('built', 'export');
    const tb = torch ? perRound('torch', 'built') : [];
    table.push(
      `| ${date} | ${SIZE} | ${b} | ${THREADS} | ${m.built.toFixed(0)} | ${m.export.toFixed(0)} | ${torch ? m.torch.toFixed(0) : 'skipped'} | ${(m.built / m.export).toFixed(3)} | ` +
        `${torch ? `${(m.torch / m.built).toFixed(2)}x` : ''} | ${be.map((x) => x.toFixed(3)).join(', ')} (median ${median(be).toFixed(3)}) | ${torch ? `${tb.map((x) => `${x.toFixed(2)}x`).join(', ')} (median ${median(tb).toFixed(2)}x)` : ''} |`,
    );
    report.push(`batch ${b}: built ${t.get('built')!.map(ms).join(', ')}; export ${t.get('export')!.map(ms).join(', ')}${torch ? `; torch ${t.get('torch')!.map(ms).join(', ')}` : ''}`);
    // "No slower" on a shared machine: a median ratio above 1 with rounds on both sides of 1 is noise, not a loss.
    const range = `per round ${Math.min(...be).toFixed(3)}-${Math.max(...be).toFixed(3)}`;
    const exportVerdict =
      m.built <= m.export
        ? 'met'
        : Math.min(...be) <= 1
          ? `met within the noise: ${((m.built / m.export - 1) * 100).toFixed(1)} % slower in the medians, ${range}`
          : `NOT met: ${((m.built / m.export - 1) * 100).toFixed(1)} % slower, ${range}`;
    verdicts.push(
      `batch ${b}: built / export ${(m.built / m.export).toFixed(3)} (target <= 1: ${exportVerdict})` +
        (torch ? `; torch / built ${(m.torch / m.built).toFixed(2)}x (target >= 2x: ${m.torch >= 2 * m.built ? 'met' : 'NOT met'})` : ''),
    );
  }
  console.log(`\n${table.join('\n')}`);
  report.push(...table);
  const rssLine = `peak RSS: this process (both onnxruntime sessions) ${rss.ort.toFixed(0)} MB${torch ? `; the PyTorch process ${rss.torch.toFixed(0)} MB (after its weight check)` : ''}`;
  console.log(rssLine);
  report.push(rssLine, ...verdicts);
}

console.log(`\n==== summary ====\n${report.join('\n')}`);
process.exit(failed ? 1 : 0);
