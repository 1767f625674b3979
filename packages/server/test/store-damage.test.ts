// The store's files as they are found after accidents (a record damaged, a file deleted, a log grown huge):
// each case is named with its file and line, nothing is dropped quietly, and size never stops a start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@gategraph/core';
import { HISTORY_EXTRA_DATA_LIMIT, StoreDamagedError } from '../src/index.ts';
import { getJson, postJson, slowPrompt, startTestServer, until, type TestServer } from './helpers.ts';

/** A logger that keeps what it is told, for the messages a person would read in the terminal. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = {
    lines,
    debug: () => {},
    info: (m: string) => void lines.push(`info: ${m}`),
    warn: (m: string) => void lines.push(`warn: ${m}`),
    error: (m: string) => void lines.push(`error: ${m}`),
    child: () => logger,
  };
  return logger;
}

/** A folder whose snapshot holds `count` finished prompts, one per line after the header, and an empty log. */
async function storeWithHistory(count: number): Promise<{ dir: string; ids: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'gg-damage-'));
  const server = await startTestServer({ dir, fsync: false });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await postJson(`${server.url}/prompt`, { prompt: slowPrompt(100 + i, 1, 0) })).json.prompt_id);
  await until(async () => Object.keys((await getJson(`${server.url}/history`)).json).length === count);
  await server.close();
  // A start folds the log into the snapshot.
  await (await startTestServer({ dir, fsync: false })).close();
  return { dir, ids };
}

const dataDir = (dir: string) => join(dir, 'data');
const logFile = (dir: string) => join(dataDir(dir), readdirSync(dataDir(dir)).find((f) => /^log-\d+\.jsonl$/.test(f))!);
const snapshotFile = (dir: string) => join(dataDir(dir), 'snapshot.jsonl');

async function start(dir: string, logger = recordingLogger()): Promise<{ server: TestServer; logger: ReturnType<typeof recordingLogger> }> {
  return { server: await startTestServer({ dir, fsync: false, logger }), logger };
}

