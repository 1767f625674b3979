#!/usr/bin/env node
// Runs the benchmarks in bench/ one after another (or those whose file name contains an argument).
// Each prints its own side-by-side figures; see bench/README.md.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);
const scripts = readdirSync(new URL('../bench/', import.meta.url))
  .filter((f) => f.endsWith('.ts') && (!filters.length || filters.some((x) => f.includes(x))))
  .sort();
let failed = 0;
for (const script of scripts) {
  console.log(`\n== bench/${script}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', `bench/${script}`], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
