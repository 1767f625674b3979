/**
 * End to end, the way API scripters drive ComfyUI: the minimal client of ComfyUI's
 * `script_examples/websockets_api_example.py`, step by step, against a real server on loopback that loads the
 * packs the product ships (packages/nodes-tgate) and the embedded model (models/tiny-sd), running
 * workflows/default.json and workflows/tgate.json unchanged.
 *
 * The client does what the example does and nothing more clever: one socket opened with `?clientId=<uuid>`
 * before queueing, `POST /prompt {prompt, client_id, prompt_id}`, a read loop over every frame that skips the
 * binary ones (latent previews) and stops at `executing` with `node: null` for its prompt, then
 * `GET /history/<id>` and `GET /view` for each image. Along the way it checks the messages a client relies on.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { findWorkspaceRoot, silentLogger, type ApiPrompt } from '@gategraph/core';
import { startServer, type GategraphServer } from '../src/index.ts';
import { getJson, postJson, readPngInfo, type WsMessage } from './helpers.ts';

const root = findWorkspaceRoot(fileURLToPath(new URL('.', import.meta.url)));
const modelDir = join(root, 'models', 'tiny-sd');
const noModel = existsSync(join(modelDir, 'unet', 'model.onnx')) ? undefined : `the embedded model is missing (${modelDir}/unet/model.onnx)`;

/** Generous for a ~1 s run on a shared 2-core machine, short enough that a lost message fails fast. */
const MESSAGE_TIMEOUT_MS = 60_000;

function readWorkflow(name: string): any {
  return JSON.parse(readFileSync(join(root, 'workflows', name), 'utf8'));
}

/**
 * The example's client: frames are read in order, one at a time (`recv`), from a socket opened before the
 * prompt is queued, so nothing the server sends for the prompt can be missed.
 */
class ExampleClient {
  readonly #frames: Array<string | Buffer> = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(
    readonly ws: WebSocket,
    readonly clientId: string,
  ) {
    ws.on('message', (data, isBinary) => {
      this.#frames.push(isBinary ? (data as Buffer) : String(data));
      this.#wake?.();
    });
    ws.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static async connect(baseUrl: string): Promise<ExampleClient> {
    const clientId = randomUUID();
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
    const client = new ExampleClient(ws, clientId);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** The next frame; `waitingFor` names what the caller expects, for the failure message. */
  async recv(waitingFor: string, timeoutMs = MESSAGE_TIMEOUT_MS): Promise<string | Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.#closed) throw new Error(`the websocket closed while waiting for ${waitingFor}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${waitingFor}: no further websocket message came`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    return this.#frames.shift()!;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

interface ViewedImage {
  node: string;
  ref: { filename: string; subfolder: string; type: string };
  contentType: string | null;
  bytes: Buffer;
}

interface ExampleRun {
  promptId: string;
  /** Text messages read until (and including) the final `executing {node: null}`, in order. */
  messages: WsMessage[];
  /** Binary frames skipped on the way, as the example skips them. */
  binary: Buffer[];
  history: any;
  images: ViewedImage[];
}

/** websockets_api_example.py's `get_images`, with the client choosing the prompt id. */
async function runLikeTheExample(
  baseUrl: string,
  client: ExampleClient,
  prompt: ApiPrompt,
  extraData: Record<string, unknown> = {},
): Promise<ExampleRun> {
  const promptId = randomUUID();
  const queued = await postJson(`${baseUrl}/prompt`, { prompt, client_id: client.clientId, prompt_id: promptId, extra_data: extraData });
  assert.equal(queued.status, 200, `POST /prompt was refused: ${JSON.stringify(queued.json)}`);
  assert.equal(queued.json.prompt_id, promptId, 'the server keeps the prompt_id the client chose');
  assert.deepEqual(queued.json.node_errors, {});

  const messages: WsMessage[] = [];
  const binary: Buffer[] = [];
  let last = 'nothing yet';
  for (;;) {
    const out = await client.recv(`"executing" with node null for prompt ${promptId} (last message: ${last})`);
    if (typeof out !== 'string') {
      binary.push(out); // previews are binary data
      continue;
    }
    const message = JSON.parse(out) as WsMessage;
    messages.push(message);
    last = `${message.type} ${JSON.stringify(message.data).slice(0, 200)}`;
    if (message.type === 'executing' && message.data.node === null && message.data.prompt_id === promptId) break;
  }

  const historyResponse = await getJson(`${baseUrl}/history/${promptId}`);
  assert.equal(historyResponse.status, 200);
  const history = historyResponse.json[promptId];
  assert.ok(history, `GET /history/${promptId} has the prompt once "executing" null has arrived: ${JSON.stringify(historyResponse.json)}`);

  const images: ViewedImage[] = [];
  for (const [node, output] of Object.entries(history.outputs as Record<string, { images?: ViewedImage['ref'][] }>)) {
    for (const ref of output.images ?? []) {
      const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder, type: ref.type });
      const response = await fetch(`${baseUrl}/view?${query}`);
      assert.equal(response.status, 200, `GET /view?${query} answered ${response.status}`);
      images.push({ node, ref, contentType: response.headers.get('content-type'), bytes: Buffer.from(await response.arrayBuffer()) });
    }
  }
  return { promptId, messages, binary, history, images };
}

