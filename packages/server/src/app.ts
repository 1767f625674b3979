/**
 * The HTTP routes of ComfyUI's API, each at `/<route>` and `/api/<route>`, with ComfyUI's JSON shapes and
 * status codes. Errors are JSON `{error: {type, message, ...}}` meant for people.
 */
import type { IncomingMessage } from 'node:http';
import { jsonKeepingNumberKinds } from './prompt-body.ts';
import { randomUUID } from 'node:crypto';
import { freemem, totalmem } from 'node:os';
import { mkdir, rm } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import {
  checkApiPrompt,
  checkPromptRequest,
  formatSchemaError,
  objectInfo,
  objectInfoEntry,
  validatePrompt,
  type ApiPrompt,
  type Logger,
  type NodeRegistry,
  type SchemaError,
  type WebExtension,
} from '@gategraph/core';
import { userDataDir, type ServerConfig } from './config.ts';
import { checkImageDimensions, FileRequestError, fileHead, resolveViewFile, saveUpload } from './files.ts';
import { DuplicatePromptIdError } from './queue.ts';
import type { QueueService } from './queue-service.ts';
import type { RedisFileStore } from './redis/file-store.ts';
import { normalizePaths, originCheck, requireToken } from './security.ts';
import type { QueueItem } from './store.ts';
import { userdataRouter } from './userdata.ts';
import { encodePreview, parsePreviewRequest, UnreadableImageError } from './view-preview.ts';
import { extractViewChannel, parseViewChannel } from './view-channel.ts';
import { peakResidentBytes } from './process-memory.ts';
import { isEditorFile, serveEditorFiles } from './editor-files.ts';
import { withoutServerPaths } from './client-text.ts';
import { sendJsonObject } from './json-stream.ts';
import { finishedJob, listJobs, parseJobsQuery, queuedJob } from './jobs.ts';

/** A UUID in canonical lowercase hyphenated form (ComfyUI's job ids). */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface AppContext {
  config: ServerConfig;
  registry: NodeRegistry;
  /** The queue, its history and its workers: in this process, or in Redis (queue-service.ts). */
  queue: QueueService;
  /** A Redis deployment without shared folders: uploads go to the workers and outputs come to /view through it. */
  files?: RedisFileStore;
  extensions: WebExtension[];
  logger: Logger;
  /** The command that builds the editor into `config.editorDir`, for the page shown while it is not built. */
  editorBuildCommand?: string;
}

