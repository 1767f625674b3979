/**
 * Shared set-up of the pack's tests: the real pack loaded through core's pack loader, host folders in a
 * temporary directory, and the embedded model (or `GATEGRAPH_TEST_MODEL`) linked into a temporary models
 * folder under the name `tiny-sd`, which the default workflow uses.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  defineNode,
  Executor,
  loadPacks,
  NodeRegistry,
  silentLogger,
  socket,
  string,
  validatePrompt,
  type ApiPrompt,
  type ExecutionEvent,
  type HostPaths,
  type Logger,
  type RunResult,
} from '@gategraph/core';
import { isModelFolder, type Tensor } from '@gategraph/diffusion';
import type { Latent } from '../src/types.ts';

export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The model the tests run on: GATEGRAPH_TEST_MODEL, else the repository's embedded models/tiny-sd. */
export const testModelDir = resolve(process.env.GATEGRAPH_TEST_MODEL ?? join(repoRoot, 'models', 'tiny-sd'));

/** Why the model tests cannot run, or undefined when they can. Pass as `{ skip: noModel }`. */
export const noModel: string | undefined = isModelFolder(testModelDir)
  ? undefined
  : `no model at ${testModelDir} (models/tiny-sd/unet/model.onnx is not there yet): set GATEGRAPH_TEST_MODEL to an exported folder, ` +
    'e.g. /usr/bin/python3 tools/tiny-sd/export.py --out /tmp/tiny-sd-dev';

/** A fresh temporary host: output/input/temp folders, and models/ holding `tiny-sd` -> the test model. */
export function makeHost(): { dir: string; paths: HostPaths } {
  const dir = mkdtempSync(join(tmpdir(), 'nodes-tgate-'));
  // Removed when the test process ends (symlinks are removed, never followed).
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const paths: HostPaths = {
    output: join(dir, 'output'),
    input: join(dir, 'input'),
    temp: join(dir, 'temp'),
    models: join(dir, 'models'),
  };
  for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
  if (existsSync(testModelDir)) symlinkSync(testModelDir, join(paths.models, 'tiny-sd'), 'dir');
  return { dir, paths };
}

/**
 * One host for the whole test file. The combos (ckpt_name, image) list the folders named by the environment
 * variables (see src/folders.ts), so they point at this host's folders too.
 */
export const host = makeHost();
process.env.GATEGRAPH_MODELS = host.paths.models;
process.env.GATEGRAPH_INPUT = host.paths.input;

let registryPromise: Promise<NodeRegistry> | undefined;

/** The node registry with this pack loaded the way hosts load it. */
export function packRegistry(): Promise<NodeRegistry> {
  registryPromise ??= (async () => {
    const registry = new NodeRegistry();
    const report = await loadPacks({ packages: [join(repoRoot, 'packages', 'nodes-tgate')], registry });
    assert.deepEqual(report.failed, [], 'the pack should load');
    return registry;
  })();
  return registryPromise;
}

export function readJson<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export const defaultPrompt = (): ApiPrompt => readJson<ApiPrompt>(join(repoRoot, 'workflows', 'default.json'));
export const defaultUiWorkflow = (): Record<string, unknown> => readJson(join(repoRoot, 'workflows', 'default.ui.json'));

export interface RunOutcome {
  result: RunResult;
  events: ExecutionEvent[];
}

export interface RunOptions {
  paths?: HostPaths;
  extraPngInfo?: Record<string, unknown>;
  signal?: AbortSignal;
  onEvent?: (e: ExecutionEvent) => void;
  /** Where the nodes' log goes (default: nowhere). */
  logger?: Logger;
}

/** Validates (must pass) and runs a prompt on a fresh executor without cache, as the server would. */
export async function validateAndRun(
  prompt: ApiPrompt,
  options: RunOptions = {},
): Promise<RunOutcome> {
  const registry = await packRegistry();
  // The host's folders decide what the combos list (a models folder given here is listed first).
  const validation = await validatePrompt(prompt, registry, options.paths ? { context: { paths: options.paths } } : {});
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  return runUnvalidated(validation.prompt, validation.outputs, options);
}

