/**
 * The `gategraph` command line: validate and run workflows without a server.
 *
 * Exit codes (documented in `gategraph --help`):
 *   0 success, 1 the run failed in a node, 2 the workflow is invalid (unreadable, bad format, failed
 *   validation), 64 bad command-line usage, 130 interrupted (Ctrl+C).
 */
import { Command, CommanderError, Option } from 'commander';
import { randomUUID } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { delimiter, join, relative, resolve } from 'node:path';
import { createHost, type Host } from '../host.ts';
import { consoleLogger } from '../logger.ts';
import { loadWorkflowFile, WorkflowFormatError } from '../workflow/load.ts';
import { validatePrompt, type ValidationResult } from '../validation.ts';
import { Executor } from '../executor.ts';
import { cacheOptionsFromFlags } from '../cache-flags.ts';
import { objectInfo } from '../object-info.ts';
import { ProgressDisplay } from './progress-display.ts';
import type { ApiPrompt } from '../workflow/api-format.ts';

export const EXIT = { ok: 0, runFailed: 1, invalidWorkflow: 2, usage: 64, interrupted: 130 } as const;

/** An error that ends the command with a given exit code and a message for the user (no stack trace). */
class CliExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface HostFlags {
  customNodes?: string | false;
  outputDir?: string;
  inputDir?: string;
  modelsDir?: string;
  extraModelPathsConfig?: string[];
  verbose?: boolean;
}

/**
 * Where the model node pack finds the extra_model_paths.yaml files of `--extra-model-paths-config` (after those
 * already in it): the CLI and the server carry them to the pack's combos and loaders through this variable,
 * as `GATEGRAPH_MODELS` carries model folders.
 */
export const EXTRA_MODEL_PATHS_ENV = 'GATEGRAPH_EXTRA_MODEL_PATHS';

/** Adds `--extra-model-paths-config` files to GATEGRAPH_EXTRA_MODEL_PATHS; a missing one is a usage error. */
function useExtraModelPaths(files: string[] | undefined): void {
  if (!files?.length) return;
  const resolved = files.map((file) => resolve(file));
  for (const file of resolved) {
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      // reported below
    }
    if (!isFile) throw new CliExit(EXIT.usage, `--extra-model-paths-config: ${file} does not exist (expected an extra_model_paths.yaml file)`);
  }
  const before = (process.env[EXTRA_MODEL_PATHS_ENV] ?? '').split(delimiter).filter(Boolean);
  process.env[EXTRA_MODEL_PATHS_ENV] = [...new Set([...before, ...resolved])].join(delimiter);
}

async function openHost(flags: HostFlags): Promise<Host> {
  useExtraModelPaths(flags.extraModelPathsConfig);
  const logger = consoleLogger(flags.verbose ? 'debug' : 'warn');
  const host = await createHost({
    ...(flags.customNodes !== undefined ? { customNodesDir: flags.customNodes } : {}),
    paths: {
      ...(flags.outputDir ? { output: flags.outputDir } : {}),
      ...(flags.inputDir ? { input: flags.inputDir } : {}),
      ...(flags.modelsDir ? { models: flags.modelsDir } : {}),
    },
    logger,
  });
  for (const failure of host.packs.failed) console.error(`warning: node pack "${failure.name}" was skipped: ${failure.error}`);
  return host;
}

/**
 * Reads and validates a workflow file. Whatever goes wrong in there is the workflow's problem as far as the
 * exit code goes (2): a workflow that makes the checks themselves fail is still an invalid workflow, and the
 * person gets one line saying so (the stack trace only with --verbose).
 */
async function readAndValidate(file: string, host: Host, flags: HostFlags, targets?: string[]) {
  let loaded;
  try {
    loaded = await loadWorkflowFile(file, host.registry);
  } catch (error) {
    if (error instanceof WorkflowFormatError) throw new CliExit(EXIT.invalidWorkflow, error.message);
    throw invalidBecause(file, 'could not be read', error, flags);
  }
  for (const warning of loaded.warnings) console.error(`warning: ${warning}`);
  let validation;
  try {
    validation = await validatePrompt(loaded.prompt, host.registry, {
      ...(targets?.length ? { outputs: targets } : {}),
      context: { paths: host.paths },
    });
  } catch (error) {
    throw invalidBecause(file, 'could not be validated', error, flags);
  }
  return { loaded, validation };
}

function invalidBecause(file: string, what: string, error: unknown, flags: HostFlags): CliExit {
  const message = error instanceof Error ? error.message : String(error);
  const stack = flags.verbose && error instanceof Error && error.stack ? `\n${error.stack}` : '';
  return new CliExit(
    EXIT.invalidWorkflow,
    `${file} ${what}: ${message}${stack}${flags.verbose ? '' : '\n(run with --verbose for the stack trace; please report it: the checks should have said what is wrong)'}`,
  );
}

