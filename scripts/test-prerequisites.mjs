// The programs some test files drive, installed from Debian's packages when missing, so the README's test line
// runs every test on a bare machine. Nothing is skipped for a missing program: either it gets installed, or the
// run stops with one sentence saying what to install.
import { accessSync, constants } from 'node:fs';
import { spawnSync } from 'node:child_process';

/**
 * Each prerequisite: which test files need it, where the tests look for it, and the Debian package that
 * provides it. `path` must match what the tests themselves resolve (see packages/editor/test/helpers.ts).
 */
const PREREQUISITES = [
  {
    program: 'Chromium',
    neededBy: (file) => file.startsWith('packages/editor/'),
    path: () => process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    present: () => isExecutable(process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'),
    override: 'CHROMIUM_PATH',
    debianPackages: ['chromium'],
  },
  {
    // The Redis deployment tests start their own redis-server (packages/server/test/fixtures/redis-deployment.ts).
    program: 'Redis (redis-server)',
    neededBy: (file) => file.startsWith('packages/server/test/redis-') || file.startsWith('bench/scale'),
    path: () => process.env.REDIS_SERVER ?? '/usr/bin/redis-server',
    present: () => isExecutable(process.env.REDIS_SERVER ?? '/usr/bin/redis-server'),
    override: 'REDIS_SERVER',
    debianPackages: ['redis-server'],
  },
  {
    // The published-layout tests generate their models (random weights, SD's block structure) with PyTorch:
    // tools/test-models, through packages/diffusion/test/fixtures/published-models.ts.
    program: 'PyTorch and ONNX for Python (to generate the test models)',
    neededBy: (file) => /published-models/.test(file),
    path: () => '/usr/bin/python3 (import torch, onnx)',
    present: () => spawnSync('/usr/bin/python3', ['-c', 'import torch, onnx'], { stdio: 'ignore' }).status === 0,
    debianPackages: ['python3-torch', 'python3-onnx', 'libopenblas0-pthread'],
  },
];

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function run(command, args) {
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) throw new Error(`${command} could not be started: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
}

/**
 * Makes sure the programs the selected test files need are there. Returns an error message (one sentence)
 * when one is missing and cannot be installed here, else undefined.
 */
export function ensureTestPrerequisites(files) {
  const missing = PREREQUISITES.filter((p) => files.some(p.neededBy) && !p.present());
  if (missing.length === 0) return undefined;
  const names = missing.map((p) => p.program).join(' and ');
  const packages = missing.flatMap((p) => p.debianPackages);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (process.env.CHROMIUM_PATH && missing.some((p) => p.override === 'CHROMIUM_PATH')) {
    return `CHROMIUM_PATH is ${process.env.CHROMIUM_PATH}, which is not an executable file: point it at a Chromium binary or unset it.`;
  }
  if (!isRoot || !hasApt) {
    return (
      `The tests need ${names}, which is not installed: install it (on Debian or Ubuntu: sudo apt-get install -y ${packages.join(' ')})` +
      `${missing.some((p) => p.override) ? ' or point ' + missing.map((p) => p.override).filter(Boolean).join('/') + ' at one' : ''}, then run the tests again.`
    );
  }
  console.log(`run-tests: installing ${names} (Debian package${packages.length > 1 ? 's' : ''} ${packages.join(', ')}) for the tests`);
  try {
    // Another apt run (an unattended upgrade, a second install) holds dpkg's lock: wait for it, not fail.
    const waitForLock = ['-o', 'DPkg::Lock::Timeout=600'];
    run('apt-get', [...waitForLock, 'update', '-q']);
    run('apt-get', [...waitForLock, 'install', '-y', '-q', ...packages]);
  } catch (error) {
    return `Installing ${packages.join(', ')} failed (${error.message}): install it by hand, then run the tests again.`;
  }
  const still = missing.filter((p) => !p.present());
  if (still.length) return `${still.map((p) => p.program).join(' and ')} is still not at ${still.map((p) => p.path()).join(', ')} after installing it.`;
  return undefined;
}