function nodeOfClass(prompt: ApiPrompt, classType: string): string {
  const id = Object.keys(prompt).find((key) => prompt[key]!.class_type === classType);
  assert.ok(id, `the workflow has a ${classType} node`);
  return id;
}

/** The checks every run of a text-to-image workflow must pass, whatever its graph. */
function assertClientContract(run: ExampleRun, prompt: ApiPrompt, extraPngInfo?: Record<string, unknown>): void {
  const { promptId, messages, history } = run;
  const ofPrompt = messages.filter((m) => m.data?.prompt_id === promptId);
  const types = ofPrompt.map((m) => m.type);
  const samplerId = nodeOfClass(prompt, 'KSampler');
  const saveId = nodeOfClass(prompt, 'SaveImage');
  const latent = prompt[nodeOfClass(prompt, 'EmptyLatentImage')]!.inputs as { width: number; height: number; batch_size: number };
  const steps = (prompt[samplerId]!.inputs as { steps: number }).steps;

  assert.ok(types.includes('execution_start'), `execution_start was sent (got ${types.join(', ')})`);
  assert.ok(types.indexOf('execution_start') < types.indexOf('execution_success'), 'execution_start comes before execution_success');
  assert.ok(!types.includes('execution_error') && !types.includes('execution_interrupted'), `the prompt ran cleanly: ${JSON.stringify(ofPrompt.find((m) => m.type === 'execution_error')?.data)}`);
  assert.equal(types.at(-1), 'executing', 'the last message of the prompt is executing {node: null}');
  assert.ok(types.indexOf('execution_success') < types.length - 1, 'execution_success comes before the final executing {node: null}');

  const executingNodes = ofPrompt.filter((m) => m.type === 'executing' && m.data.node !== null).map((m) => m.data.node as string);
  assert.ok(executingNodes.includes(samplerId) && executingNodes.includes(saveId), `executing was announced for the sampler and the saver (got ${executingNodes.join(', ')})`);

  const progress = ofPrompt.filter((m) => m.type === 'progress' && m.data.node === samplerId).map((m) => m.data as { value: number; max: number });
  assert.ok(progress.length > 0, `progress messages came for the KSampler node ${samplerId}`);
  assert.ok(progress.every((p) => p.max === steps), `progress max is the step count ${steps}: ${JSON.stringify(progress)}`);
  assert.deepEqual(
    progress.map((p) => p.value),
    [...progress.map((p) => p.value)].sort((a, b) => a - b),
    'progress values never go backwards',
  );
  assert.equal(progress.at(-1)?.value, steps, 'the sampler progress reaches max');

  const executed = ofPrompt.filter((m) => m.type === 'executed' && m.data.node === saveId);
  assert.equal(executed.length, 1, `one executed message for the SaveImage node ${saveId}`);
  assert.deepEqual(executed[0]!.data.output.images, history.outputs[saveId].images, 'executed carries the same images as the history');

  // What the example skips still has ComfyUI's framing: u32 event 1 (preview image), u32 format 1 JPEG / 2 PNG.
  for (const frame of run.binary) {
    assert.equal(frame.readUInt32BE(0), 1, 'a binary frame is a preview image');
    assert.ok([1, 2].includes(frame.readUInt32BE(4)), 'a preview frame says JPEG or PNG');
  }

  assert.equal(history.status.status_str, 'success');
  assert.equal(history.status.completed, true);
  const statusTypes = (history.status.messages as Array<[string, unknown]>).map(([type]) => type);
  assert.ok(statusTypes.includes('execution_start') && statusTypes.includes('execution_success'), `history status messages: ${statusTypes.join(', ')}`);
  assert.equal(history.prompt[1], promptId);
  assert.deepEqual(history.prompt[2], prompt, 'the history keeps the prompt that ran');

  const saved = run.images.filter((image) => image.node === saveId);
  assert.equal(saved.length, latent.batch_size, 'one image per latent in the batch');
  assert.ok(saved.every((image) => image.ref.type === 'output'), 'SaveImage images are in the output folder');
  for (const image of run.images) {
    assert.match(image.contentType ?? '', /^image\/png/, `/view sends ${image.ref.filename} as a PNG`);
    const png = readPngInfo(image.bytes);
    assert.equal(png.width, latent.width, `${image.ref.filename} is as wide as the latent decodes`);
    assert.equal(png.height, latent.height, `${image.ref.filename} is as tall as the latent decodes`);
    assert.ok(png.text.prompt, `${image.ref.filename} carries the prompt tEXt chunk`);
    assert.deepEqual(JSON.parse(png.text.prompt), prompt, 'the prompt chunk is the API prompt that ran');
    for (const [key, value] of Object.entries(extraPngInfo ?? {})) {
      assert.ok(png.text[key], `${image.ref.filename} carries the ${key} tEXt chunk from extra_pnginfo`);
      assert.deepEqual(JSON.parse(png.text[key]), value, `the ${key} chunk is what extra_pnginfo sent`);
    }
  }
}

