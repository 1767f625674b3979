// SessionPool: lazy opening, sharing, reference counting and /free, on real onnxruntime sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { SessionOpenError, SessionPool, fromOrtTensor, resolveSessionSettings, weightFileBytes, DEFAULT_SESSION_SETTINGS, type Tensor } from '../src/index.ts';
import { requireTestModel, tempDir } from './fixtures/test-model.ts';

const vaeDecoder = (): string => join(requireTestModel(), 'vae_decoder', 'model.onnx');

async function decodeOnce(lease: ReturnType<SessionPool['acquire']>): Promise<Tensor> {
  const session = await lease.session();
  const shape = session.inputMetadata[0]!.isTensor ? session.inputMetadata[0]!.shape.map((d) => (typeof d === 'number' ? d : 1)) : [];
  const n = shape.reduce((a, b) => a * b, 1);
  const out = await lease.run({ latent_sample: { data: new Float32Array(n).fill(0.1), shape } }, ['sample']);
  return fromOrtTensor('sample', out.sample!);
}

test('sessions open on first use, are shared per file and settings, and close with the last lease', async () => {
  const pool = new SessionPool({ intraOpNumThreads: 1 });
  const a = pool.acquire(vaeDecoder());
  const b = pool.acquire(vaeDecoder());
  assert.equal(pool.openCount, 0, 'acquire() alone opens nothing');
  const sa = await a.session();
  const sb = await b.session();
  assert.equal(sa, sb, 'same path + settings => one session');
  assert.equal(pool.opened, 1);
  const c = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 });
  assert.notEqual(await c.session(), sa, 'other settings => another session');
  assert.equal(pool.openCount, 2);

  await a.release();
  assert.equal(pool.openCount, 2, 'b still holds the first session');
  const out = await decodeOnce(b);
  assert.equal(out.shape[1], 3);
  await b.release();
  await b.release(); // a second release is a no-op, not a double free
  assert.equal(pool.openCount, 1);
  await assert.rejects(b.session(), /already released/);
  await c.release();
  assert.equal(pool.openCount, 0);
  assert.equal(pool.leasedCount, 0);
});

test('freeAll closes open sessions; leases reopen on next use and compute the same', async () => {
  const pool = new SessionPool({ intraOpNumThreads: 1 });
  const lease = pool.acquire(vaeDecoder());
  const before = await decodeOnce(lease);
  const first = await lease.session();
  assert.equal(await pool.freeAll(), 1);
  assert.equal(pool.openCount, 0);
  const after = await decodeOnce(lease);
  assert.notEqual(await lease.session(), first);
  assert.equal(pool.opened, 2);
  assert.deepEqual(after.data, before.data);
  await lease.release();
});

test('freeAll waits for a run in flight instead of pulling the session from under it', async () => {
  const pool = new SessionPool({ intraOpNumThreads: 1 });
  const lease = pool.acquire(vaeDecoder());
  await lease.session();
  const running = decodeOnce(lease);
  await pool.freeAll();
  assert.equal((await running).shape[1], 3);
  await lease.release();
});

test('a file ORT cannot load fails on use with the path and ORT\'s reason; a later use retries', async () => {
  const dir = tempDir('sessions');
  const file = join(dir, 'model.onnx');
  writeFileSync(file, 'this is not a protobuf');
  const pool = new SessionPool();
  const lease = pool.acquire(file);
  const err = await lease.session().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof SessionOpenError);
  assert.ok(err.message.includes(file) && err.ortMessage.length > 0, err.message);
  assert.equal(pool.openCount, 0);
  await lease.release();
});

test('settings: defaults (all cores, cpu) and clear errors for bad values', () => {
  const s = resolveSessionSettings();
  assert.equal(s.intraOpNumThreads, DEFAULT_SESSION_SETTINGS.intraOpNumThreads);
  assert.deepEqual(s.executionProviders, ['cpu']);
  assert.equal(s.intraOpSpinning, false, 'no busy-waiting threads on shared cores');
  assert.throws(() => new SessionPool({ intraOpNumThreads: 1.5 }), /intraOpNumThreads must be a whole number/);
  assert.throws(() => new SessionPool({ graphOptimizationLevel: 'max' as never }), /graphOptimizationLevel must be one of disabled, basic/);
  assert.throws(() => new SessionPool({ executionProviders: [] }), /at least one provider/);
});

// Idle sessions: what keeps TGATE's gated UNet open between KSampler runs without a second copy of the weights.
// The "derived" graph here is the same VAE file under other settings (a distinct session), in the plain file's group.
const derivedOptions = () => ({ keepOpenWhenIdle: true, weightsGroup: vaeDecoder() });

