/**
 * SaveImageWebsocket as ComfyUI's script_examples/websockets_api_example_ws_images.py uses it: a websocket opened
 * with `?clientId=`, the prompt queued with that client_id, every frame read in order until `executing` with
 * node null; the binary frames that arrive while `executing` names the SaveImageWebsocket node are the images
 * (`out[8:]`: after a u32 BE event type 1 and a u32 BE format 2 = PNG). On a real server on loopback with the
 * shipped packs and the embedded model, and in a Redis deployment (worker and API instance in their own processes,
 * the frames crossing Redis).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import type { ApiPrompt } from '@gategraph/core';
import { startServer } from '../src/index.ts';
import { WsHub } from '../src/ws-hub.ts';
import { deliver, PublishingSink, type EventMessage } from '../src/redis/message-bus.ts';
import { RedisKeys } from '../src/redis/keys.ts';
import { getJson, postJson, readPngInfo, workspaceRoot, workspaceServerOptions, type WsMessage } from './helpers.ts';
import { apiProcess, RedisProcess, redisAvailable, workerProcess, type DeploymentProcess } from './fixtures/redis-deployment.ts';

const noModel = existsSync(join(workspaceRoot, 'models', 'tiny-sd', 'unet', 'model.onnx')) ? undefined : 'the embedded model models/tiny-sd is missing';
const WS_NODE = 'save_image_websocket_node';
const cleanups: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** The example's prompt on the embedded model: KSampler -> VAEDecode -> SaveImageWebsocket, two images. */
function examplePrompt(): ApiPrompt {
  const prompt = JSON.parse(readFileSync(join(workspaceRoot, 'workflows', 'default.json'), 'utf8')) as ApiPrompt;
  delete prompt['9']; // the example has no SaveImage
  prompt['5']!.inputs.batch_size = 2;
  prompt['3']!.inputs.steps = 8;
  prompt[WS_NODE] = { class_type: 'SaveImageWebsocket', inputs: { images: ['8', 0] } };
  return prompt;
}

/** A websocket read one frame at a time, in order, like the example's `ws.recv()`. */
class Recv {
  readonly #frames: Array<string | Buffer> = [];
  #wake: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      this.#frames.push(isBinary ? (data as Buffer) : String(data));
      this.#wake?.();
    });
  }

  static async open(baseUrl: string, clientId: string): Promise<Recv> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    cleanups.push(() => ws.close());
    return new Recv(ws);
  }

  async recv(timeoutMs = 120_000): Promise<string | Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a websocket message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.#frames.shift()!;
  }
}

/** The example's get_images: binary frames received while the websocket node executes, whole (header included). */
async function getImages(
  baseUrl: string,
  socket: Recv,
  clientId: string,
  prompt: ApiPrompt,
): Promise<{ promptId: string; frames: Buffer[]; others: number; messages: WsMessage[] }> {
  const queued = await postJson(`${baseUrl}/prompt`, { prompt, client_id: clientId });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  const promptId = queued.json.prompt_id as string;
  const frames: Buffer[] = [];
  const messages: WsMessage[] = [];
  let currentNode = '';
  let others = 0;
  for (;;) {
    const out = await socket.recv();
    if (typeof out === 'string') {
      const message = JSON.parse(out) as WsMessage;
      messages.push(message);
      if (message.type === 'executing' && message.data.prompt_id === promptId) {
        if (message.data.node === null) break;
        currentNode = message.data.node;
      }
    } else if (currentNode === WS_NODE) {
      frames.push(out);
    } else {
      others++;
    }
  }
  return { promptId, frames, others, messages };
}

/** Checks the frames are PNG images of the latent's size, framed as ComfyUI frames them; returns their pixels. */
async function checkFrames(frames: Buffer[], count: number): Promise<Buffer[]> {
  assert.equal(frames.length, count, 'one frame per image of the batch');
  const pixels: Buffer[] = [];
  for (const frame of frames) {
    assert.equal(frame.readUInt32BE(0), 1, 'event type 1 (PREVIEW_IMAGE)');
    assert.equal(frame.readUInt32BE(4), 2, 'image format 2 (PNG)');
    const png = readPngInfo(frame.subarray(8));
    assert.deepEqual([png.width, png.height], [64, 64]);
    assert.deepEqual(png.text, {}, 'no metadata in the image, as ComfyUI');
    pixels.push(await sharp(frame.subarray(8)).raw().toBuffer());
  }
  assert.notDeepEqual(pixels[0], pixels[1], 'each image of the batch is its own');
  return pixels;
}

