#!/usr/bin/env node
// Runs every workspace test file with Node's own test runner, TypeScript loaded through tsx.
// Node 20's `--test` does not discover .ts files or expand globs, so we list them here.
// Programs the selected tests drive (Chromium) are installed first when missing (scripts/test-prerequisites.mjs).
// Usage: node scripts/run-tests.mjs [substring filter ...]
import { readdirSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureTestPrerequisites } from './test-prerequisites.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);
const roots = ['packages', 'examples', 'scripts'].map((d) => join(root, d)).filter(existsSync);

const files = [];
for (const base of roots) {
  for (const entry of readdirSync(base, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.test\.ts$/.test(entry.name)) continue;
    const full = join(entry.parentPath ?? entry.path, entry.name);
    const rel = relative(root, full);
    if (rel.includes('node_modules')) continue;
    if (filters.length && !filters.some((f) => rel.includes(f))) continue;
    files.push(rel);
  }
}
files.sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched', filters.join(' '));
  process.exit(1);
}
const missing = ensureTestPrerequisites(files);
if (missing) {
  console.error(`run-tests: ${missing}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