let server: GategraphServer | undefined;
let dir: string | undefined;
const clients: ExampleClient[] = [];

before(async () => {
  if (noModel) return;
  dir = mkdtempSync(join(tmpdir(), 'gg-e2e-'));
  // What `pnpm serve` builds (createHost: the workspace packs, the workspace models folder), but writing
  // only inside a temporary folder and without the user's custom_nodes.
  server = await startServer({
    root,
    host: '127.0.0.1',
    port: 0,
    env: {},
    logger: silentLogger,
    customNodesDir: false,
    paths: { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(root, 'models') },
    dataDir: join(dir, 'data'),
    editorDir: join(dir, 'no-editor'),
    fsync: false,
  });
});

after(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<ExampleClient> {
  const client = await ExampleClient.connect(server!.url);
  clients.push(client);
  return client;
}

test('the default workflow runs through the websocket example client and returns its PNG via /view', { skip: noModel, timeout: 180_000 }, async () => {
  const prompt = readWorkflow('default.json') as ApiPrompt;
  const workflow = readWorkflow('default.ui.json');
  assert.equal(prompt[nodeOfClass(prompt, 'CheckpointLoaderSimple')]!.inputs.ckpt_name, 'tiny-sd', 'the default workflow uses the embedded model');
  const client = await connect();

  // As the editor does, the UI graph goes along in extra_pnginfo so the PNG can restore it.
  const run = await runLikeTheExample(server!.url, client, prompt, { extra_pnginfo: { workflow } });
  assertClientContract(run, prompt, { workflow });
  assert.deepEqual(run.images.map((i) => i.ref), [{ filename: 'gategraph_00001_.png', subfolder: '', type: 'output' }]);
  assert.ok(run.binary.length > 0, 'latent previews arrived as binary frames and were skipped');
});

test('the TGATE workflow runs through the same client and returns an image', { skip: noModel ?? (existsSync(join(root, 'workflows', 'tgate.json')) ? undefined : 'no workflows/tgate.json'), timeout: 180_000 }, async () => {
  const prompt = readWorkflow('tgate.json') as ApiPrompt;
  const gated = nodeOfClass(prompt, 'CacheCrossAttn');
  const samplerId = nodeOfClass(prompt, 'KSampler');
  assert.deepEqual(prompt[samplerId]!.inputs.model, [gated, 0], 'the sampler samples the TGATE-patched model');
  const client = await connect();

  const run = await runLikeTheExample(server!.url, client, prompt);
  assertClientContract(run, prompt);
  assert.equal(run.images.length, 1);
  const executedNodes = run.messages.filter((m) => m.type === 'executing' && m.data.node !== null).map((m) => m.data.node);
  assert.ok(executedNodes.includes(gated), 'the TGATE node ran');
});

test('ComfyUI\'s default size, 512x512, on the embedded model is refused when queued: 400 with node_errors on the sampler, nothing runs', { skip: noModel, timeout: 60_000 }, async () => {
  for (const name of ['default.json', 'tgate.json']) {
    const prompt = readWorkflow(name) as ApiPrompt;
    const latent = nodeOfClass(prompt, 'EmptyLatentImage');
    const sampler = nodeOfClass(prompt, 'KSampler');
    Object.assign(prompt[latent]!.inputs, { width: 512, height: 512 });
    const before = (await getJson(`${server!.url}/history`)).json;
    const queued = await postJson(`${server!.url}/prompt`, { prompt, client_id: randomUUID() });
    assert.equal(queued.status, 400, name);
    assert.equal(queued.json.error.type, 'prompt_outputs_failed_validation');
    const error = queued.json.node_errors[sampler].errors[0];
    assert.equal(error.type, 'custom_validation_failed');
    assert.equal(error.extra_info.input_name, 'latent_image');
    assert.equal(
      error.message,
      "latent_image is 512x512 pixels (latent 128x128), but tiny-sd's UNet was exported for 64x64 pixels only: set the EmptyLatentImage to width 64, height 64",
    );
    assert.deepEqual((await getJson(`${server!.url}/history`)).json, before, 'nothing was queued or run');
  }
});
