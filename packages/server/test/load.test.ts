/**
 * Bounded load test, loopback only, on the real product: 5 websocket clients queue 10 prompts each (50 in all)
 * of workflows/default.json (the embedded model models/tiny-sd) with the sampler cut to a few steps and a
 * different seed per prompt, against a server in its own process that loads the workspace packs and models
 * folder as `pnpm serve` does. All complete with success, each client sees only its own prompts, nothing is
 * lost, every image can be fetched via /view. Prints throughput and the server's RSS as the prompts complete
 * (real ONNX sessions), and fails when RSS climbs with the prompt count beyond lazy garbage collection, i.e.
 * something (sessions, tensors, images) is retained per prompt. Stops by itself: fails after DEADLINE_MS
 * saying how many prompts completed.
 * Skipped when the embedded model is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { getJson, postJson, readPngInfo, spawnChildServer, TestClient, workspaceRoot } from './helpers.ts';

const CLIENTS = 5;
const PROMPTS_PER_CLIENT = 10;
const TOTAL = CLIENTS * PROMPTS_PER_CLIENT;
/** Sampler steps per prompt: enough to run the UNet per step and send progress, few enough to stay bounded. */
const STEPS = 2;
/** For all 50 prompts once the server is up: ~5 s on an idle 2-core machine, so generous when it is shared. */
const DEADLINE_MS = 60_000;
/** Server RSS is sampled after the first prompt and after every RSS_EVERY completed prompts. */
const RSS_EVERY = 10;
/**
 * Most the server's RSS may grow from RSS_EVERY completed prompts (model loaded, warm) to the last one. V8
 * collects lazily, so some growth is normal (~20 MiB seen); retaining what a prompt creates is not: the UNet
 * alone is 13 MiB of weights, so keeping a session per prompt would add hundreds of MiB over 40 prompts.
 */
const RSS_GROWTH_LIMIT_MIB = 100;

const modelDir = join(workspaceRoot, 'models', 'tiny-sd');
const noModel = existsSync(join(modelDir, 'unet', 'model.onnx')) ? undefined : `the embedded model is missing (${modelDir}/unet/model.onnx)`;

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

function nodeOfClass(prompt: ApiPrompt, classType: string): string {
  const id = Object.keys(prompt).find((key) => prompt[key]!.class_type === classType);
  assert.ok(id, `workflows/default.json has a ${classType} node`);
  return id;
}

