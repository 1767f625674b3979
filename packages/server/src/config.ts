/**
 * Server settings: defaults, environment variables and command-line flags, resolved into one object.
 *
 * Precedence: explicit options (code or CLI flags) > environment (`HOST`, `PORT`, `GATEGRAPH_TOKEN`) > defaults.
 * The defaults are ComfyUI's where it has one (127.0.0.1:8188, 100 MiB uploads).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheOptionsFromFlags, type HostPaths, type OutputCacheOptions } from '@gategraph/core';
import { DEFAULT_MAX_HISTORY_BYTES } from './queue.ts';
import type { RedisDeploymentOptions } from './redis/api-instance.ts';

export interface ServerConfig {
  /** Address to bind. Loopback by default: anything else exposes the queue and files to the network. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Folders for generated images, uploads, previews and models. */
  paths: HostPaths;
  /** Where the queue and history log lives. */
  dataDir: string;
  /** Largest accepted upload, bytes (413 above). */
  maxUploadBytes: number;
  /** Largest accepted JSON body, bytes (413 above). Prompts carry the UI workflow, so this is generous. */
  maxBodyBytes: number;
  /** Largest accepted width or height of an uploaded image, pixels. */
  maxImageDimension: number;
  /** Largest accepted pixel count (width x height) of an uploaded image: a small file can declare huge sizes. */
  maxImagePixels: number;
  /** Uploads received at the same time; more get 503 with Retry-After. */
  maxConcurrentUploads: number;
  /** Deepest nesting of objects and arrays accepted in a JSON body (400 above). */
  maxJsonDepth: number;
  /** When set, every API route and the websocket require it (`Authorization: Bearer` or `?token=`). */
  token: string | undefined;
  /** Prompts run at the same time. One by default: the executor and its cache are shared. */
  workers: number;
  /** History entries kept (oldest dropped first), like ComfyUI's 10000. */
  maxHistory: number;
  /** Bytes of history kept (entries as stored, with their workflows), oldest dropped first. */
  maxHistoryBytes: number;
  /** Built editor files served at `/`; while they are missing, a page saying how to build them. */
  editorDir: string;
  /**
   * ComfyUI extra_model_paths.yaml files (`--extra-model-paths-config`), absolute, read after the workspace
   * root's `extra_model_paths.yaml`. The server hands them to the model pack through GATEGRAPH_EXTRA_MODEL_PATHS.
   */
  extraModelPathsConfig: string[];
  /**
   * A Redis deployment (`--redis`): the queue, history, job state and events live in Redis, prompts run on
   * `gategraph worker` processes (docs/scaling.md); undefined for the single-machine queue.
   */
  redis: RedisDeploymentOptions | undefined;
  /**
   * Bytes of model weights the open onnxruntime sessions may hold (`--session-memory`, env
   * GATEGRAPH_SESSION_MEMORY): within it a model's plain and TGATE graphs stay open together; undefined: 60 % of
   * the RAM (diffusion's SessionPool, "Memory budget").
   */
  sessionMemoryBytes: number | undefined;
}

export const DEFAULT_PORT = 8188;
export const DEFAULT_HOST = '127.0.0.1';

/** Everything in ServerConfig may be given; paths may be partial. */
export type ConfigInput = Partial<Omit<ServerConfig, 'paths'>> & { paths?: Partial<HostPaths> };

/** Fills defaults relative to the workspace root and reads `HOST`, `PORT`, `GATEGRAPH_TOKEN` from `env`. */
export function resolveConfig(root: string, input: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const port = input.port ?? (env.PORT !== undefined && env.PORT !== '' ? parsePort(env.PORT, 'PORT') : DEFAULT_PORT);
  const token = input.token ?? (env.GATEGRAPH_TOKEN || undefined);
  const paths = input.paths ?? {};
  return {
    host: input.host ?? (env.HOST || DEFAULT_HOST),
    port,
    paths: {
      output: resolve(paths.output ?? join(root, 'output')),
      input: resolve(paths.input ?? join(root, 'input')),
      temp: resolve(paths.temp ?? join(root, 'temp')),
      models: resolve(paths.models ?? join(root, 'models')),
    },
    dataDir: resolve(input.dataDir ?? join(root, '.gategraph', 'server')),
    maxUploadBytes: input.maxUploadBytes ?? 100 * 1024 * 1024,
    maxBodyBytes: input.maxBodyBytes ?? 32 * 1024 * 1024,
    maxImageDimension: input.maxImageDimension ?? 16384,
    maxJsonDepth: input.maxJsonDepth ?? 128,
    maxConcurrentUploads: input.maxConcurrentUploads ?? 4,
    maxImagePixels: input.maxImagePixels ?? 8192 * 8192,
    token: token === '' ? undefined : token,
    workers: Math.max(1, Math.floor(input.workers ?? 1)),
    maxHistory: Math.max(1, Math.floor(input.maxHistory ?? 10000)),
    maxHistoryBytes: Math.max(1, Math.floor(input.maxHistoryBytes ?? DEFAULT_MAX_HISTORY_BYTES)),
    editorDir: resolve(input.editorDir ?? defaultEditorDir(root)),
    extraModelPathsConfig: (input.extraModelPathsConfig ?? []).map((file) => resolve(file)),
    redis: input.redis ?? (env.GATEGRAPH_REDIS ? { url: env.GATEGRAPH_REDIS } : undefined),
    sessionMemoryBytes: input.sessionMemoryBytes,
  };
}

