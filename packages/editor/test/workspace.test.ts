/**
 * The workspace around the canvas, in real Chromium against the real server: workflow tabs (each its own
 * graph and undo history, kept over a reload; a file opened replacing an untouched temporary tab, else in a new
 * tab), templates bundled from the repository's workflows/, the
 * server's workflow browser (open, delete), the node library (click and drag), the model library (a loader with
 * the file chosen), and settings kept in /userdata/comfy.settings.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { editorSession, nodesOfClass, openEditor, repoRoot, waitReady, type Win } from './helpers.ts';

const session = editorSession();

const nodeCount = (page: Page) => page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.length as number);
const tabNames = (page: Page) => page.locator('.gg-tab span').allTextContents();

/** The undo history has recorded the graph as it is now. */
async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const tracker = (globalThis as unknown as Win).gategraph.changeTracker;
    return tracker.history.current === tracker.state();
  });
}

describe('workspace', () => {
  test('tabs keep separate graphs and undo histories, also over a reload', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const first = await nodeCount(page);
    assert.equal(first, 7, 'the default graph in the first tab');
    await page.locator('.gg-tab-new').click();
    assert.equal(await nodeCount(page), 0, 'a new tab is empty');
    assert.equal(await page.locator('.gg-tab').count(), 2);
    assert.equal(await page.locator('.gg-tab-active').count(), 1);

    // A node from the node library, then a second one; Ctrl+Z undoes only in this tab.
    await page.locator('.gg-sidebar-button[data-panel="nodes"]').click();
    await page.locator('details[data-category="sampling"] > summary').click();
    await page.locator('.gg-panel-item[data-type="KSampler"]').click();
    await settled(page);
    await page.locator('details[data-category="latent"] > summary').click();
    await page.locator('.gg-panel-item[data-type="EmptyLatentImage"]').click();
    await settled(page);
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.map((n: { comfyClass: string }) => n.comfyClass)), ['KSampler', 'EmptyLatentImage']);

    await page.locator('.gg-tab').first().click();
    assert.equal(await nodeCount(page), 7, 'the first tab shows its own graph');
    await page.keyboard.press('Control+z');
    assert.equal(await nodeCount(page), 7, 'nothing to undo in the first tab: the other tab\'s additions are not its history');

    await page.locator('.gg-tab').nth(1).click();
    assert.equal(await nodeCount(page), 2);
    await page.keyboard.press('Control+z');
    assert.deepEqual(await nodesOfClass(page, 'EmptyLatentImage'), [], 'Ctrl+Z in the second tab removed its last node');
    assert.equal(await nodeCount(page), 1);
    await settled(page);

    await page.reload();
    await waitReady(page);
    assert.equal(await page.locator('.gg-tab').count(), 2, 'the tabs survive a reload');
    assert.equal(await nodeCount(page), 1, 'the active tab is shown as it was left');
    await page.keyboard.press('Control+y');
    assert.equal(await nodeCount(page), 2, 'and goes on with its redo');
    await page.locator('.gg-tab').first().click();
    assert.equal(await nodeCount(page), 7);

    // Closing the active tab shows the other one.
    await page.locator('.gg-tab').first().locator('.gg-tab-close').click();
    assert.equal(await page.locator('.gg-tab').count(), 1);
    assert.equal(await nodeCount(page), 2);
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('opening a file replaces an unchanged temporary tab (a first visit\'s default graph, a new tab), else opens a new tab', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void (dialog.type() === 'prompt' ? dialog.accept('kept') : dialog.accept()));
    const latents = (count: number) => ({
      last_node_id: count, last_link_id: 0, links: [], groups: [], config: {}, extra: {}, version: 0.4,
      nodes: Array.from({ length: count }, (_, i) => ({
        id: i + 1, type: 'EmptyLatentImage', pos: [50, 50 + i * 160], size: [300, 110], flags: {}, order: i, mode: 0, properties: {}, widgets_values: [64, 64, 1],
      })),
    });
    const open = async (name: string, nodes: number) => {
      await page.locator('#gg-file').setInputFiles({ name, mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(latents(nodes))) });
      await page.locator('.gg-toast', { hasText: `Opened ${name}` }).last().waitFor();
    };
    const addFromLibrary = async () => {
      if ((await page.locator('.gg-panel-nodes').count()) === 0) await page.locator('.gg-sidebar-button[data-panel="nodes"]').click();
      const item = page.locator('.gg-panel-item[data-type="EmptyLatentImage"]');
      if (!(await item.isVisible())) await page.locator('details[data-category="latent"] > summary').click();
      await item.click();
      await settled(page);
    };
    const activeName = () => page.locator('.gg-tab-active span').textContent();

    assert.deepEqual(await tabNames(page), ['Unsaved Workflow']);
    await open('a.json', 1);
    assert.deepEqual(await tabNames(page), ['a'], 'the untouched default graph of a first visit was replaced');
    assert.equal(await nodeCount(page), 1);

    await addFromLibrary();
    await open('b.json', 2);
    assert.deepEqual(await tabNames(page), ['a', 'b'], 'a changed tab is kept: the file opened in a new one');
    assert.equal(await activeName(), 'b');
    assert.equal(await nodeCount(page), 2);
    // (On its name: the middle of a tab named "a" is its close button.)
    await page.locator('.gg-tab').first().locator('span').click();
    assert.equal(await activeName(), 'a');
    assert.equal(await nodeCount(page), 2, 'a kept its change');

    // A new empty tab is temporary and untouched: replaced.
    await page.locator('.gg-tab-new').click();
    await open('c.json', 3);
    assert.deepEqual(await tabNames(page), ['a', 'b', 'c']);
    // A change undone is no change (ComfyUI compares with what was opened).
    await addFromLibrary();
    await page.keyboard.press('Control+z');
    assert.equal(await nodeCount(page), 3);
    await open('d.json', 1);
    assert.deepEqual(await tabNames(page), ['a', 'b', 'd']);

    // Saved on the server, a workflow is no longer temporary: the next file gets its own tab.
    await page.locator('.gg-sidebar-button[data-panel="workflows"]').click();
    await page.getByRole('button', { name: 'Save current…' }).click();
    await page.locator('.gg-toast', { hasText: 'Saved kept.json on the server' }).waitFor();
    await open('e.json', 2);
    assert.deepEqual(await tabNames(page), ['a', 'b', 'd', 'e']);

    // What each tab was opened as survives a reload: e is still untouched.
    await page.reload();
    await waitReady(page);
    await open('f.json', 1);
    assert.deepEqual(await tabNames(page), ['a', 'b', 'd', 'f']);
    assert.equal(await nodeCount(page), 1);
    await page.locator('.gg-tab span', { hasText: /^d$/ }).click();
    assert.equal(await nodeCount(page), 1, 'd is as it was opened');
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
    // The workflow browser's test expects an empty list.
    await fetch(`${session.server.url}/userdata/${encodeURIComponent('workflows/kept.json')}`, { method: 'DELETE' });
  });

  test('templates open in a new tab, the TGATE comparison with its two samplers', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await page.locator('.gg-sidebar-button[data-panel="templates"]').click();
    const ids = await page.locator('.gg-panel-templates li').evaluateAll((lis) => lis.map((li) => (li as unknown as { dataset: { template: string } }).dataset.template));
    assert.deepEqual(ids.sort(), ['default', 'tgate', 'tgate-compare'], 'the repository\'s workflows (default.json is the API twin of default.ui.json)');
    await page.locator('li[data-template="tgate-compare"]').click();
    assert.deepEqual(await tabNames(page), ['Unsaved Workflow', 'Plain vs TGATE']);
    const file = JSON.parse(readFileSync(join(repoRoot, 'workflows', 'tgate-compare.json'), 'utf8')) as Record<string, { class_type: string }>;
    const types = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.map((n: { comfyClass: string }) => n.comfyClass).sort());
    assert.deepEqual(types, Object.values(file).map((n) => n.class_type).sort(), 'every node of workflows/tgate-compare.json');
    assert.equal((await nodesOfClass(page, 'KSampler')).length, 2, 'plain and TGATE samplers side by side');
    // Every node is in view (the template is laid out and fitted).
    const inView = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      return app.nodes.every((n: { pos: [number, number]; size: [number, number] }) => {
        const [x, y] = app.canvas.convertOffsetToCanvas([n.pos[0], n.pos[1]]);
        const [x2, y2] = app.canvas.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
        return x >= 0 && y >= 0 && x2 <= app.canvasEl.width && y2 <= app.canvasEl.height;
      });
    });
    assert.ok(inView, 'the whole template is visible');
    const { prompt } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.deepEqual(Object.keys(prompt).sort(), Object.keys(file).sort(), 'it queues as the file is');
    await page.close();
  });

  test('the workflow browser lists, opens and deletes server workflows', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void (dialog.type() === 'prompt' ? dialog.accept('my flow') : dialog.accept()));
    await page.locator('.gg-sidebar-button[data-panel="workflows"]').click();
    await page.locator('.gg-panel-empty', { hasText: 'No workflows saved yet' }).waitFor();
    await page.getByRole('button', { name: 'Save current…' }).click();
    await page.locator('li[data-workflow="my flow.json"]').waitFor();
    const listed = (await (await fetch(`${session.server.url}/userdata?dir=workflows`)).json()) as string[];
    assert.deepEqual(listed, ['my flow.json']);

    await page.locator('li[data-workflow="my flow.json"] span').click();
    await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelectorAll('.gg-tab').length === 2);
    assert.deepEqual(await tabNames(page), ['Unsaved Workflow', 'my flow']);
    assert.equal(await nodeCount(page), 7);

    await page.locator('li[data-workflow="my flow.json"]').getByRole('button', { name: 'Delete' }).click();
    await page.locator('li[data-workflow="my flow.json"]').waitFor({ state: 'detached' });
    assert.deepEqual((await (await fetch(`${session.server.url}/userdata?dir=workflows`)).json()) as string[], []);
    await page.close();
  });

  test('a node dragged from the library lands where it is dropped; the model library adds a loader with the file', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await page.locator('.gg-sidebar-button[data-panel="nodes"]').click();
    await page.locator('.gg-panel-nodes input[type="search"]').fill('vae decode');
    const item = page.locator('.gg-panel-item[data-type="VAEDecode"]');
    const box = (await page.locator('#gg-canvas').boundingBox())!;
    const target = { x: box.x + 120, y: box.y + box.height - 60 };
    const before = await nodesOfClass(page, 'VAEDecode');
    await item.dragTo(page.locator('#gg-canvas'), { targetPosition: { x: 120, y: box.height - 60 } });
    const added = (await nodesOfClass(page, 'VAEDecode')).filter((id) => !before.includes(id));
    assert.equal(added.length, 1, 'the drop added one VAEDecode');
    const at = await page.evaluate((id) => {
      const app = (globalThis as unknown as Win).gategraph;
      const node = app.nodeById(id);
      const [x, y] = app.canvas.convertOffsetToCanvas([node.pos[0], node.pos[1]]);
      const rect = app.canvasEl.getBoundingClientRect();
      return { x: rect.left + x, y: rect.top + y };
    }, added[0]!);
    assert.ok(Math.abs(at.x - target.x) < 3 && Math.abs(at.y - target.y) < 3, `placed at the drop point: ${JSON.stringify(at)} vs ${JSON.stringify(target)}`);

    await page.locator('.gg-sidebar-button[data-panel="models"]').click();
    const checkpoints = page.locator('ul[data-kind="ckpt_name"] li');
    assert.ok((await checkpoints.allTextContents()).includes('tiny-sd'));
    const loaders = await nodesOfClass(page, 'CheckpointLoaderSimple');
    await page.locator('ul[data-kind="ckpt_name"] li[data-file="tiny-sd"]').click();
    const newLoader = (await nodesOfClass(page, 'CheckpointLoaderSimple')).filter((id) => !loaders.includes(id));
    assert.equal(newLoader.length, 1);
    const value = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).widgets[0].value, newLoader[0]!);
    assert.equal(value, 'tiny-sd');
    await page.close();
  });

  test('settings (link style, snap to grid) are saved in comfy.settings.json and applied after a reload', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await page.locator('#gg-settings').click();
    const saved = () => page.waitForResponse((r) => r.url().includes('/userdata/comfy.settings.json') && r.request().method() === 'POST');
    await Promise.all([saved(), page.locator('.gg-settings select[name="Comfy.LinkRenderMode"]').selectOption({ label: 'Straight' })]);
    await Promise.all([saved(), page.locator('.gg-settings input[name="pysssss.SnapToGrid"]').check()]);
    await page.keyboard.press('Escape');
    const file = (await (await fetch(`${session.server.url}/userdata/comfy.settings.json`)).json()) as Record<string, unknown>;
    assert.equal(file['Comfy.LinkRenderMode'], 0);
    assert.equal(file['pysssss.SnapToGrid'], true);
    await page.reload();
    await waitReady(page);
    const applied = await page.evaluate(() => {
      const canvas = (globalThis as unknown as Win).gategraph.canvas;
      return { mode: canvas.links_render_mode, snap: canvas.align_to_grid };
    });
    assert.deepEqual(applied, { mode: 0, snap: true });

    // A node dragged now lands on the 10 px grid.
    const pos = await page.evaluate(() => Array.from((globalThis as unknown as Win).gategraph.nodeById(5).pos as number[]).slice(0, 2));
    const start = await page.evaluate((p) => {
      const app = (globalThis as unknown as Win).gategraph;
      const [x, y] = app.canvas.convertOffsetToCanvas([p[0]! + 40, p[1]! - 15]);
      const rect = app.canvasEl.getBoundingClientRect();
      return { x: rect.left + x, y: rect.top + y };
    }, pos);
    await page.mouse.move(start.x, start.y);
    await page.mouse.down();
    await page.mouse.move(start.x + 37, start.y + 23, { steps: 5 });
    await page.mouse.up();
    const moved = await page.evaluate(() => Array.from((globalThis as unknown as Win).gategraph.nodeById(5).pos as number[]).slice(0, 2));
    assert.notDeepEqual(moved, pos, 'the node moved');
    assert.deepEqual(moved.map((v) => v % 10), [0, 0], `snapped to the grid: ${moved}`);
    await page.close();
  });
});
