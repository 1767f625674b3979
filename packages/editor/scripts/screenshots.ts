/**
 * Screenshots of the editor for the docs: the default graph as a first visit shows it, and a gated graph
 * (GateSchedule -> CacheCrossAttn + CacheSelfAttn -> KSampler) after a run, with its step timelines and the
 * output image. Run from the repository root after building the editor:
 *
 *   node --import tsx packages/editor/scripts/screenshots.ts [--real]
 *
 * By default the server runs the test stand-ins of the diffusion nodes (instant, fake images). `--real` loads
 * the workspace's node packs instead (packages/nodes-tgate with the embedded model): real images, slower.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, type GategraphServer } from '@gategraph/server';
import { silentLogger } from '@gategraph/core';
import { assertEditorBuilt, distDir, launchBrowser, openEditor, repoRoot, startTestServer, type Win } from '../test/helpers.ts';

const real = process.argv.includes('--real');
const docs = join(repoRoot, 'docs');
mkdirSync(docs, { recursive: true });

assertEditorBuilt();
let url: string;
let close: () => Promise<void>;
if (real) {
  const server: GategraphServer = await startServer({ root: repoRoot, host: '127.0.0.1', port: 0, editorDir: distDir, customNodesDir: false, logger: silentLogger, env: {} });
  url = server.url;
  close = () => server.close();
} else {
  const server = await startTestServer();
  url = server.url;
  close = () => server.close();
}
const browser = await launchBrowser();
try {
  const { page } = await openEditor(browser.context, url);
  await page.setViewportSize({ width: 1600, height: 900 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(docs, 'editor-default-graph.png') });
  console.log('wrote docs/editor-default-graph.png');

  // The gated graph: TGATE nodes between the checkpoint's MODEL and the sampler, wired by socket type.
  const missing = await page.evaluate(() => {
    const app = (globalThis as unknown as Win).gategraph;
    const needed = ['GateSchedule', 'CacheCrossAttn', 'CacheSelfAttn'].filter((t) => !app.objectInfo[t]);
    if (needed.length) return needed;
    const checkpoint = app.nodeById(4);
    const sampler = app.nodeById(3);
    const y = Math.max(...app.nodes.map((n: { pos: number[]; size: number[] }) => n.pos[1]! + n.size[1]!)) + 80;
    const gate = app.addNode('GateSchedule', [checkpoint.pos[0], y]);
    const cross = app.addNode('CacheCrossAttn', [checkpoint.pos[0] + 390, y]);
    const self = app.addNode('CacheSelfAttn', [checkpoint.pos[0] + 780, y]);
    // (No helper functions in here: tsx would wrap them in a helper the page does not have.)
    type Slots = { inputs: { type: string }[]; outputs: { type: string }[]; connect(o: number, n: unknown, i: number): void };
    const links: [Slots, string, Slots][] = [
      [checkpoint, 'MODEL', cross],
      [gate, 'GATE_SCHEDULE', cross],
      [gate, 'GATE_SCHEDULE', self],
      [cross, 'MODEL', self],
      [self, 'MODEL', sampler],
    ];
    for (const [from, type, to] of links) {
      from.connect(from.outputs.findIndex((o) => o.type === type), to, to.inputs.findIndex((i) => i.type === type));
    }
    app.fitView();
    return [];
  });
  const shot = missing.length ? 'editor-default-run.png' : 'editor-gated-run.png';
  if (missing.length) console.log(`no gated graph (the server has no ${missing.join(', ')}): running the default graph`);
  {
    await page.locator('#gg-queue').click();
    // Done when the output image is shown; a failed run ends the wait with its error message.
    await page.waitForFunction(
      () => {
        const w = globalThis as unknown as Win;
        const img = w.gategraph.nodeById(9)?.gg.images[0];
        return (img !== undefined && img.complete && img.naturalWidth > 0) || w.document.querySelector('.gg-toast-error') !== null;
      },
      undefined,
      { timeout: real ? 600_000 : 30_000 },
    );
    const failure = await page.locator('.gg-toast-error').first().textContent({ timeout: 100 }).catch(() => null);
    if (failure) throw new Error(`the run failed: ${failure}`);
    await page.evaluate(() => (globalThis as unknown as Win).gategraph.fitView());
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(docs, shot) });
    console.log(`wrote docs/${shot}`);
  }
  await page.close();
} finally {
  await browser.close();
  await close();
}