/** Workflows and settings kept by the server (ComfyUI's /userdata), in `<root>/user/default` next to the output folder. */
export function userDataDir(config: Pick<ServerConfig, 'paths'>): string {
  return join(dirname(config.paths.output), 'user', 'default');
}

/** Where the workspace's install builds the editor. */
export function defaultEditorDir(root: string): string {
  return resolve(root, 'packages', 'editor', 'dist');
}

/**
 * The README's install command for this workspace (`npx -y pnpm@<version> install`, the version pinned in the
 * root package.json's packageManager), which also builds the editor.
 */
export function workspaceInstallCommand(root: string): string {
  let pnpm = 'pnpm@10';
  try {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { packageManager?: unknown };
    if (typeof manifest.packageManager === 'string' && /^pnpm@[\w.+-]+$/.test(manifest.packageManager)) pnpm = manifest.packageManager.split('+')[0]!;
  } catch {
    // no readable manifest: the major version is still right
  }
  return `npx -y ${pnpm} install`;
}

function parsePort(text: string, what: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${what} must be a port number between 0 and 65535 (got ${JSON.stringify(text)})`);
  }
  return port;
}

function parseSize(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(text.trim());
  if (!match) throw new Error(`${what} must be a size like 100MB or 1048576 (got ${JSON.stringify(text)})`);
  const unit = (match[2] ?? 'b').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.floor(Number(match[1]) * factor);
}

function parsePositiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive whole number (got ${JSON.stringify(text)})`);
  return n;
}

export const CLI_USAGE = `Usage: pnpm serve [options]

Starts the gategraph server (ComfyUI-compatible API, queue, history, editor).

Options:
  --host <address>          address to bind (env HOST, default ${DEFAULT_HOST})
  --port <n>                port (env PORT, default ${DEFAULT_PORT}; 0 = any free port)
  --listen <address>        ComfyUI's spelling of --host (e.g. 0.0.0.0 for the network)
  --token <secret>          require this token on the API and websocket (env GATEGRAPH_TOKEN)
  --output-directory <dir>  generated images (default <root>/output)
  --input-directory <dir>   uploads (default <root>/input)
  --temp-directory <dir>    previews (default <root>/temp)
  --models-directory <dir>  models (default <root>/models)
  --extra-model-paths-config <file>
                            also find models where this ComfyUI extra_model_paths.yaml says;
                            repeatable (<root>/extra_model_paths.yaml is read when present)
  --data-directory <dir>    queue and history store (default <root>/.gategraph/server)
  --custom-nodes <dir>      user node packs (default <root>/custom_nodes)
  --pack <path>             also load this pack (folder or file); repeatable
  --max-upload-size <size>  largest upload, e.g. 100MB (default 100MB)
  --max-body-size <size>    largest JSON request body (default 32MB)
  --max-image-dimension <n> largest uploaded image width or height (default 16384)
  --max-image-pixels <n>    largest uploaded image width x height (default 67108864, 8192x8192)
  --max-json-depth <n>      deepest nesting of a JSON body (default 128)
  --max-concurrent-uploads <n> uploads received at once; more get 503 (default 4)
  --workers <n>             prompts run at the same time (default 1)
  --execution <where>       where nodes run: thread (default; the server stays responsive while a node
                            computes) or in-process (on the server's event loop)
  --max-history <n>         history entries kept (default 10000)
  --max-history-size <size> history kept in bytes, workflows included (default 256MB)
  --editor-dir <dir>        built editor files (default packages/editor/dist)
  --cache-classic           keep the last prompt's node results (the default, as ComfyUI)
  --cache-lru <n>           keep the n most recently used node results, from any prompt
  --cache-none              keep no node results between prompts (least memory)
  --cache-ram [gb]          keep node results while more than gb GB of memory is free (default 4)
  --session-memory <size>   model weights the open sessions may hold, e.g. 12GB (env GATEGRAPH_SESSION_MEMORY,
                            default 60 % of the RAM): within it a model's plain and TGATE graphs stay open
                            together, so switching between them costs nothing
  --redis <url>             keep the queue, history and events in Redis (env GATEGRAPH_REDIS), e.g.
                            redis://127.0.0.1:6379; prompts run on \`gategraph worker --redis <url>\` processes,
                            on this machine or others; several servers may share one Redis (docs/scaling.md)
  --redis-prefix <name>     prefix of every Redis key (default gategraph): deployments sharing a Redis differ here
  --shared-files            every server and worker sees the same output and input folders: files are not
                            copied through Redis
  --file-ttl <seconds>      how long files copied through Redis are kept (default 604800, 7 days)
  --lock-timeout <seconds>  the workers' lock: a prompt whose worker stops answering this long is recorded
                            as interrupted (default 30; give the workers the same value)
  -h, --help                show this help
`;

