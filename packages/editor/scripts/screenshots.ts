/**
 * Screenshots of the editor for the docs, made on the server `pnpm serve` runs (packages/nodes-tgate and the
 * embedded model models/tiny-sd; see startRealServer): the default graph as a first visit shows it, and the
 * default graph with TGATE (GateSchedule -> CacheCrossAttn between the loader and the sampler, added with the
 * mouse as the browser test does) after a real run, with its step timeline and the generated image. Run from
 * the repository root after building the editor:
 *
 *   node --import tsx packages/editor/scripts/screenshots.ts
 *
 * Writes docs/editor-default-graph.png, docs/editor-gated-run.png and docs/editor-workspace.png (the
 * "Plain vs TGATE" template opened from the Templates panel in a second tab and run: both samplers' images,
 * the history with run times). (`--real` is accepted for old command
 * lines: every run is real now.)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { insertTgateWithMouse, launchBrowser, openEditor, repoRoot, startRealServer, type Win } from '../test/helpers.ts';

const docs = join(repoRoot, 'docs');
mkdirSync(docs, { recursive: true });

const server = await startRealServer();
const browser = await launchBrowser();
try {
  const { page } = await openEditor(browser.context, server.url);
  await page.locator('#gg-connection[data-state="open"]').waitFor();
  await page.screenshot({ path: join(docs, 'editor-default-graph.png') });
  console.log('wrote docs/editor-default-graph.png');

  await insertTgateWithMouse(page);
  await page.locator('#gg-queue').click();
  // Done when the output image is shown; a failed run ends the wait with its error message.
  await page.waitForFunction(
    () => {
      const w = globalThis as unknown as Win;
      const img = w.gategraph.nodeById(9)?.gg.images[0];
      return (img !== undefined && img.complete && img.naturalWidth > 0) || w.document.querySelector('.gg-toast-error') !== null;
    },
    undefined,
    { timeout: 300_000 },
  );
  const failure = await page.locator('.gg-toast-error').first().textContent({ timeout: 100 }).catch(() => null);
  if (failure) throw new Error(`the run failed: ${failure}`);
  // The queue panel catches up (the run moves to History), and the run's toasts fade out on their own.
  await page.locator('.gg-history li.gg-status-success').waitFor();
  await page.locator('.gg-running li').waitFor({ state: 'detached' });
  await page.locator('.gg-toast').first().waitFor({ state: 'detached', timeout: 15_000 }).catch(() => undefined);
  await page.evaluate(() => {
    const app = (globalThis as unknown as Win).gategraph;
    app.canvas.deselectAllNodes();
    app.fitView();
  });
  await page.screenshot({ path: join(docs, 'editor-gated-run.png') });
  console.log('wrote docs/editor-gated-run.png');

  await page.locator('.gg-sidebar-button[data-panel="templates"]').click();
  await page.locator('li[data-template="tgate-compare"]').click();
  const runs = await page.locator('.gg-history li.gg-status-success').count();
  await page.locator('#gg-queue').click();
  await page.waitForFunction(
    (runs) => (globalThis as unknown as Win).document.querySelectorAll('.gg-history li.gg-status-success').length > runs ||
      (globalThis as unknown as Win).document.querySelector('.gg-toast-error') !== null,
    runs,
    { timeout: 300_000 },
  );
  const failed = await page.locator('.gg-toast-error').first().textContent({ timeout: 100 }).catch(() => null);
  if (failed) throw new Error(`the template's run failed: ${failed}`);
  await page.locator('.gg-toast').first().waitFor({ state: 'detached', timeout: 15_000 }).catch(() => undefined);
  await page.evaluate(() => (globalThis as unknown as Win).gategraph.fitView());
  await page.screenshot({ path: join(docs, 'editor-workspace.png') });
  console.log('wrote docs/editor-workspace.png');
  await page.close();
} finally {
  await browser.close();
  await server.close();
}
