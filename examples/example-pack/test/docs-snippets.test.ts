import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// docs/authoring-nodes.md promises that its code compiles: every ts/js/json snippet must be an excerpt of a
// file of this pack, which tsc checks and the other tests run. Indentation and blank lines are ignored.
const packRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const docPath = join(dirname(dirname(packRoot)), 'docs', 'authoring-nodes.md');

const meaningfulLines = (text: string) => text.split('\n').map((line) => line.trim()).filter(Boolean);

function packSources(): Map<string, string[]> {
  const sources = new Map<string, string[]>();
  for (const entry of readdirSync(packRoot, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath ?? entry.path, entry.name);
    if (!entry.isFile() || !/\.(ts|js|json)$/.test(entry.name) || path.includes('node_modules')) continue;
    sources.set(relative(packRoot, path), meaningfulLines(readFileSync(path, 'utf8')));
  }
  return sources;
}

const contains = (haystack: string[], needle: string[]) =>
  haystack.some((_, start) => needle.every((line, i) => haystack[start + i] === line));

test('every code snippet in docs/authoring-nodes.md is an excerpt of the example pack', () => {
  const snippets = [...readFileSync(docPath, 'utf8').matchAll(/```(ts|js|json)\n([\s\S]*?)```/g)];
  assert.ok(snippets.length >= 10, `expected the doc's snippets, found ${snippets.length}`);
  const sources = packSources();
  for (const [, lang, code] of snippets) {
    const lines = meaningfulLines(code!);
    const found = [...sources.values()].some((source) => contains(source, lines));
    assert.ok(found, `this ${lang} snippet of docs/authoring-nodes.md is not in any file of examples/example-pack:\n${code}`);
  }
});