export interface CliOptions extends ConfigInput {
  customNodesDir?: string;
  extraPacks?: string[];
  /** The output cache ComfyUI's `--cache-*` flags ask for. */
  cache?: OutputCacheOptions;
  /** `--execution`: where nodes run (see StartServerOptions.execution). */
  execution?: 'thread' | 'in-process';
  help?: boolean;
}

/**
 * The flags `pnpm serve` and `gategraph worker` share: where things are (folders, packs), how nodes run (execution,
 * cache, session memory, workers) and the Redis deployment. Both parsers spread this into their option table.
 */
export const SHARED_FLAG_OPTIONS = {
  'output-directory': { type: 'string' },
  'input-directory': { type: 'string' },
  'temp-directory': { type: 'string' },
  'models-directory': { type: 'string' },
  'extra-model-paths-config': { type: 'string', multiple: true },
  'custom-nodes': { type: 'string' },
  pack: { type: 'string', multiple: true },
  workers: { type: 'string' },
  execution: { type: 'string' },
  'max-history': { type: 'string' },
  'cache-classic': { type: 'boolean' },
  'cache-lru': { type: 'string' },
  'cache-none': { type: 'boolean' },
  'cache-ram': { type: 'string' },
  'session-memory': { type: 'string' },
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
  'shared-files': { type: 'boolean' },
  'file-ttl': { type: 'string' },
  'lock-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type SharedFlagValues = { [K in keyof typeof SHARED_FLAG_OPTIONS]?: (typeof SHARED_FLAG_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof SHARED_FLAG_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** `--cache-ram` may stand alone (ComfyUI's optional value): give it the default so parseArgs sees a value. */
export function withCacheRamDefault(argv: readonly string[]): string[] {
  return argv.flatMap((arg, i) => (arg === '--cache-ram' && (i + 1 >= argv.length || argv[i + 1]!.startsWith('-')) ? [arg, 'default'] : [arg]));
}

/** What the shared flags set. Throws an Error whose message is meant for the user on a bad value. */
export function sharedFlagSettings(values: SharedFlagValues): CliOptions {
  const out: CliOptions = {};
  const paths: Partial<HostPaths> = {};
  if (values['output-directory']) paths.output = values['output-directory'];
  if (values['input-directory']) paths.input = values['input-directory'];
  if (values['temp-directory']) paths.temp = values['temp-directory'];
  if (values['models-directory']) paths.models = values['models-directory'];
  if (Object.keys(paths).length) out.paths = paths;
  if (values['extra-model-paths-config']?.length) out.extraModelPathsConfig = values['extra-model-paths-config'].map((p) => resolve(p));
  if (values['custom-nodes']) out.customNodesDir = values['custom-nodes'];
  if (values.pack?.length) out.extraPacks = values.pack.map((p) => resolve(p));
  if (values.workers) out.workers = parsePositiveInt(values.workers, '--workers');
  if (values.execution !== undefined) {
    if (values.execution !== 'thread' && values.execution !== 'in-process') {
      throw new Error(`--execution must be thread or in-process (got ${JSON.stringify(values.execution)})`);
    }
    out.execution = values.execution;
  }
  if (values['max-history']) out.maxHistory = parsePositiveInt(values['max-history'], '--max-history');
  const ram = values['cache-ram'];
  const cache = cacheOptionsFromFlags({
    ...(values['cache-classic'] ? { classic: true } : {}),
    ...(values['cache-lru'] !== undefined ? { lru: values['cache-lru'] } : {}),
    ...(values['cache-none'] ? { none: true } : {}),
    ...(ram !== undefined ? { ram: ram === 'default' ? true : ram } : {}),
  });
  if (cache) out.cache = cache;
  if (values['session-memory'] !== undefined) out.sessionMemoryBytes = parseSize(values['session-memory'], '--session-memory');
  const redis = redisOptionsFromFlags(values);
  if (redis) out.redis = redis;
  if (values.help) out.help = true;
  return out;
}