/** A request error with a status; the error handler turns it into `{error: {type, message}}`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export function createApp(ctx: AppContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // As ComfyUI's routes: `/History` is not `/history`. Paths are normalized first (security.ts), so routing and
  // the token check agree on what a request names.
  app.set('case sensitive routing', true);
  app.use(normalizePaths());
  // No response is ever to be sniffed into another type (an uploaded "image" that is really HTML).
  app.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(originCheck());
  app.use(requireToken(ctx.config.token, (path) => isEditorFile(ctx.config.editorDir, path) || isExtensionFile(ctx.extensions, path)));

  const api = apiRouter(ctx);
  api.use(userdataRouter({ dir: userDataDir(ctx.config), maxBytes: ctx.config.maxBodyBytes }));
  app.use('/api', api);
  app.use(api);

  for (const extension of ctx.extensions) {
    app.use(extension.urlPrefix, express.static(extension.dir, { fallthrough: true, dotfiles: 'ignore' }));
  }
  serveEditorFiles(app, { dir: ctx.config.editorDir, buildCommand: ctx.editorBuildCommand });

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { type: 'not_found', message: `No route ${req.method} ${req.path}` } });
  });
  app.use(errorHandler(ctx.logger));
  return app;
}

function apiRouter(ctx: AppContext): express.Router {
  const { config, queue, registry, logger } = ctx;
  const router = express.Router({ caseSensitive: true });
  // ComfyUI's own example client posts JSON without a Content-Type (urllib), so parse any non-multipart body.
  const bodyOptions = {
    limit: config.maxBodyBytes,
    type: (req: IncomingMessage) => !String(req.headers['content-type'] ?? '').startsWith('multipart/'),
    // Checked on the raw bytes before parsing: a prompt nested thousands deep would be stored, then break
    // every later GET /history that serializes it.
    verify: (_req: IncomingMessage, _res: unknown, buffer: Buffer) => {
      const depth = jsonNestingDepth(buffer, config.maxJsonDepth);
      if (depth > config.maxJsonDepth) {
        throw Object.assign(new Error(`The request body is nested deeper than ${config.maxJsonDepth} levels (--max-json-depth)`), { type: 'json.too_deep' });
      }
    },
  };
  const json = express.json(bodyOptions);
  // A prompt keeps its number literals' kinds (1 vs 1.0) for nodes that validate their own inputs.
  const promptJson = jsonKeepingNumberKinds(bodyOptions);
  const body = (req: Request): Record<string, unknown> => {
    const value: unknown = req.body;
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new HttpError(400, 'invalid_request', 'The request body must be a JSON object');
    }
    return value as Record<string, unknown>;
  };
  router.get('/prompt', async (_req, res) => {
    res.json({ exec_info: { queue_remaining: await queue.remaining() } });
  });

  router.post('/prompt', promptJson, async (req, res) => {
    const request = body(req);
    if (request.prompt === undefined) {
      const error = promptError('no_prompt', 'No prompt provided: send {"prompt": {...API format...}}', 'No prompt provided');
      res.status(400).json({ error, node_errors: {} });
      return;
    }
    // The request's own fields first; the prompt is judged by validatePrompt, whose errors say more.
    const requestErrors = checkPromptRequest({ ...request, prompt: {} });
    if (requestErrors.length) {
      res.status(400).json({ error: schemaError('invalid_request', requestErrors), node_errors: {} });
      return;
    }
    const promptId = typeof request.prompt_id === 'string' ? request.prompt_id : randomUUID();
    if (await queue.has(promptId)) {
      res.status(400).json({ error: duplicateError(promptId), node_errors: {} });
      return;
    }
    const targets = request.partial_execution_targets as string[] | undefined;
    const result = await validatePrompt(request.prompt as ApiPrompt, registry, {
      ...(targets ? { outputs: targets } : {}),
      context: { paths: config.paths },
    });
    if (!result.ok) {
      res.status(400).json({ error: result.error, node_errors: result.nodeErrors });
      return;
    }
    // What validation normalised must still match the published API-format schema.
    const promptErrors = checkApiPrompt(result.prompt).map((e) => ({ ...e, path: `prompt.${e.path}` }));
    if (promptErrors.length) {
      res.status(400).json({ error: schemaError('invalid_prompt', promptErrors), node_errors: {} });
      return;
    }
    if (queue.closed) {
      res.status(503).json({ error: promptError('server_stopping', 'The server is shutting down; queue the prompt again once it is back', ''), node_errors: {} });
      return;
    }
    const extraData: Record<string, unknown> = { ...((request.extra_data as Record<string, unknown> | undefined) ?? {}) };
    if (typeof request.client_id === 'string') extraData.client_id = request.client_id;
    // As ComfyUI: when it was queued, in ms (the jobs API sorts by it).
    extraData.create_time = Date.now();
    let item: QueueItem;
    try {
      item = await queue.enqueue({
        promptId,
        prompt: result.prompt,
        extraData,
        outputs: result.outputs,
        ...(typeof request.number === 'number' ? { number: request.number } : {}),
        ...(request.front === true ? { front: true } : {}),
      });
    } catch (error) {
      if (error instanceof DuplicatePromptIdError) {
        res.status(400).json({ error: duplicateError(promptId), node_errors: {} });
        return;
      }
      throw error;
    }
    const invalid = Object.keys(result.nodeErrors);
    logger.info(
      `Queued prompt ${promptId} (#${item.number}, outputs ${result.outputs.join(', ')})` +
        (invalid.length ? `; not running invalid node(s) ${invalid.join(', ')}` : ''),
    );
    res.json({ prompt_id: promptId, number: item.number, node_errors: result.nodeErrors });
  });

  router.get('/queue', async (_req, res) => {
    const [running, pending] = await Promise.all([queue.running(), queue.pending()]);
    // Which worker runs each prompt: an extra key in extra_data's copy, where ComfyUI's clients ignore it.
    res.json({ queue_running: running.map((item) => queueTuple({ ...item, extraData: { ...item.extraData, worker: item.worker } })), queue_pending: pending.map(queueTuple) });
  });

  router.post('/queue', json, async (req, res) => {
    const request = body(req);
    const removed: string[] = [];
    if (request.clear !== undefined && typeof request.clear !== 'boolean') {
      throw new HttpError(400, 'invalid_request', '"clear" must be true or false');
    }
    if (request.clear === true) removed.push(...(await queue.clearPending()));
    if (request.delete !== undefined) removed.push(...(await queue.deletePending(stringList(request.delete, 'delete'))));
    res.json({ removed });
  });

  // ComfyUI's jobs API: the queue and the history as one list of jobs (jobs.ts).
  router.get('/jobs', async (req, res) => {
    const query = parseJobsQuery(req.query as Record<string, unknown>);
    if (typeof query === 'string') {
      res.status(400).json({ error: query });
      return;
    }
    const [running, pending, history] = await Promise.all([queue.running(), queue.pending(), queue.historyEntries()]);
    const { jobs, total } = listJobs({ running, pending, history }, query);
    res.json({ jobs, pagination: { offset: query.offset, limit: query.limit ?? null, total, has_more: query.offset + jobs.length < total } });
  });

  router.get('/jobs/:jobId', async (req, res) => {
    const id = String(req.params.jobId);
    const entry = await queue.historyEntry(id);
    const running = (await queue.running()).find((item) => item.promptId === id);
    const pending = (await queue.pending()).find((item) => item.promptId === id);
    const job = entry ? finishedJob(id, entry, true) : running ? queuedJob(running, 'in_progress', true) : pending ? queuedJob(pending, 'pending', true) : undefined;
    if (!job) {
      res.status(404).json({ error: 'Job not found' });
      return;
    }
    res.json(job);
  });

  /** Cancels a job whatever its state: a running one is interrupted, a pending one dequeued; true when either happened. */
  const cancelJob = async (id: string): Promise<boolean> => {
    if ((await queue.deletePending([id])).length > 0) return true;
    return queue.interrupt(id);
  };

  router.post('/jobs/cancel', json, async (req, res) => {
    const ids = body(req).job_ids;
    if (!Array.isArray(ids)) {
      res.status(400).json({ error: 'job_ids must be a list' });
      return;
    }
    const invalid = ids.filter((id) => typeof id !== 'string' || !CANONICAL_UUID.test(id));
    if (invalid.length) {
      res.status(400).json({ error: 'job_ids contains invalid id(s)', invalid_ids: invalid.map((id) => (typeof id === 'string' ? id : JSON.stringify(id))) });
      return;
    }
    let cancelled = false;
    for (const id of ids as string[]) cancelled = (await cancelJob(id)) || cancelled;
    res.json({ cancelled });
  });

  router.post('/jobs/:jobId/cancel', async (req, res) => {
    res.json({ cancelled: await cancelJob(String(req.params.jobId)) });
  });

  router.get('/history', async (req, res) => {
    const maxItems = optionalInt(req.query.max_items, 'max_items', 0);
    const offset = optionalInt(req.query.offset, 'offset', -1);
    await sendJsonObject(res, await queue.historyEntries(maxItems, offset ?? -1));
  });

  router.get('/history/:promptId', async (req, res) => {
    const id = String(req.params.promptId);
    const entry = await queue.historyEntry(id);
    res.json(entry ? { [id]: entry } : {});
  });

  router.post('/history', json, async (req, res) => {
    const request = body(req);
    if (request.clear === true) await queue.clearHistory();
    if (request.delete !== undefined) await queue.deleteHistory(stringList(request.delete, 'delete'));
    res.json({});
  });

  router.get('/object_info', (_req, res) => {
    res.json(
      objectInfo(registry, {
        context: { paths: config.paths },
        onError: (id, error) => logger.warn(`object_info: ${id} left out: ${String(error)}`),
      }),
    );
  });

  router.get('/object_info/:nodeClass', (req, res) => {
    const id = String(req.params.nodeClass);
    const definition = registry.get(id);
    res.json(definition ? { [id]: objectInfoEntry(definition, registry.sourceOf(id), { paths: config.paths }) } : {});
  });

  router.get('/view', async (req, res) => {
    const query = { filename: queryString(req.query.filename), subfolder: queryString(req.query.subfolder), type: queryString(req.query.type) };
    await ctx.files?.materializeForView(query);
    const file = await resolveViewFile(config.paths, query);
    // Files of this server's folders are the users' (uploads, outputs of any node): shown inline only when they
    // are raster images, and even then in a sandbox with no script; anything else (HTML, SVG, text) downloads.
    const inline = INLINE_VIEW_TYPES.has(extname(file).toLowerCase());
    res.setHeader('Content-Disposition', `${inline ? 'inline' : 'attachment'}; ${contentDisposition(basename(file))}`);
    res.setHeader('Content-Security-Policy', "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox");
    // Like ComfyUI, `?preview` with any value (even empty) asks for a re-encoded copy; a repeated key counts once.
    const preview = firstQueryValue(req.query.preview);
    if (preview !== undefined) {
      const request = parsePreviewRequest(preview, firstQueryValue(req.query.channel));
      const encoded = await encodePreview(file, basename(file), request).catch(asInvalidImage);
      res.type(encoded.contentType).send(encoded.body);
      return;
    }
    const channel = parseViewChannel(firstQueryValue(req.query.channel));
    if (channel !== undefined) {
      const png = await extractViewChannel(file, basename(file), channel).catch(asInvalidImage);
      res.type('image/png').send(png);
      return;
    }
    if (!inline) res.type('application/octet-stream');
    await new Promise<void>((resolve, reject) =>
      res.sendFile(file, { dotfiles: 'allow', maxAge: 0 }, (error) => (error && !res.headersSent ? reject(error) : resolve())),
    );
  });

  // Uploads are streamed to disk (the temp folder), never held in memory whole, and only so many are received
  // at once: eight 99 MiB uploads in parallel must not take 800 MB.
  const uploadDir = join(config.paths.temp, '.uploads');
  const upload = multer({
    storage: multer.diskStorage({
      destination: (_req, _file, done) => mkdir(uploadDir, { recursive: true }).then(() => done(null, uploadDir), (error: Error) => done(error, uploadDir)),
      filename: (_req, _file, done) => done(null, `${randomUUID()}.part`),
    }),
    limits: { fileSize: config.maxUploadBytes, files: 1, fields: 16, fieldSize: 64 * 1024 },
    defParamCharset: 'utf8',
    // Keep the client's name as sent, so a name with a path is refused (400) rather than silently cut.
    preservePath: true,
  });
  const receiveImage = upload.single('image');
  // A malformed multipart body is the client's fault (400), not a server error.
  let uploadsInFlight = 0;
  const parseUpload = (req: Request, res: Response, next: NextFunction) => {
    if (uploadsInFlight >= config.maxConcurrentUploads) {
      res.setHeader('Retry-After', '1');
      return void next(new HttpError(503, 'busy', `${uploadsInFlight} uploads are being received; send this one again in a moment (--max-concurrent-uploads)`));
    }
    uploadsInFlight++;
    let released = false;
    const release = () => {
      if (!released) uploadsInFlight--;
      released = true;
    };
    res.once('close', release);
    receiveImage(req, res, (error?: unknown) => {
      if (error && !(error instanceof multer.MulterError)) {
        next(new HttpError(400, 'invalid_request', `The upload is not valid multipart/form-data: ${(error as Error).message}`));
      } else next(error);
    });
  };
  router.post('/upload/image', parseUpload, async (req, res) => {
    const file = req.file;
    if (!file) {
      throw new HttpError(400, 'invalid_request', 'Send the image as multipart/form-data in a field named "image"');
    }
    let saved;
    try {
      const fields = (req.body ?? {}) as Record<string, unknown>;
      checkImageDimensions(await fileHead(file.path), config.maxImageDimension, JSON.stringify(file.originalname), config.maxImagePixels);
      const overwrite = fields.overwrite === 'true' || fields.overwrite === '1';
      saved = await saveUpload({
        paths: config.paths,
        filename: file.originalname,
        file: file.path,
        subfolder: typeof fields.subfolder === 'string' ? fields.subfolder : '',
        type: typeof fields.type === 'string' ? fields.type : 'input',
        overwrite,
      });
    } finally {
      await rm(file.path, { force: true });
    }
    // The workers of a Redis deployment read it from there.
    if (ctx.files) await ctx.files.put(saved.type, saved.subfolder, saved.name);
    res.json(saved);
  });

  router.post('/interrupt', json, async (req, res) => {
    const request = body(req);
    const promptId = request.prompt_id;
    if (promptId !== undefined && typeof promptId !== 'string') {
      throw new HttpError(400, 'invalid_request', '"prompt_id" must be a string');
    }
    const interrupted = await queue.interrupt(promptId);
    if (interrupted) logger.info(`Interrupted ${promptId ? `prompt ${promptId}` : 'the running prompt'}`);
    else if (promptId) logger.info(`Interrupt for prompt ${promptId} ignored: it is not running`);
    res.json({ interrupted });
  });

  // As ComfyUI: the request sets flags; the cache is emptied and the models unloaded between prompts, never under
  // a running sampler (memory-actions.ts).
  router.post('/free', json, async (req, res) => {
    const request = body(req);
    await queue.free({ freeMemory: request.free_memory === true, unloadModels: request.unload_models === true });
    res.json({});
  });

  router.get('/system_stats', async (_req, res) => {
    const memory = process.memoryUsage();
    const workers = await queue.workers();
    res.json({
      system: {
        os: process.platform,
        ram_total: totalmem(),
        ram_free: freemem(),
        comfyui_version: 'gategraph',
        python_version: `node ${process.version}`,
        pytorch_version: '',
        embedded_python: false,
        argv: process.argv.slice(1),
        node_version: process.version,
        rss: memory.rss,
        /** Peak resident memory of the server process since start, bytes. */
        rss_peak: peakResidentBytes(),
      },
      devices: [
        { name: 'cpu', type: 'cpu', index: 0, vram_total: totalmem(), vram_free: freemem(), torch_vram_total: 0, torch_vram_free: 0 },
      ],
      // Not ComfyUI's: the workers that run prompts (this process's, or every machine's in a Redis deployment).
      workers,
    });
  });

  router.get('/extensions', (_req, res) => {
    res.json(ctx.extensions.flatMap((ext) => ext.files.map((file) => ext.urlPrefix + file.split('/').map(encodeURIComponent).join('/'))));
  });

  return router;
}