test('SaveImageWebsocket sends each image as a PNG frame while it executes; writes no file; runs again on a repeated prompt', { skip: noModel, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-ws-images-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startServer({ ...workspaceServerOptions(dir), fsync: false });
  cleanups.push(() => server.close());
  const clientId = randomUUID();
  const socket = await Recv.open(server.url, clientId);

  const first = await getImages(server.url, socket, clientId, examplePrompt());
  const images = await checkFrames(first.frames, 2);
  assert.ok(first.others > 0, 'the sampler\'s latent previews came on the same socket, and were told apart by the executing node');
  const ofPrompt = first.messages.filter((m) => m.data?.prompt_id === first.promptId);
  assert.ok(!ofPrompt.some((m) => m.type === 'execution_error'), JSON.stringify(ofPrompt.find((m) => m.type === 'execution_error')?.data));
  assert.deepEqual(
    ofPrompt.filter((m) => m.type === 'progress' && m.data.node === WS_NODE).map((m) => [m.data.value, m.data.max]),
    [
      [0, 2],
      [1, 2],
    ],
    "progress i of the batch with each image, as ComfyUI's ProgressBar.update_absolute(step, total, image)",
  );
  assert.ok(!ofPrompt.some((m) => m.type === 'executed' && m.data.node === WS_NODE), 'no UI output: no executed message');
  const history = (await getJson(`${server.url}/history/${first.promptId}`)).json[first.promptId];
  assert.equal(history.status.status_str, 'success');
  assert.deepEqual(history.outputs, {}, 'nothing in the history outputs');
  assert.deepEqual(existsSync(join(dir, 'output')) ? readdirSync(join(dir, 'output')) : [], [], 'no file written');

  // The same prompt again, with a SaveImage beside it: the sampler comes from the cache, the websocket node runs
  // again (ComfyUI's IS_CHANGED is the time), and its images are the pixels SaveImage writes.
  const again = examplePrompt();
  again['9'] = { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'same' } };
  const second = await getImages(server.url, socket, clientId, again);
  const repeated = await checkFrames(second.frames, 2);
  assert.deepEqual(repeated, images);
  const saved = (await getJson(`${server.url}/history/${second.promptId}`)).json[second.promptId].outputs['9'].images as Array<{ filename: string }>;
  const files = await Promise.all(saved.map((image) => sharp(join(dir, 'output', image.filename)).raw().toBuffer()));
  assert.deepEqual(files, images);
});

test('a result frame is delivered to a client too slow for previews, locally and through Redis', () => {
  const sent: Buffer[] = [];
  const socket = { readyState: 1, OPEN: 1, bufferedAmount: 10 * 1024 * 1024, send: (frame: Buffer) => sent.push(frame), once() {}, on() {} };
  const hub = new WsHub({ logger: { debug() {} } as never, maxPreviewBacklog: 1024 });
  hub.add(socket as never, 'slow');
  hub.sendPreview('slow', 'PNG', Uint8Array.of(1, 2, 3));
  assert.equal(sent.length, 0, 'a preview is dropped for a backlogged socket');
  hub.sendPreview('slow', 'PNG', Uint8Array.of(1, 2, 3), true);
  assert.deepEqual(sent, [Buffer.from([0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3])]);

  // The worker's publisher marks it; the API instance's delivery keeps the mark.
  const published: string[] = [];
  const redis = { publish: async (_channel: string, text: string) => published.push(text) };
  const sink = new PublishingSink(redis as never, new RedisKeys('t'));
  sink.sendPreview('slow', 'PNG', Uint8Array.of(7), true);
  sink.sendPreview('slow', 'JPEG', Uint8Array.of(8));
  const received: Array<[string | undefined, string, number[], boolean | undefined]> = [];
  for (const text of published) {
    deliver(JSON.parse(text) as EventMessage, { send() {}, sendPreview: (c, f, image, must) => received.push([c, f, [...image], must]) });
  }
  assert.deepEqual(received, [
    ['slow', 'PNG', [7], true],
    ['slow', 'JPEG', [8], false],
  ]);
});

const noRedis = noModel ?? (redisAvailable() ? undefined : 'redis-server is not installed');

test('in a Redis deployment the frames come from the worker through the API instance the client is connected to', { skip: noRedis, timeout: 300_000 }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'gg-ws-images-redis-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  const redis = await RedisProcess.start(join(base, 'redis'));
  cleanups.push(() => redis.kill());
  const processes: DeploymentProcess[] = [];
  cleanups.push(() => Promise.allSettled(processes.map((p) => p.kill())));
  const [api, worker] = await Promise.all([apiProcess(redis, base, 'api').start(), workerProcess(redis, base, 'worker').start()]);
  processes.push(api, worker);

  const clientId = randomUUID();
  const socket = await Recv.open(api.url, clientId);
  const run = await getImages(api.url, socket, clientId, examplePrompt());
  await checkFrames(run.frames, 2);
  const history = (await getJson(`${api.url}/history/${run.promptId}`)).json[run.promptId];
  assert.equal(history.status.status_str, 'success', JSON.stringify(history.status));
  assert.deepEqual(readdirSync(join(base, 'worker', 'output')), [], 'the worker wrote no file');
});