/** Node errors as lines a person can act on: `KSampler #3: input "steps" is 0, below the minimum 1`. */
export function describeValidation(result: ValidationResult): string[] {
  const lines: string[] = [];
  const perNode = Object.entries(result.nodeErrors);
  // The top-level error's details repeat the per-node messages; print them only when there are none.
  if (result.error && !result.ok) {
    lines.push(perNode.length || !result.error.details ? result.error.message : `${result.error.message}: ${result.error.details}`);
  }
  for (const [id, entry] of perNode) {
    for (const error of entry.errors) lines.push(`${entry.class_type} #${id}: ${error.message}`);
  }
  return lines;
}

async function runCommand(
  file: string,
  options: HostFlags & { outputs?: string[]; quiet?: boolean; json?: boolean; cacheClassic?: boolean; cacheLru?: string; cacheNone?: boolean; cacheRam?: string | true },
) {
  let cache;
  try {
    cache = cacheOptionsFromFlags({ classic: options.cacheClassic, lru: options.cacheLru, none: options.cacheNone, ram: options.cacheRam });
  } catch (error) {
    throw new CliExit(EXIT.usage, (error as Error).message);
  }
  const host = await openHost(options);
  const { loaded, validation } = await readAndValidate(file, host, options, options.outputs);
  const problems = describeValidation(validation);
  if (!validation.ok) throw new CliExit(EXIT.invalidWorkflow, `${file} is not a valid workflow:\n  ${problems.join('\n  ')}`);
  if (problems.length) console.error(`warning: some outputs will not run:\n  ${problems.join('\n  ')}`);

  const executor = new Executor(host.registry, { paths: host.paths, logger: consoleLogger(options.verbose ? 'debug' : 'info'), ...(cache ? { cache } : {}) });
  const display = new ProgressDisplay(validation.prompt, process.stderr, options.quiet);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    console.error('\ninterrupting after the current step (Ctrl+C again to quit now)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  const started = performance.now();
  let result;
  try {
    result = await executor.run(validation.prompt, {
      promptId: randomUUID(),
      outputs: validation.outputs,
      extraData: loaded.workflow ? { extra_pnginfo: { workflow: loaded.workflow } } : {},
      signal: abort.signal,
      onEvent: (event) => display.handle(event),
    });
  } finally {
    display.close();
    process.off('SIGINT', onSigint);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const files = outputFiles(host, result.outputs);
  if (options.json) console.log(JSON.stringify({ status: result.status, outputs: result.outputs, files, error: result.error }, null, 2));
  if (result.status === 'interrupted') throw new CliExit(EXIT.interrupted, 'interrupted');
  if (result.status === 'error') {
    const e = result.error!;
    throw new CliExit(EXIT.runFailed, `${e.node_type} #${e.node_id} failed: ${e.message}`);
  }
  if (!options.json) {
    console.error(`done in ${seconds} s`);
    for (const line of textOutputs(validation.prompt, result.outputs)) console.error(line);
    if (files.length) for (const f of files) console.log(relative(process.cwd(), f) || f);
    else console.error('the workflow produced no files');
  }
}

/** Absolute paths of the images (or other files) the output nodes reported in their UI output. */
function outputFiles(host: Host, outputs: Record<string, Record<string, unknown[]>>): string[] {
  const files: string[] = [];
  for (const ui of Object.values(outputs)) {
    for (const items of Object.values(ui)) {
      for (const item of items) {
        if (!item || typeof item !== 'object') continue;
        const { filename, subfolder, type } = item as { filename?: unknown; subfolder?: unknown; type?: unknown };
        if (typeof filename !== 'string') continue;
        const base = type === 'temp' ? host.paths.temp : type === 'input' ? host.paths.input : host.paths.output;
        files.push(join(base, typeof subfolder === 'string' ? subfolder : '', filename));
      }
    }
  }
  return files;
}

/** UI outputs that are plain text (ShowText-like nodes), as `Title #id: text` lines. */
function textOutputs(prompt: ApiPrompt, outputs: Record<string, Record<string, unknown[]>>): string[] {
  const lines: string[] = [];
  for (const [id, ui] of Object.entries(outputs)) {
    for (const [key, items] of Object.entries(ui)) {
      const texts = items.filter((item): item is string => typeof item === 'string');
      if (texts.length) lines.push(`${prompt[id]?.class_type ?? '?'} #${id} ${key}: ${texts.join(' | ')}`);
    }
  }
  return lines;
}

function hostOptions(command: Command): Command {
  return command
    .option('--custom-nodes <dir>', 'folder of node packs to load (default: ./custom_nodes)')
    .option('--no-custom-nodes', 'load only the built-in node packs')
    .option('--output-dir <dir>', 'where output images go (default: ./output)')
    .option('--input-dir <dir>', 'where input images are read from (default: ./input)')
    .option('--models-dir <dir>', 'where model folders are found (default: ./models)')
    .option(
      '--extra-model-paths-config <file>',
      "also find models where this ComfyUI extra_model_paths.yaml says (repeatable; the workspace root's extra_model_paths.yaml is read first when present)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('-v, --verbose', 'log debug messages');
}

export function buildProgram(): Command {
  const program = new Command('gategraph')
    .description('Validate and run ComfyUI-style diffusion workflows (API or UI format JSON) on onnxruntime.')
    .addHelpText(
      'after',
      '\nAlso: gategraph serve [options] (the server, as pnpm serve; --help for its options) and gategraph worker --redis <url>\n' +
        '(a worker of a Redis deployment, docs/scaling.md).\n' +
        '\nExit codes: 0 success, 1 a node failed while running, 2 invalid workflow, 64 usage error, 130 interrupted.',
    )
    .showHelpAfterError()
    // Before the subcommands are added: commander copies these settings into each one when it is created, so
    // a usage error in `run` or `validate` also reaches main() (exit 64) instead of exiting with 1 by itself.
    .exitOverride();

  hostOptions(
    program
      .command('run')
      .description('validate a workflow, run it with progress, and print the files it wrote')
      .argument('<workflow>', 'workflow JSON file (API format or saved from the editor)')
      .addOption(new Option('--outputs <ids...>', 'run only these output nodes (by id)'))
      .option('-q, --quiet', 'no progress display')
      .option('--json', 'print the result (status, UI outputs, files) as JSON on stdout')
      // ComfyUI's cache flags: a run is one prompt, so they matter for workflows that repeat a sub-graph.
      .option('--cache-classic', 'keep the last prompt\'s node results (the default)')
      .option('--cache-lru <n>', 'keep the n most recently used node results')
      .option('--cache-none', 'keep no node results between prompts')
      .option('--cache-ram [gb]', 'keep node results while more than gb GB of memory is free (default 4)'),
  ).action(runCommand);

  hostOptions(
    program
      .command('validate')
      .description('check a workflow against the installed nodes without running it')
      .argument('<workflow>', 'workflow JSON file'),
  ).action(async (file: string, options: HostFlags) => {
    const host = await openHost(options);
    const { validation } = await readAndValidate(file, host, options);
    const problems = describeValidation(validation);
    if (!validation.ok) throw new CliExit(EXIT.invalidWorkflow, `${file} is not a valid workflow:\n  ${problems.join('\n  ')}`);
    if (problems.length) console.error(`warning: some outputs will not run:\n  ${problems.join('\n  ')}`);
    console.log(`${file}: valid (${Object.keys(validation.prompt).length} nodes, outputs ${validation.outputs.join(', ')})`);
  });

  hostOptions(
    program
      .command('convert')
      .description('convert a UI-format workflow to the API format the server executes')
      .argument('<workflow>', 'workflow JSON file')
      .option('-o, --out <file>', 'write to a file instead of stdout'),
  ).action(async (file: string, options: HostFlags & { out?: string }) => {
    const host = await openHost(options);
    const { loaded } = await readAndValidate(file, host, options);
    const text = JSON.stringify(loaded.prompt, null, 2) + '\n';
    if (options.out) writeFileSync(options.out, text);
    else process.stdout.write(text);
  });

  hostOptions(
    program
      .command('nodes')
      .description('list the installed node classes, or print their object_info as JSON')
      .option('--json', 'print /object_info as JSON'),
  ).action(async (options: HostFlags & { json?: boolean }) => {
    const host = await openHost(options);
    const info = objectInfo(host.registry, { context: { paths: host.paths } });
    if (options.json) return void console.log(JSON.stringify(info, null, 2));
    const byCategory = new Map<string, string[]>();
    for (const [id, entry] of Object.entries(info)) {
      const list = byCategory.get(entry.category) ?? byCategory.set(entry.category, []).get(entry.category)!;
      list.push(entry.display_name && entry.display_name !== id ? `${id} (${entry.display_name})` : id);
    }
    for (const [category, ids] of [...byCategory].sort()) console.log(`${category || '(uncategorised)'}\n  ${ids.sort().join('\n  ')}`);
    for (const pack of host.packs.loaded) console.error(`pack ${pack.name}: ${pack.nodes.length} nodes`);
  });

  return program;
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it in-process. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CliExit) {
      console.error(error.message);
      return error.code;
    }
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    console.error(`gategraph: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return EXIT.runFailed;
  }
}