test(
  `load: ${CLIENTS} clients x ${PROMPTS_PER_CLIENT} prompts of the default workflow all complete, isolated, nothing lost`,
  { skip: noModel, timeout: DEADLINE_MS + 60_000 },
  async () => {
    const workflow = JSON.parse(readFileSync(join(workspaceRoot, 'workflows', 'default.json'), 'utf8')) as ApiPrompt;
    const samplerId = nodeOfClass(workflow, 'KSampler');
    const saveId = nodeOfClass(workflow, 'SaveImage');
    const latent = workflow[nodeOfClass(workflow, 'EmptyLatentImage')]!.inputs as { width: number; height: number };
    assert.equal(workflow[nodeOfClass(workflow, 'CheckpointLoaderSimple')]!.inputs.ckpt_name, 'tiny-sd');
    /** The default workflow as a user would queue it, with fewer steps and its own seed. */
    const promptFor = (seed: number): ApiPrompt => {
      const prompt = structuredClone(workflow);
      Object.assign(prompt[samplerId]!.inputs, { seed, steps: STEPS });
      return prompt;
    };

    const dir = mkdtempSync(join(tmpdir(), 'gg-load-'));
    const { child, url } = await spawnChildServer(dir, { workspace: true });
    let deadline: NodeJS.Timeout | undefined;
    try {
      const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => TestClient.connect(url, `load-${i}`)));
      const owned = new Map<string, string[]>();
      const seedOf = new Map<string, number>();
      const rssSamples: Array<{ completed: number; rss: number }> = [];
      const sampling: Array<Promise<void>> = [];
      let completed = 0;
      let firstDoneSeconds = 0;

      const started = performance.now();
      const allDone = Promise.all(
        clients.map(async (client, c) => {
          const ids = await Promise.all(
            Array.from({ length: PROMPTS_PER_CLIENT }, async (_, p) => {
              const seed = 1000 + c * PROMPTS_PER_CLIENT + p;
              const r = await postJson(`${url}/prompt`, { prompt: promptFor(seed), client_id: client.clientId });
              assert.equal(r.status, 200, `POST /prompt was refused: ${JSON.stringify(r.json)}`);
              seedOf.set(r.json.prompt_id, seed);
              return r.json.prompt_id as string;
            }),
          );
          owned.set(client.clientId, ids);
          await Promise.all(
            ids.map(async (id) => {
              // Longer than the deadline below, which is the one that reports.
              await client.done(id, DEADLINE_MS + 30_000);
              completed++;
              if (completed === 1) firstDoneSeconds = (performance.now() - started) / 1000;
              if (completed === 1 || completed % RSS_EVERY === 0) {
                const at = completed;
                sampling.push(getJson(`${url}/system_stats`).then((r) => void rssSamples.push({ completed: at, rss: r.json.system.rss })));
              }
            }),
          );
        }),
      );
      await Promise.race([
        allDone,
        new Promise<never>((_, reject) => {
          deadline = setTimeout(
            () => reject(new Error(`only ${completed} of ${TOTAL} prompts completed within ${DEADLINE_MS / 1000} s`)),
            DEADLINE_MS,
          );
        }),
      ]);
      const seconds = (performance.now() - started) / 1000;
      await Promise.all(sampling);

      const history = (await getJson(`${url}/history`)).json;
      assert.equal(Object.keys(history).length, TOTAL, 'the history has every prompt');
      for (const client of clients) {
        const mine = new Set(owned.get(client.clientId));
        const seen = new Set(client.messages.filter((m) => m.data?.prompt_id).map((m) => m.data.prompt_id as string));
        assert.deepEqual([...seen].sort(), [...mine].sort(), `${client.clientId} saw exactly its own prompts`);
        for (const id of mine) {
          const entry = history[id];
          assert.ok(entry, `prompt ${id} is in the history`);
          assert.equal(entry.status.status_str, 'success', `prompt ${id} succeeded: ${JSON.stringify(entry.status.messages).slice(0, 500)}`);
          assert.equal(entry.prompt[2][samplerId].inputs.seed, seedOf.get(id), `the history of ${id} keeps its own seed`);
          const images = entry.outputs[saveId].images as Array<{ filename: string; subfolder: string; type: string }>;
          assert.equal(images.length, 1);
          const query = new URLSearchParams(images[0]!);
          const response = await fetch(`${url}/view?${query}`);
          assert.equal(response.status, 200, `GET /view?${query} answered ${response.status}`);
          const png = readPngInfo(new Uint8Array(await response.arrayBuffer()));
          assert.deepEqual([png.width, png.height], [latent.width, latent.height], `${images[0]!.filename} is the decoded size`);
          assert.equal(JSON.parse(png.text.prompt!)[samplerId].inputs.seed, seedOf.get(id), `${images[0]!.filename} is the image of ${id}`);

          const messages = client.ofPrompt(id);
          const progress = messages.filter((m) => m.type === 'progress' && m.data.node === samplerId).map((m) => m.data.value);
          assert.deepEqual(progress, Array.from({ length: STEPS }, (_, i) => i + 1), `sampler progress of ${id}`);
          assert.equal(messages.filter((m) => m.type === 'execution_success').length, 1);
        }
        assert.ok(client.binary.length <= PROMPTS_PER_CLIENT * STEPS, 'previews only for its own prompts');
      }
      const files = new Set(Object.values(history).map((e: any) => e.outputs[saveId].images[0].filename));
      assert.equal(files.size, TOTAL, 'no output file was overwritten');
      assert.equal((await getJson(`${url}/prompt`)).json.exec_info.queue_remaining, 0);

      const stats = (await getJson(`${url}/system_stats`)).json;
      rssSamples.sort((a, b) => a.completed - b.completed);
      console.log(
        `load: ${TOTAL} prompts of workflows/default.json (${STEPS} steps, ${latent.width}x${latent.height}) from ${CLIENTS} clients ` +
          `in ${seconds.toFixed(2)} s = ${(TOTAL / seconds).toFixed(2)} prompts/s ` +
          `(first done after ${firstDoneSeconds.toFixed(2)} s, loading the model; ` +
          `then ${((TOTAL - 1) / (seconds - firstDoneSeconds)).toFixed(2)} prompts/s)\n` +
          `load: server RSS after n prompts: ${rssSamples.map((s) => `${s.completed}: ${mib(s.rss)}`).join(', ')} MiB; ` +
          `peak RSS ${mib(stats.system.rss_peak)} MiB`,
      );
      const warm = rssSamples.find((s) => s.completed === RSS_EVERY)!.rss;
      const last = rssSamples.find((s) => s.completed === TOTAL)!.rss;
      assert.ok(
        (last - warm) / 2 ** 20 < RSS_GROWTH_LIMIT_MIB,
        `the server's RSS grew by ${mib(last - warm)} MiB from ${RSS_EVERY} to ${TOTAL} completed prompts ` +
          `(limit ${RSS_GROWTH_LIMIT_MIB} MiB): something is kept per prompt`,
      );
      await Promise.all(clients.map((client) => client.close()));
    } finally {
      clearTimeout(deadline);
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