/** Runs a prompt without validating it first: what a node sees when validation is bypassed. */
export async function runUnvalidated(
  prompt: ApiPrompt,
  outputs: string[],
  options: RunOptions = {},
): Promise<RunOutcome> {
  const registry = await packRegistry();
  const executor = new Executor(registry, { paths: options.paths ?? host.paths, logger: options.logger ?? silentLogger, cache: { mode: 'none' } });
  const events: ExecutionEvent[] = [];
  const result = await executor.run(prompt, {
    promptId: `test-${Math.random().toString(36).slice(2)}`,
    outputs,
    ...(options.extraPngInfo ? { extraData: { extra_pnginfo: options.extraPngInfo } } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
  });
  return { result, events };
}

/** The files a run's SaveImage / PreviewImage nodes reported. */
export function savedImages(result: RunResult): { filename: string; subfolder: string; type: string }[] {
  return Object.values(result.outputs).flatMap((ui) => (ui.images ?? []) as { filename: string; subfolder: string; type: string }[]);
}

/** Runs the `gategraph` CLI on a workflow file of the repo, writing into the host's output folder. */
export function runCli(workflow: string, paths: HostPaths): SpawnSyncReturns<string> {
  return spawnSync(
    process.execPath,
    ['packages/core/bin/gategraph.mjs', 'run', workflow, '--output-dir', paths.output, '--models-dir', paths.models],
    { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, GATEGRAPH_MODELS: paths.models }, timeout: 300_000 },
  );
}

/**
 * An output node (class `id`) that keeps the LATENT it receives under its `key` input, so a test can compare the
 * latents of several samplers of one prompt.
 */
export function latentKeeper(id: string) {
  const kept = new Map<string, Latent>();
  const node = defineNode({
    id,
    inputs: { samples: socket('LATENT'), key: string() },
    outputs: [],
    outputNode: true,
    execute({ samples, key }) {
      kept.set(key, samples as Latent);
      return { ui: { kept: [key] } };
    },
  });
  return { kept, node };
}

/** A logger that keeps every line as "level [scope] message" (scope: the node, e.g. CLIPTextEncode#6). */
export function recordingLogger(lines: string[], scope = ''): Logger {
  const record = (level: string) => (message: string) => void lines.push(`${level} [${scope}] ${message}`);
  return { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), child: (s) => recordingLogger(lines, s) };
}

/** An output node (class `id`) that keeps the SIGMAS it receives under its `key` input, as a list of numbers. */
export function sigmasKeeper(id: string) {
  const kept = new Map<string, number[]>();
  const node = defineNode({
    id,
    inputs: { sigmas: socket('SIGMAS'), key: socket<string>('STRING') },
    outputs: [],
    outputNode: true,
    execute({ sigmas, key }) {
      kept.set(key, Array.from((sigmas as { data: Float32Array }).data));
      return { ui: {} };
    },
  });
  return { kept, node };
}

/**
 * The default workflow's loader, prompts and empty latent (nodes 4-7) with `nodes`, and one `keeperId` node
 * (a latentKeeper) per entry of `keep`: key -> the LATENT output it keeps.
 */
export function keepingGraph(keeperId: string, nodes: ApiPrompt, keep: Record<string, [string, number]>): ApiPrompt {
  const base = defaultPrompt();
  const prompt: ApiPrompt = { '4': base['4']!, '5': base['5']!, '6': base['6']!, '7': base['7']!, ...nodes };
  Object.entries(keep).forEach(([key, link], i) => {
    prompt[`9${i}`] = { class_type: keeperId, inputs: { samples: link, key } };
  });
  return prompt;
}

/** Runs keepingGraph (validated, must succeed; the keeper registered) and returns the kept latents by key. */
export async function runKeeping(
  keeper: { kept: Map<string, Latent>; node: { id: string } },
  nodes: ApiPrompt,
  keep: Record<string, [string, number]>,
): Promise<Record<string, Tensor>> {
  const { result } = await validateAndRun(keepingGraph(keeper.node.id, nodes, keep));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return Object.fromEntries(Object.keys(keep).map((key) => [key, keeper.kept.get(key)!.samples]));
}
