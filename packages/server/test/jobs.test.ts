// ComfyUI's jobs API on a real server: /api/jobs lists the queue and the history as one kind of record (status,
// priority, create_time, execution times, outputs_count, preview_output), filtered, sorted and paged as ComfyUI
// does; /api/jobs/{id} adds the workflow and outputs; cancelling works whatever the job's state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { getJson, postJson, slowPrompt, startTestServer, TestClient, until, type TestServer } from './helpers.ts';

let server: TestServer;
let client: TestClient;
before(async () => {
  server = await startTestServer();
  client = await TestClient.connect(server.url, randomUUID());
});
after(async () => {
  await client.close();
  await server.dispose();
});

async function queue(prompt: ReturnType<typeof slowPrompt>, extra: Record<string, unknown> = {}): Promise<string> {
  const id = randomUUID();
  const queued = await postJson(`${server.url}/prompt`, { prompt, client_id: client.clientId, prompt_id: id, extra_data: extra });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  return id;
}

test('jobs of every state, their shapes, filters, sorting and pages', { timeout: 60_000 }, async () => {
  const done = await queue(slowPrompt(1), { extra_pnginfo: { workflow: { id: 'wf-a' } } });
  await client.done(done);
  const failed = await queue({ '1': { class_type: 'TestConstant', inputs: { value: 2 } }, '2': { class_type: 'TestFail', inputs: { value: ['1', 0] } } });
  await client.done(failed);
  const running = await queue(slowPrompt(3, 200, 20));
  await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === running);
  const pending = await queue(slowPrompt(4), { extra_pnginfo: { workflow: { id: 'wf-b' } } });

  const all = (await getJson(`${server.url}/api/jobs`)).json;
  assert.deepEqual(all.jobs.map((j: { id: string }) => j.id), [pending, running, failed, done], 'newest first (create_time, desc)');
  assert.deepEqual(all.pagination, { offset: 0, limit: null, total: 4, has_more: false });
  const byId = Object.fromEntries(all.jobs.map((j: { id: string }) => [j.id, j]));
  assert.equal(byId[pending].status, 'pending');
  assert.equal(byId[running].status, 'in_progress');
  assert.equal(byId[failed].status, 'failed');
  assert.equal(byId[done].status, 'completed');
  assert.equal(byId[pending].workflow_id, 'wf-b');
  assert.equal(byId[pending].outputs_count, 0);
  assert.ok(typeof byId[done].create_time === 'number' && byId[done].create_time <= byId[failed].create_time);
  assert.ok(byId[done].execution_end_time >= byId[done].execution_start_time);
  assert.equal(byId[done].outputs_count, 1);
  assert.equal(byId[done].previewable_outputs_count, 1);
  assert.deepEqual(byId[done].preview_output, { filename: 'img_00001_.png', subfolder: '', type: 'output', nodeId: '3', mediaType: 'images' });
  assert.equal(byId[failed].execution_error.node_type, 'TestFail');
  assert.equal(byId[done].outputs, undefined, 'the list leaves outputs and workflows out');

  const page = (await getJson(`${server.url}/api/jobs?status=completed,failed&sort_order=asc&limit=1&offset=1`)).json;
  assert.deepEqual(page.jobs.map((j: { id: string }) => j.id), [failed]);
  assert.deepEqual(page.pagination, { offset: 1, limit: 1, total: 2, has_more: false });
  assert.deepEqual((await getJson(`${server.url}/api/jobs?workflow_id=wf-a`)).json.jobs.map((j: { id: string }) => j.id), [done]);
  assert.equal((await getJson(`${server.url}/api/jobs?sort_by=execution_duration`)).json.pagination.total, 4);
  for (const [query, message] of [
    ['status=done', 'Invalid status value(s): done. Valid values: pending, in_progress, completed, failed, cancelled'],
    ['sort_by=name', "sort_by must be 'created_at' or 'execution_duration'"],
    ['sort_order=up', "sort_order must be 'asc' or 'desc'"],
    ['limit=0', 'limit must be a positive integer'],
    ['limit=x', 'limit must be an integer'],
  ]) {
    const response = await getJson(`${server.url}/api/jobs?${query}`);
    assert.equal(response.status, 400, query);
    assert.deepEqual(response.json, { error: message });
  }

  const detail = (await getJson(`${server.url}/api/jobs/${done}`)).json;
  assert.deepEqual(detail.outputs, { '3': { images: [{ filename: 'img_00001_.png', subfolder: '', type: 'output' }] } });
  assert.equal(detail.execution_status.status_str, 'success');
  assert.deepEqual(detail.workflow.prompt, slowPrompt(1));
  assert.equal((await getJson(`${server.url}/api/jobs/${pending}`)).json.workflow.extra_data.extra_pnginfo.workflow.id, 'wf-b');
  assert.equal((await getJson(`${server.url}/api/jobs/${randomUUID()}`)).status, 404);

  // Cancelling: the pending job leaves the queue, the running one is interrupted, a finished one is a no-op.
  assert.deepEqual((await postJson(`${server.url}/api/jobs/${pending}/cancel`, {})).json, { cancelled: true });
  assert.deepEqual((await postJson(`${server.url}/api/jobs/cancel`, { job_ids: [running, done] })).json, { cancelled: true });
  await client.done(running);
  await until(async () => (await getJson(`${server.url}/api/jobs/${running}`)).json.status === 'cancelled');
  assert.equal((await getJson(`${server.url}/api/jobs/${pending}`)).status, 404, 'a dequeued job is gone');
  assert.deepEqual((await postJson(`${server.url}/api/jobs/${done}/cancel`, {})).json, { cancelled: false });
  const bad = await postJson(`${server.url}/api/jobs/cancel`, { job_ids: ['not-a-uuid', 3] });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.json, { error: 'job_ids contains invalid id(s)', invalid_ids: ['not-a-uuid', '3'] });
});
