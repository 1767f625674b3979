// The workspace install as the README runs it prints no warning a newcomer has to act on: the dependencies
// whose install scripts are skipped on purpose are declared (pnpm-workspace.yaml), so pnpm's "Ignored build
// scripts ... pnpm approve-builds" box does not appear. Checked by a real, offline install of this lockfile into
// an empty folder holding only the workspace's manifests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { packageManager: string; scripts: Record<string, string> };

test('installing the workspace from its lockfile shows no "Ignored build scripts" warning', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-install-'));
  try {
    for (const file of ['pnpm-lock.yaml', 'pnpm-workspace.yaml', '.npmrc']) cpSync(join(root, file), join(dir, file));
    // The root's own postinstall builds the editor from sources this folder does not have: left out.
    const { postinstall: _, ...scripts } = manifest.scripts;
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...manifest, scripts }));
    for (const group of ['packages', 'examples']) {
      for (const name of readdirSync(join(root, group))) {
        mkdirSync(join(dir, group, name), { recursive: true });
        cpSync(join(root, group, name, 'package.json'), join(dir, group, name, 'package.json'));
      }
    }
    // --offline: everything comes from the store the workspace's own install filled.
    const install = spawnSync('npx', ['-y', manifest.packageManager, 'install', '--frozen-lockfile', '--offline'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    });
    const output = `${install.stdout}${install.stderr}`;
    assert.equal(install.status, 0, output);
    assert.doesNotMatch(output, /Ignored build scripts|approve-builds/, output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