/** File types /view shows inline (raster images); everything else is sent as a download. */
const INLINE_VIEW_TYPES: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.avif']);

/** Whether a (normalized) path is one of the files a pack's web extension serves (`/extensions/<pack>/<file>`). */
function isExtensionFile(extensions: readonly WebExtension[], path: string): boolean {
  for (const extension of extensions) {
    if (!path.startsWith(extension.urlPrefix)) continue;
    let file: string;
    try {
      file = decodeURIComponent(path.slice(extension.urlPrefix.length));
    } catch {
      return false;
    }
    if (extension.files.includes(file)) return true;
  }
  return false;
}

/** ComfyUI's queue entry: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`. */
function queueTuple(item: QueueItem): [number, string, ApiPrompt, Record<string, unknown>, string[]] {
  return [item.number, item.promptId, item.prompt, item.extraData, item.outputs];
}

/** `filename="..."` as ComfyUI sends it, plus RFC 5987 `filename*` so non-ASCII names survive. */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function promptError(type: string, message: string, details: string, extra_info: Record<string, unknown> = {}) {
  return { type, message, details, extra_info };
}

function schemaError(type: 'invalid_request' | 'invalid_prompt', errors: SchemaError[]) {
  const lines = errors.map(formatSchemaError);
  const shown = lines.slice(0, 5).join('; ') + (lines.length > 5 ? ` (and ${lines.length - 5} more)` : '');
  const what = type === 'invalid_prompt' ? 'The prompt is not valid API format' : 'The request body is not a valid prompt request';
  return promptError(type, `${what}: ${shown}`, lines.join('\n'), { errors });
}