/** Parses `pnpm serve` flags. Throws an Error whose message is meant for the user on a bad flag. */
export function parseCliArgs(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: withCacheRamDefault(argv),
    strict: true,
    options: {
      ...SHARED_FLAG_OPTIONS,
      host: { type: 'string' },
      listen: { type: 'string' },
      port: { type: 'string' },
      token: { type: 'string' },
      'data-directory': { type: 'string' },
      'max-upload-size': { type: 'string' },
      'max-body-size': { type: 'string' },
      'max-image-dimension': { type: 'string' },
      'max-json-depth': { type: 'string' },
      'max-concurrent-uploads': { type: 'string' },
      'max-image-pixels': { type: 'string' },
      'max-history-size': { type: 'string' },
      'editor-dir': { type: 'string' },
    },
  });
  const out: CliOptions = sharedFlagSettings(values);
  const host = values.host ?? values.listen;
  if (host !== undefined) out.host = host;
  if (values.port !== undefined) out.port = parsePort(values.port, '--port');
  if (values.token !== undefined) out.token = values.token;
  if (values['data-directory']) out.dataDir = values['data-directory'];
  if (values['max-upload-size']) out.maxUploadBytes = parseSize(values['max-upload-size'], '--max-upload-size');
  if (values['max-body-size']) out.maxBodyBytes = parseSize(values['max-body-size'], '--max-body-size');
  if (values['max-image-pixels']) out.maxImagePixels = parsePositiveInt(values['max-image-pixels'], '--max-image-pixels');
  if (values['max-concurrent-uploads']) out.maxConcurrentUploads = parsePositiveInt(values['max-concurrent-uploads'], '--max-concurrent-uploads');
  if (values['max-json-depth']) out.maxJsonDepth = parsePositiveInt(values['max-json-depth'], '--max-json-depth');
  if (values['max-image-dimension']) {
    out.maxImageDimension = parsePositiveInt(values['max-image-dimension'], '--max-image-dimension');
  }
  if (values['max-history-size']) out.maxHistoryBytes = parseSize(values['max-history-size'], '--max-history-size');
  if (values['editor-dir']) out.editorDir = values['editor-dir'];
  return out;
}

/** The Redis flags shared by `serve` and `gategraph worker`; undefined without --redis (the others then refused). */
export function redisOptionsFromFlags(values: {
  redis?: string | undefined;
  'redis-prefix'?: string | undefined;
  'shared-files'?: boolean | undefined;
  'file-ttl'?: string | undefined;
  'lock-timeout'?: string | undefined;
}): RedisDeploymentOptions | undefined {
  const url = values.redis;
  const others = (['redis-prefix', 'shared-files', 'file-ttl', 'lock-timeout'] as const).filter((flag) => values[flag] !== undefined);
  if (url === undefined) {
    if (others.length) throw new Error(`--${others[0]} is a Redis setting: give --redis <url> too`);
    return undefined;
  }
  if (!/^rediss?:\/\//.test(url)) throw new Error(`--redis must be a redis:// or rediss:// URL (got ${JSON.stringify(url)})`);
  return {
    url,
    ...(values['redis-prefix'] !== undefined ? { prefix: values['redis-prefix'] } : {}),
    ...(values['shared-files'] ? { sharedFiles: true } : {}),
    ...(values['file-ttl'] !== undefined ? { fileTtlSeconds: parsePositiveInt(values['file-ttl'], '--file-ttl') } : {}),
    ...(values['lock-timeout'] !== undefined ? { lockSeconds: parsePositiveInt(values['lock-timeout'], '--lock-timeout') } : {}),
  };
}
