/**
 * The queue and history panel as a ComfyUI user reads it, in real Chromium against the real server: a failed
 * run says which node failed and why, an interrupted one says "interrupted" (not "error"), runs show how long
 * they took, an entry's images open as a gallery (its button or a thumbnail; next / previous by buttons and
 * arrow keys, Escape), the tab title shows progress while a prompt runs,
 * a node's output image can be opened, saved and copied from its menu, and a prompt a script queued (no
 * editor workflow) loads into the canvas from its history entry.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { editorSession, graphToPage, openEditor, type Win } from './helpers.ts';

const session = editorSession();

/** Queues an API prompt the way a script does: POST /prompt with no editor workflow and another client id. */
async function queueFromScript(prompt: unknown): Promise<string> {
  const response = await fetch(`${session.server.url}/prompt`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, client_id: 'a-script' }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { prompt_id: string }).prompt_id;
}

async function setWidget(page: Page, node: number, name: string, value: unknown): Promise<void> {
  await page.evaluate(
    ({ node, name, value }) => {
      const widget = (globalThis as unknown as Win).gategraph.nodeById(node).widgets.find((w: { name: string }) => w.name === name);
      widget.value = value;
    },
    { node, name, value },
  );
}

async function queueFromEditor(page: Page): Promise<string> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/prompt') && r.request().method() === 'POST'),
    page.locator('#gg-queue').click(),
  ]);
  return ((await response.json()) as { prompt_id: string }).prompt_id;
}