function duplicateError(promptId: string) {
  return promptError(
    'duplicate_prompt_id',
    `prompt_id "${promptId}" is already used by a queued or finished prompt; send a new unique id (e.g. a UUID) or leave prompt_id out`,
    promptId,
  );
}

function stringList(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new HttpError(400, 'invalid_request', `"${name}" must be a list of prompt ids`);
  }
  return value as string[];
}

function queryString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The first value of a query key that may be repeated (`?a=1&a=2`), as aiohttp's `query[key]` reads it. */
/** A /view file sharp cannot read is the client's 400 `invalid_image`; anything else stays a server error. */
function asInvalidImage(error: unknown): never {
  throw error instanceof UnreadableImageError ? new HttpError(400, 'invalid_image', error.message) : error;
}

function firstQueryValue(value: unknown): string | undefined {
  return queryString(Array.isArray(value) ? value[0] : value);
}

function optionalInt(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < min) {
    throw new HttpError(400, 'invalid_request', `${name} must be a whole number${min >= 0 ? ` of at least ${min}` : ''} (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** File-system errors that a request's path causes (not the server's fault), as the status a client can act on. */
const FILE_SYSTEM_ERRORS: Record<string, { status: number; type: string; message: string }> = {
  EISDIR: { status: 409, type: 'conflict', message: 'the path names a folder, not a file' },
  ENOTDIR: { status: 409, type: 'conflict', message: 'a part of the path is a file, not a folder' },
  EEXIST: { status: 409, type: 'conflict', message: 'something else already exists at that path' },
  ENAMETOOLONG: { status: 400, type: 'bad_path', message: 'a name in the path is too long for the file system' },
};

/**
 * How deep a JSON text nests (objects and arrays), counted on its bytes; stops counting past `limit`.
 * Brackets inside strings do not count.
 */
export function jsonNestingDepth(bytes: Uint8Array, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (inString) {
      if (byte === 0x5c) i++; // backslash: skip the escaped character
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) {
      depth++;
      if (depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (byte === 0x7d || byte === 0x5d) depth--;
  }
  return deepest;
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) {
      res.end();
      return;
    }
    const send = (status: number, type: string, message: string) => res.status(status).json({ error: { type, message } });
    if (error instanceof HttpError) return void send(error.status, error.type, error.message);
    if (error instanceof FileRequestError) {
      return void send(error.status, error.status === 404 ? 'not_found' : error.status === 413 ? 'too_large' : 'bad_path', error.message);
    }
    if (error instanceof multer.MulterError) {
      if (error.code === 'LIMIT_FILE_SIZE') {
        return void send(413, 'too_large', `The upload is larger than the server's limit (--max-upload-size); the file was not saved`);
      }
      return void send(400, 'invalid_request', `Bad upload: ${error.message}${error.field ? ` (field "${error.field}")` : ''}`);
    }
    const bodyError = error as BodyParserError;
    if (bodyError.type === 'entity.too.large') {
      return void send(413, 'body_too_large', `The request body is larger than the server's limit of ${bodyError.limit} bytes (--max-body-size)`);
    }
    if (bodyError.type === 'json.too_deep') {
      return void send(400, 'too_deep', bodyError.message);
    }
    if (bodyError.type === 'entity.parse.failed') {
      return void send(400, 'invalid_json', `The request body is not valid JSON: ${bodyError.message}`);
    }
    if (typeof bodyError.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      return void send(bodyError.status, 'invalid_request', bodyError.message);
    }
    const code = (error as NodeJS.ErrnoException)?.code;
    const fsError = code ? FILE_SYSTEM_ERRORS[code] : undefined;
    if (fsError) return void send(fsError.status, fsError.type, `${req.method} ${req.path}: ${fsError.message}`);
    logger.error(`${req.method} ${req.path} failed: ${(error as Error)?.stack ?? String(error)}`);
    // The client gets the error without the server's folders in it; the log above has everything.
    send(500, 'server_error', `Internal error: ${withoutServerPaths((error as Error)?.message ?? String(error))} (the server's log has the details)`);
  };
}
