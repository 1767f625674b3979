/**
 * Test fixtures: small real nodes (a constant, a slow sampler-like node with per-step progress and previews,
 * an output node that writes a real PNG, a failing node), a server on 127.0.0.1:0 in a temporary folder, and a
 * websocket client that records what it receives.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import WebSocket from 'ws';
import { combo, defineNode, findWorkspaceRoot, int, NodeInputError, NodeRegistry, silentLogger, socket, string, type ApiPrompt } from '@gategraph/core';
import { startServer, type GategraphServer, type StartServerOptions } from '../src/index.ts';

/** An RGB PNG file with this header and these (already deflated) image data bytes. */
export function rgbPng(width: number, height: number, imageData: Buffer): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', imageData),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A valid RGB PNG of `width` x `height` filled with a colour derived from `seed`. */
export function makePng(width: number, height: number, seed: number): Buffer {
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([(seed * 37 + x) & 255, (seed * 11 + y) & 255, seed & 255], 1 + x * 3);
    rows.push(row);
  }
  return rgbPng(width, height, deflateSync(Buffer.concat(rows)));
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Steps of TestSlow that actually ran, by prompt id: lets a test check how far an interrupted run got. */
export const slowStepsRun = new Map<string, number>();

export function testRegistry(): NodeRegistry {
  const registry = new NodeRegistry();
  registry.register(
    defineNode({
      id: 'TestConstant',
      category: 'test',
      inputs: { value: int({ default: 1, min: 0, max: 1000 }) },
      outputs: [{ type: 'INT' }],
      execute: (inputs) => [inputs.value] as [number],
    }),
  );
  registry.register(
    defineNode({
      id: 'TestSlow',
      category: 'test',
      description: 'Sleeps per step, reports progress with a PNG preview, stops at the next step when interrupted.',
      inputs: {
        value: socket('INT'),
        steps: int({ default: 3, min: 1, max: 1000 }),
        step_ms: int({ default: 5, min: 0, max: 10000 }),
        previews: combo(['none', 'png', 'large'], { default: 'none' }),
      },
      outputs: [{ type: 'INT' }],
      async execute(inputs, ctx) {
        const preview =
          inputs.previews === 'png'
            ? { format: 'PNG' as const, data: makePng(4, 4, inputs.value) }
            : inputs.previews === 'large'
              ? { format: 'JPEG' as const, data: Buffer.alloc(512 * 1024, inputs.value) }
              : undefined;
        for (let step = 1; step <= inputs.steps; step++) {
          await sleep(inputs.step_ms, ctx.signal);
          ctx.throwIfAborted();
          slowStepsRun.set(ctx.promptId, step);
          ctx.progress(step, inputs.steps, preview);
        }
        return [inputs.value] as [number];
      },
    }),
  );
  registry.register(
    defineNode({
      id: 'TestSaveImage',
      category: 'test',
      outputNode: true,
      inputs: { value: socket('INT'), filename_prefix: string({ default: 'test' }) },
      outputs: [],
      execute(inputs, ctx) {
        const prefix = inputs.filename_prefix;
        // ComfyUI's counter convention: <prefix>_<5-digit counter>_.png, never overwriting.
        const taken = readdirSync(ctx.paths.output).filter((f) => f.startsWith(`${prefix}_`)).length;
        const filename = `${prefix}_${String(taken + 1).padStart(5, '0')}_.png`;
        writeFileSync(join(ctx.paths.output, filename), makePng(8, 8, inputs.value), { flag: 'wx' });
        return { outputs: [], ui: { images: [{ filename, subfolder: '', type: 'output' }] } };
      },
    }),
  );
  registry.register(
    defineNode({
      id: 'TestWait',
      category: 'test',
      description: 'Waits (a timer, like a node waiting for a remote service): runs alongside other nodes.',
      concurrent: true,
      inputs: { value: socket('INT'), ms: int({ default: 100, min: 0, max: 10000 }) },
      outputs: [{ type: 'INT' }],
      async execute(inputs, ctx) {
        await sleep(inputs.ms, ctx.signal);
        return [inputs.value] as [number];
      },
    }),
  );
  registry.register(
    defineNode({
      id: 'TestExpandSave',
      category: 'test',
      description: 'Expands into TestSlow -> TestSaveImage (an output node of the expansion) and outputs the slow value.',
      inputs: { value: socket('INT') },
      outputs: [{ type: 'INT' }],
      execute(inputs, ctx) {
        const graph = ctx.graph();
        const slow = graph.node('TestSlow', { value: inputs.value, steps: 2, step_ms: 5, previews: 'none' });
        graph.node('TestSaveImage', { value: slow.out(0), filename_prefix: 'expanded' });
        return { outputs: [slow.out(0)], expand: graph.finalize() };
      },
    }),
  );
  registry.register(
    defineNode({
      id: 'TestFail',
      category: 'test',
      outputNode: true,
      inputs: { value: socket('INT') },
      outputs: [],
      execute(inputs) {
        throw new NodeInputError(`TestFail always fails (value ${inputs.value})`, 'value');
      },
    }),
  );
  return registry;
}

/** const -> slow -> save; `seed` changes the constant so the prompt is not cached. */
export function slowPrompt(seed: number, steps = 3, stepMs = 5, previews: 'none' | 'png' | 'large' = 'none'): ApiPrompt {
  return {
    '1': { class_type: 'TestConstant', inputs: { value: seed } },
    '2': { class_type: 'TestSlow', inputs: { value: ['1', 0], steps, step_ms: stepMs, previews } },
    '3': { class_type: 'TestSaveImage', inputs: { value: ['2', 0], filename_prefix: 'img' } },
  };
}