describe('queue and history', () => {
  test('a failed run names the node and the message; a script-queued prompt loads into the canvas from history', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    // The pattern "[" reaches RegexReplace over a link, so validation lets it through and it fails when run.
    const id = await queueFromScript({
      '1': { class_type: 'StringConcat', inputs: { a: '[', b: '', separator: '' } },
      '2': { class_type: 'RegexReplace', inputs: { text: 'abc', pattern: ['1', 0], replacement: 'x', ignore_case: false } },
      '3': { class_type: 'ShowText', inputs: { value: ['2', 0] } },
    });
    const entry = page.locator(`.gg-history li[data-prompt-id="${id}"]`);
    await entry.locator('.gg-run-reason').waitFor({ timeout: 30_000 });
    assert.deepEqual(await entry.evaluate((li) => [...li.classList]), ['gg-status-error']);
    assert.match(await entry.locator('span').first().textContent() ?? '', /error$/);
    const reason = (await entry.locator('.gg-run-reason').textContent()) ?? '';
    assert.match(reason, /^RegexReplace #2: /, 'the failing node, by type and id');
    assert.match(reason, /not a valid regular expression/, 'and the exception message');
    assert.match((await entry.locator('.gg-run-time').textContent()) ?? '', /^\d+(\.\d)? s$/, 'the run time');

    // No workflow came with it: Load builds the graph from the API prompt, links included.
    await entry.getByRole('button', { name: 'Load' }).click();
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodes.some((n: { comfyClass: string }) => n.comfyClass === 'RegexReplace'));
    const graph = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      return {
        types: app.nodes.map((n: { comfyClass: string }) => n.comfyClass).sort(),
        patternFrom: app.nodeById(2).getInputNode(app.nodeById(2).findInputSlot('pattern'))?.comfyClass,
        text: app.nodeById(2).widgets.find((w: { name: string }) => w.name === 'replacement').value,
      };
    });
    assert.deepEqual(graph, { types: ['RegexReplace', 'ShowText', 'StringConcat'], patternFrom: 'StringConcat', text: 'x' });
    await page.close();
  });

  test('an interrupted run shows as interrupted; the tab title shows progress meanwhile and comes back after', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    assert.equal(await page.title(), 'gategraph');
    await setWidget(page, 3, 'steps', 2000);
    const id = await queueFromEditor(page);
    await page.waitForFunction(() => /^\[\d+%\] gategraph$/.test((globalThis as unknown as Win).document.title), undefined, { timeout: 60_000 });
    await page.keyboard.press('Control+Alt+Enter');
    const entry = page.locator(`.gg-history li[data-prompt-id="${id}"]`);
    await entry.waitFor({ timeout: 30_000 });
    assert.deepEqual(await entry.evaluate((li) => [...li.classList]), ['gg-status-interrupted']);
    assert.match((await entry.locator('span').first().textContent()) ?? '', /interrupted$/);
    assert.match((await entry.locator('.gg-run-reason').textContent()) ?? '', /^at KSampler #3/, 'where it stopped');
    await page.waitForFunction(() => (globalThis as unknown as Win).document.title === 'gategraph');
    await page.close();
  });

  test('an entry with several images opens them as a gallery: its button and thumbnails, next / previous by buttons and arrows, Escape closes; the node menu opens, saves and copies its image', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await setWidget(page, 5, 'batch_size', 3);
    await setWidget(page, 3, 'steps', 3);
    const id = await queueFromEditor(page);
    const entry = page.locator(`.gg-history li[data-prompt-id="${id}"].gg-status-success`);
    await entry.waitFor({ timeout: 60_000 });
    assert.match((await entry.locator('.gg-run-time').textContent()) ?? '', /^\d+(\.\d)? s$/);
    const thumbs = entry.locator('img.gg-thumb');
    assert.equal(await thumbs.count(), 3);
    const box = page.locator('.gg-lightbox');
    const caption = async () => (await box.locator('figcaption').textContent()) ?? '';
    const shown = () => box.locator('img').evaluate((img) => (img as unknown as { src: string }).src);

    // The entry's "3 images" button opens the gallery on the first.
    await entry.getByRole('button', { name: '3 images' }).click();
    await box.waitFor();
    await page.waitForFunction(() => {
      const img = (globalThis as unknown as Win).document.querySelector('.gg-lightbox img');
      return img.complete && img.naturalWidth === 64;
    });
    assert.match(await caption(), /\(1 \/ 3\)$/);
    const large = await box.locator('img').boundingBox();
    assert.ok(large && large.width >= 256, `shown large (${large?.width} px wide)`);
    const first = await shown();
    await page.keyboard.press('ArrowLeft');
    assert.match(await caption(), /\(3 \/ 3\)$/, 'ArrowLeft from the first goes round to the last');
    assert.notEqual(await shown(), first, 'another image is shown');
    await box.getByRole('button', { name: 'Previous image' }).click();
    assert.match(await caption(), /\(2 \/ 3\)$/, 'Previous');
    await page.keyboard.press('ArrowRight');
    assert.match(await caption(), /\(3 \/ 3\)$/, 'ArrowRight');
    await box.getByRole('button', { name: 'Next image' }).click();
    assert.match(await caption(), /\(1 \/ 3\)$/, 'Next from the last goes round to the first');
    assert.equal(await shown(), first);
    const nodesBefore = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.length);
    await page.keyboard.press('Escape');
    await box.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.length), nodesBefore, 'the keys did nothing to the graph');

    // A thumbnail opens the gallery on its own image.
    await thumbs.nth(1).click();
    await box.waitFor();
    assert.match(await caption(), /\(2 \/ 3\)$/, 'the clicked image is shown');
    await page.keyboard.press('Escape');
    await box.waitFor({ state: 'detached' });

    // The SaveImage node shows the image: its menu has Open / Save / Copy Image.
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodeById(9).gg.images[0]?.complete === true);
    const openMenu = async () => {
      const pos = await page.evaluate(() => Array.from((globalThis as unknown as Win).gategraph.nodeById(9).pos as number[]).slice(0, 2));
      const at = await graphToPage(page, [pos[0]! + 40, pos[1]! - 15]);
      await page.mouse.click(at.x, at.y, { button: 'right' });
    };
    await openMenu();
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('.litemenu-entry', { hasText: 'Save Image' }).click()]);
    const name = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(9).gg.images[0].dataset.filename as string);
    assert.equal(download.suggestedFilename(), name);
    const saved = readFileSync((await download.path())!);
    assert.deepEqual([...saved.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG was saved');

    await openMenu();
    const [tab] = await Promise.all([session.browser.context.waitForEvent('page'), page.locator('.litemenu-entry', { hasText: 'Open Image' }).click()]);
    await tab.waitForLoadState();
    assert.match(tab.url(), new RegExp(`/view\\?filename=${name}`));
    await tab.close();

    await session.browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: session.server.url });
    await openMenu();
    await page.locator('.litemenu-entry', { hasText: 'Copy Image' }).click();
    await page.locator('.gg-toast', { hasText: `Copied ${name}` }).waitFor();
    const copied = await page.evaluate(async () => {
      const items = await (globalThis as unknown as Win).navigator.clipboard.read();
      const blob = await items[0].getType('image/png');
      return { types: items[0].types as string[], size: blob.size as number };
    });
    assert.deepEqual(copied.types, ['image/png']);
    assert.ok(copied.size > 100, 'the clipboard holds the image');
    await page.close();
  });
});