test('a keepOpenWhenIdle session stays open after its last release and is taken back without reopening', async () => {
  const pool = new SessionPool({ intraOpNumThreads: 1 });
  const first = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 }, derivedOptions());
  const session = await first.session();
  await first.release();
  assert.equal(pool.openCount, 1, 'the released session is still open');
  assert.equal(pool.idleCount, 1);
  assert.equal(pool.leasedCount, 0, 'idle is not leased');
  const again = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 }, derivedOptions());
  assert.equal(await again.session(), session, 'the same session, not a reopened one');
  assert.equal(pool.opened, 1);
  assert.equal(pool.idleCount, 0, 'leased again: no longer idle');
  assert.equal((await decodeOnce(again)).shape[1], 3);
  await again.release();
  assert.equal(await pool.freeAll(), 1, '/free closes idle sessions too');
  assert.equal(pool.openCount, 0);
  assert.equal(pool.idleCount, 0);
});

test('within the memory budget a plain and a derived graph of the same weights stay open together: alternating them opens nothing', async () => {
  const bytes = weightFileBytes(vaeDecoder());
  const pool = new SessionPool({ intraOpNumThreads: 1 }, { memoryBudgetBytes: 2 * bytes + 1 });
  const plain = pool.acquire(vaeDecoder());
  await decodeOnce(plain);
  for (let run = 0; run < 3; run++) {
    const derived = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 }, derivedOptions());
    await decodeOnce(derived);
    await derived.release();
    await decodeOnce(plain);
  }
  assert.equal(pool.opened, 2, 'each opened once, whatever the alternation');
  assert.equal(pool.closedForRoom, 0);
  assert.equal(pool.openBytes, 2 * bytes);
  await plain.release(); // the model is dropped (another checkpoint loaded): its derived graphs go with it
  assert.equal(pool.openCount, 0);
  assert.equal(pool.idleCount, 0);
});

test('over the memory budget, opening a graph closes the idle one, then the unused one of the same weights (it reopens on use), and says why', async () => {
  const bytes = weightFileBytes(vaeDecoder());
  const notices: string[] = [];
  const pool = new SessionPool({ intraOpNumThreads: 1 }, { memoryBudgetBytes: bytes + 1, onNotice: (m) => notices.push(m) });
  const plain = pool.acquire(vaeDecoder());
  await decodeOnce(plain);
  const derived = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 }, derivedOptions());
  await decodeOnce(derived); // the plain session is leased but not running: closed to make room
  assert.equal(pool.openCount, 1, 'never two copies over the budget');
  assert.match(notices.join('\n'), /closed .*decoder.* to open .*: the session memory budget is .* \(GATEGRAPH_SESSION_MEMORY \/ --session-memory\)/);
  await derived.release();
  assert.equal(pool.idleCount, 1);
  assert.equal((await decodeOnce(plain)).shape[1], 3, 'the plain lease reopens its session');
  assert.equal(pool.idleCount, 0, 'the idle derived graph was closed for it');
  assert.equal(pool.openCount, 1);
  assert.equal(pool.opened, 3);
  assert.equal(pool.closedForRoom, 2);
  // A session in use is never closed under its run: the budget is exceeded instead, and said.
  const other = pool.acquire(vaeDecoder(), { intraOpNumThreads: 3 }, { keepOpenWhenIdle: true, weightsGroup: 'other' });
  const session = await plain.session();
  const shape = session.inputMetadata[0]!.isTensor ? session.inputMetadata[0]!.shape.map((d) => (typeof d === 'number' ? d : 1)) : [];
  const running = plain.run({ latent_sample: { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape } });
  await new Promise((resolve) => setImmediate(resolve)); // the run has started
  await other.session();
  await running;
  assert.match(notices.at(-1)!, /goes over the session memory budget/);
  await other.release();
  await plain.release();
  assert.equal(pool.openCount, 1, 'the other weights\' idle graph stays (maxIdleSessions)');
  await pool.freeAll();
  assert.equal(pool.openCount, 0);
});

test('at most maxIdleSessions stay idle, least recently released closed first', async () => {
  assert.throws(() => new SessionPool({}, { maxIdleSessions: -1 }), /maxIdleSessions must be a whole number/);
  const pool = new SessionPool({ intraOpNumThreads: 1 }, { maxIdleSessions: 1 });
  const a = pool.acquire(vaeDecoder(), { intraOpNumThreads: 2 }, { keepOpenWhenIdle: true, weightsGroup: 'a' });
  const b = pool.acquire(vaeDecoder(), { intraOpNumThreads: 3 }, { keepOpenWhenIdle: true, weightsGroup: 'b' });
  await a.session();
  const sb = await b.session();
  await a.release();
  await b.release();
  assert.equal(pool.idleCount, 1);
  assert.equal(pool.openCount, 1);
  const b2 = pool.acquire(vaeDecoder(), { intraOpNumThreads: 3 }, { keepOpenWhenIdle: true, weightsGroup: 'b' });
  assert.equal(await b2.session(), sb, 'the most recently released one is the one kept');
  await b2.release();
  await pool.freeAll();
  const none = new SessionPool({ intraOpNumThreads: 1 }, { maxIdleSessions: 0 });
  const c = none.acquire(vaeDecoder(), {}, { keepOpenWhenIdle: true });
  await c.session();
  await c.release();
  assert.equal(none.openCount, 0, 'maxIdleSessions 0 closes on release');
});
