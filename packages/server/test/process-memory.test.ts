// /system_stats' rss_peak and the benchmarks' per-configuration peaks: a process's own peak, not its parent's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { peakResidentBytes } from '../src/process-memory.ts';

const MIB = 2 ** 20;

test('the peak is at least the current resident size', () => {
  assert.ok(peakResidentBytes() >= process.memoryUsage().rss - MIB);
});

test('a child spawned by a process holding 400 MB reports its own peak, not the parent\'s', { skip: process.platform !== 'linux' && 'VmHWM is Linux-only' }, () => {
  const held = Buffer.alloc(400 * MIB, 1); // resident: every page written
  const module = fileURLToPath(new URL('../src/process-memory.ts', import.meta.url));
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(module)}).then((m) => console.log(m.peakResidentBytes()))`], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const childPeak = Number(child.stdout.trim());
  assert.ok(childPeak > 10 * MIB && childPeak < 300 * MIB, `child peak ${(childPeak / MIB).toFixed(0)} MiB while the parent holds ${(held.length / MIB).toFixed(0)} MiB`);
});