test('a damaged record in the log or the snapshot is skipped and named with its file and line; the rest is kept', async () => {
  const { dir, ids } = await storeWithHistory(3);
  try {
    // The snapshot holds the three entries; damage its second record, and add damaged records to the log.
    const snapshot = readFileSync(snapshotFile(dir), 'utf8').split('\n');
    snapshot[2] = '{"kind":"history","id":"broken", "entry": 12}';
    writeFileSync(snapshotFile(dir), snapshot.join('\n'));
    appendFileSync(logFile(dir), '{"op":"finish","id":"no-entry"}\nnot json at all\n{"op":"start","id":"x"}\n');
    const { server, logger } = await start(dir);
    try {
      const history = (await getJson(`${server.url}/history`)).json as Record<string, unknown>;
      assert.deepEqual(Object.keys(history).sort(), ids.filter((_, i) => i !== 1).sort(), 'the two good entries are kept');
      const errors = logger.lines.filter((l) => l.startsWith('error:'));
      assert.ok(errors.some((l) => /snapshot\.jsonl:3: skipping a damaged record \(the history entry is not an object\)/.test(l)), errors.join('\n'));
      assert.ok(errors.some((l) => /log-\d+\.jsonl:1: skipping a damaged record \(the history entry is not an object\)/.test(l)), errors.join('\n'));
      assert.ok(errors.some((l) => /log-\d+\.jsonl:2: skipping a damaged record \(not JSON/.test(l)), errors.join('\n'));
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a deleted snapshot, a deleted log and a damaged header each stop the start with what is lost and what to do', async () => {
  // Snapshot gone, log with records: replaying the log alone would drop everything before it.
  {
    const { dir } = await storeWithHistory(2);
    try {
      const server = await startTestServer({ dir, fsync: false });
      await postJson(`${server.url}/prompt`, { prompt: slowPrompt(7, 1, 0) });
      await until(async () => Object.keys((await getJson(`${server.url}/history`)).json).length === 3);
      await server.close();
      rmSync(snapshotFile(dir));
      await assert.rejects(start(dir), (error: Error) => {
        assert.ok(error instanceof StoreDamagedError);
        assert.match(error.message, /snapshot\.jsonl is missing, but .*log-\d+\.jsonl holds changes made after it\. Put the snapshot back/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Log gone: the changes since the snapshot are lost; the message says so and how to go on.
  {
    const { dir, ids } = await storeWithHistory(2);
    try {
      const log = logFile(dir);
      rmSync(log);
      await assert.rejects(start(dir), (error: Error) => {
        assert.ok(error instanceof StoreDamagedError);
        assert.match(error.message, /log-\d+\.jsonl is missing: it holds the changes made after .*snapshot\.jsonl was written.*create it empty/);
        return true;
      });
      writeFileSync(log, '');
      const { server } = await start(dir);
      assert.deepEqual(Object.keys((await getJson(`${server.url}/history`)).json).sort(), [...ids].sort(), 'the snapshot\'s state');
      await server.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // A header that cannot be read names the file and line.
  {
    const { dir } = await storeWithHistory(1);
    try {
      const lines = readFileSync(snapshotFile(dir), 'utf8').split('\n');
      writeFileSync(snapshotFile(dir), ['{"version":1,', ...lines.slice(1)].join('\n'));
      await assert.rejects(start(dir), /snapshot\.jsonl:1: the snapshot's header is unreadable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // What a first start that crashed leaves (an empty log, no snapshot) is no damage.
  {
    const dir = mkdtempSync(join(tmpdir(), 'gg-damage-'));
    mkdirSync(dataDir(dir), { recursive: true });
    writeFileSync(join(dataDir(dir), 'log-1.jsonl'), '');
    const { server } = await start(dir);
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store log of 1 GB starts and serves /history; history entries keep at most the extra_data limit', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-huge-'));
  try {
    mkdirSync(dataDir(dir), { recursive: true });
    writeFileSync(snapshotFile(dir), JSON.stringify({ version: 1, generation: 1, counter: 0, seq: 0 }) + '\n');
    // 50 prompts, each with a 10 MiB workflow in extra_pnginfo, queued and finished: 1 GiB of log.
    const workflow = { nodes: [], pad: 'x'.repeat(10 * 1024 * 1024) };
    const fd = openSync(join(dataDir(dir), 'log-1.jsonl'), 'w');
    for (let i = 0; i < 50; i++) {
      const promptId = `big-${i}`;
      const extraData = { client_id: 'c', extra_pnginfo: { workflow } };
      const item = { number: i, promptId, prompt: slowPrompt(i, 1, 0), extraData, outputs: ['3'], seq: i };
      const entry = {
        prompt: [i, promptId, item.prompt, extraData, ['3']],
        outputs: {},
        status: { status_str: 'success', completed: true, messages: [] },
        meta: {},
      };
      writeSync(fd, JSON.stringify({ op: 'enqueue', item }) + '\n');
      writeSync(fd, JSON.stringify({ op: 'start', id: promptId }) + '\n');
      writeSync(fd, JSON.stringify({ op: 'finish', id: promptId, entry }) + '\n');
    }
    closeSync(fd);

    const { server } = await start(dir);
    try {
      const history = await getJson(`${server.url}/history`);
      assert.equal(history.status, 200);
      assert.equal(Object.keys(history.json).length, 50);
      const extra = history.json['big-7'].prompt[3];
      assert.equal(extra.client_id, 'c', 'small keys stay');
      assert.equal(extra.extra_pnginfo, undefined);
      assert.deepEqual(extra.gategraph_dropped.keys, ['extra_pnginfo']);
      assert.ok(JSON.stringify(history.json['big-7']).length < HISTORY_EXTRA_DATA_LIMIT + 64 * 1024);
    } finally {
      await server.close();
    }
    // The start folded the log into a snapshot of bounded entries.
    assert.ok(readFileSync(snapshotFile(dir)).length < 50 * (HISTORY_EXTRA_DATA_LIMIT + 64 * 1024));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
