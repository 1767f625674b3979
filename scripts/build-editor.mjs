#!/usr/bin/env node
// Builds the web editor (packages/editor/dist) when it is missing or older than its sources, so that
// `pnpm install` leaves a checkout whose `pnpm serve` opens the editor, and the test run does not build it twice.
// `--force` builds whatever the state. The editor bundles files of packages/core and packages/diffusion too,
// so their sources count as inputs.
// Usage: node scripts/build-editor.mjs [--force]
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const editor = join(root, 'packages', 'editor');
const builtMarker = join(editor, 'dist', 'index.html');
const inputs = [
  join(editor, 'web'),
  join(editor, 'vite.config.ts'),
  join(editor, 'tsconfig.json'),
  join(editor, 'package.json'),
  join(root, 'packages', 'core', 'src'),
  join(root, 'packages', 'diffusion', 'src'),
  join(root, 'workflows', 'default.ui.json'),
  join(root, 'pnpm-lock.yaml'),
];

/** The newest modification time of a file, or of any file under a folder (0 when absent). */
function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return newest;
}

const force = process.argv.includes('--force');
const builtAt = existsSync(builtMarker) ? statSync(builtMarker).mtimeMs : 0;
const sourcesAt = Math.max(...inputs.map(newestMtime));
if (!force && builtAt > 0 && builtAt >= sourcesAt) {
  console.log('editor: packages/editor/dist is up to date');
  process.exit(0);
}
console.log(builtAt ? 'editor: sources changed, building packages/editor/dist' : 'editor: building packages/editor/dist');
// The package's own build script (type check, then vite), through the pnpm that runs this script.
const pnpm = process.env.npm_execpath;
const [command, args] = pnpm ? [process.execPath, [pnpm]] : ['pnpm', []];
const result = spawnSync(command, [...args, '--filter', '@gategraph/editor', 'build'], { cwd: root, stdio: 'inherit' });
if (result.error) {
  console.error(`editor: could not run pnpm (${result.error.message}); build it with: npx -y pnpm@10 --filter @gategraph/editor build`);
  process.exit(1);
}
process.exit(result.status ?? 1);