export interface TestServer extends GategraphServer {
  dir: string;
  /** Stops the server and removes its folder. */
  dispose(): Promise<void>;
}

/** Options of a test server on 127.0.0.1 with a free port, the test nodes, and every folder inside `dir`. */
export function testServerOptions(dir: string): StartServerOptions {
  return {
    root: dir,
    host: '127.0.0.1',
    port: 0,
    env: {},
    registry: testRegistry(),
    logger: silentLogger,
    paths: { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(dir, 'models') },
    dataDir: join(dir, 'data'),
    editorDir: join(dir, 'no-editor'),
  };
}

/** The workspace root of this checkout (where `models/`, `workflows/` and the packs are). */
export const workspaceRoot = findWorkspaceRoot(fileURLToPath(new URL('.', import.meta.url)));

/**
 * Options of a server like `pnpm serve` (the workspace packs, the workspace `models/` folder), on 127.0.0.1
 * with a free port, but writing only inside `dir` and without the user's `custom_nodes/`.
 */
export function workspaceServerOptions(dir: string): StartServerOptions {
  return {
    root: workspaceRoot,
    host: '127.0.0.1',
    port: 0,
    env: {},
    logger: silentLogger,
    customNodesDir: false,
    paths: { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(workspaceRoot, 'models') },
    dataDir: join(dir, 'data'),
    editorDir: join(dir, 'no-editor'),
  };
}

export interface ChildServerOptions {
  /** Load the workspace packs and models (`workspaceServerOptions`) instead of the test nodes. */
  workspace?: boolean;
}

/**
 * A server in its own process (fixtures/child-server.ts), for tests that kill it or measure its memory: the
 * test nodes by default, the real packs and models with `workspace`. Resolves once it prints its URL.
 */
export async function spawnChildServer(dir: string, options: ChildServerOptions = {}): Promise<{ child: ChildProcessWithoutNullStreams; url: string }> {
  const args = ['--import', 'tsx', fileURLToPath(new URL('./fixtures/child-server.ts', import.meta.url)), dir, ...(options.workspace ? ['--workspace'] : [])];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  }) as unknown as ChildProcessWithoutNullStreams;
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += String(chunk);
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`child server exited with ${code}`)));
  });
  return { child, url };
}

/** A server on 127.0.0.1 with a free port, all folders in a new temporary directory (or `dir`). */
export async function startTestServer(options: StartServerOptions & { dir?: string } = {}): Promise<TestServer> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'gg-server-'));
  const server = await startServer({ ...testServerOptions(dir), ...options });
  return {
    ...server,
    dir,
    async dispose() {
      await server.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WsMessage {
  type: string;
  data: Record<string, any>;
}

/** A websocket client that keeps every text message and binary frame it receives. */
export class TestClient {
  readonly messages: WsMessage[] = [];
  readonly binary: Buffer[] = [];
  readonly #waiters: Array<{ test: (m: WsMessage) => boolean; resolve: (m: WsMessage) => void }> = [];

  private constructor(
    readonly ws: WebSocket,
    readonly clientId: string,
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binary.push(data as Buffer);
        return;
      }
      const message = JSON.parse(String(data)) as WsMessage;
      this.messages.push(message);
      for (const waiter of [...this.#waiters]) {
        if (waiter.test(message)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(message);
        }
      }
    });
  }

  static async connect(baseUrl: string, clientId: string, query = ''): Promise<TestClient> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws?clientId=${encodeURIComponent(clientId)}${query}`);
    const client = new TestClient(ws, clientId);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await client.waitFor((m) => m.type === 'status' && m.data.sid !== undefined);
    return client;
  }

  /** Resolves with the first message (already received or future) matching `test`. */
  waitFor(test: (m: WsMessage) => boolean, timeoutMs = 10_000): Promise<WsMessage> {
    const seen = this.messages.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a message on ${this.clientId}`)), timeoutMs);
      this.#waiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Waits for ComfyUI's "prompt done" message: `executing` with `node: null` for the prompt. */
  done(promptId: string, timeoutMs?: number): Promise<WsMessage> {
    return this.waitFor((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === promptId, timeoutMs);
  }

  ofPrompt(promptId: string): WsMessage[] {
    return this.messages.filter((m) => m.data?.prompt_id === promptId);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(url, { headers });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

/** Polls until `check` returns true (for state reached without a websocket message). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Reads a PNG the way a client checks one: signature, chunk CRCs, IHDR size and the tEXt chunks (Latin-1
 * `keyword\0text`). Throws on anything that is not a well-formed PNG.
 */
export function readPngInfo(bytes: Uint8Array): { width: number; height: number; text: Record<string, string> } {
  const png = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (png.length < 8 || !png.subarray(0, 8).equals(signature)) throw new Error('not a PNG: the signature is missing');
  let width = -1;
  let height = -1;
  const text: Record<string, string> = {};
  let offset = 8;
  let ended = false;
  while (offset + 12 <= png.length && !ended) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > png.length) throw new Error(`PNG chunk ${type} runs past the end of the file`);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (crc32(png.subarray(offset + 4, offset + 8 + length)) !== png.readUInt32BE(offset + 8 + length)) {
      throw new Error(`PNG chunk ${type} has a bad CRC`);
    }
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    } else if (type === 'tEXt') {
      const nul = data.indexOf(0);
      text[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
    } else if (type === 'IEND') ended = true;
    offset = end;
  }
  if (width < 0 || !ended) throw new Error('not a complete PNG: IHDR or IEND is missing');
  return { width, height, text };
}
