/**
 * The settings dialog as a ComfyUI user uses it, in real Chromium against the real server: the keybinding panel
 * (every command with its keys; a binding changed by pressing the new combination, which works at once; a
 * conflict shown before it is kept; reset; kept in comfy.settings.json under ComfyUI's ids and so over a
 * reload), and the other settings (node id badges, what releasing a link opens, asking before Clear, search)
 * acting at once and surviving a reload.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { editorSession, emptySpot, graphToPage, openEditor, slotPosition, waitReady, type Win } from './helpers.ts';

const session = editorSession();

const BYPASS = 'Comfy.Canvas.ToggleSelectedNodes.Bypass';
const MUTE = 'Comfy.Canvas.ToggleSelectedNodes.Mute';

/** The settings file as the server has it. */
async function settingsFile(): Promise<Record<string, unknown>> {
  const response = await fetch(`${session.server.url}/userdata/comfy.settings.json`);
  return response.ok ? ((await response.json()) as Record<string, unknown>) : {};
}

// The tests of this file share the server: each starts from an empty settings file.
beforeEach(async () => {
  if (!session.server) return;
  const response = await fetch(`${session.server.url}/userdata/comfy.settings.json?overwrite=true`, { method: 'POST', body: '{}' });
  assert.ok(response.ok, `resetting the settings file: HTTP ${response.status}`);
});

const settingsSaved = (page: Page) => page.waitForResponse((r) => r.url().includes('/userdata/comfy.settings.json') && r.request().method() === 'POST');

async function openSettings(page: Page, category?: string): Promise<void> {
  await page.locator('#gg-settings').click();
  await page.locator('dialog.gg-settings[open]').waitFor();
  if (category) await page.locator(`.gg-settings-nav button[data-category="${category}"]`).click();
}

const modeOf = (page: Page, id: number) => page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).mode as number, id);

/** Clicks a node's title (selecting it only), then waits past litegraph's double-click window. */
async function selectNode(page: Page, id: number): Promise<void> {
  const pos = await page.evaluate((id) => Array.from((globalThis as unknown as Win).gategraph.nodeById(id).pos as number[]).slice(0, 2), id);
  const at = await graphToPage(page, [pos[0]! + 40, pos[1]! - 15]);
  await page.mouse.click(at.x, at.y);
  await page.waitForTimeout(800);
}

describe('keybinding panel', () => {
  test('every command is listed with its keys; a binding is changed by pressing keys, works at once, conflicts are shown, reset restores, and it survives a reload', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    await openSettings(page, 'Keybinding');
    const row = (id: string) => page.locator(`.gg-keybindings tr[data-command-id="${id}"]`);
    const keysOf = (id: string) => row(id).locator('kbd').allTextContents();
    assert.deepEqual(await keysOf('Comfy.QueuePrompt'), ['Ctrl+Enter']);
    assert.deepEqual(await keysOf('Comfy.Redo'), ['Ctrl+Y', 'Ctrl+Shift+Z']);
    assert.deepEqual(await keysOf('Comfy.Canvas.FitView'), ['.']);
    assert.deepEqual(await keysOf('Comfy.NewBlankWorkflow'), [], 'a command with no default keys is listed too');
    assert.ok((await page.locator('.gg-keybindings tbody tr').count()) >= 25, 'every command has a row');
    assert.equal(await row(BYPASS).getByRole('button', { name: 'Reset' }).isDisabled(), true, 'nothing to reset yet');

    // Bypass: Change, press Alt+B, Enter keeps it.
    await row(BYPASS).getByRole('button', { name: 'Change' }).click();
    const capture = page.locator('.gg-key-capture');
    await capture.waitFor();
    await page.keyboard.press('Alt+b');
    assert.equal(await capture.inputValue(), 'Alt+B');
    assert.equal(await page.locator('.gg-key-conflict').textContent(), '', 'Alt+B is free');
    await Promise.all([settingsSaved(page), page.keyboard.press('Enter')]);
    assert.deepEqual(await keysOf(BYPASS), ['Alt+B']);
    assert.equal(await row(BYPASS).getByRole('button', { name: 'Reset' }).isDisabled(), false);
    const file = await settingsFile();
    assert.deepEqual(file['Comfy.Keybinding.NewBindings'], [{ commandId: BYPASS, combo: { key: 'b', ctrl: false, alt: true, shift: false } }]);
    assert.deepEqual(file['Comfy.Keybinding.UnsetBindings'], [{ commandId: BYPASS, combo: { key: 'b', ctrl: true, alt: false, shift: false } }], 'the default Ctrl+B is recorded as removed, as ComfyUI writes it');

    // Mute: Alt+B is Bypass's now: the conflict is shown; Escape gives up, nothing changes.
    await row(MUTE).getByRole('button', { name: 'Change' }).click();
    await capture.waitFor();
    await page.keyboard.press('Alt+b');
    assert.match((await page.locator('.gg-key-conflict').textContent()) ?? '', /already bound to “Bypass \/ unbypass the selected nodes”/);
    await page.keyboard.press('Escape');
    await capture.waitFor({ state: 'detached' });
    assert.equal(await page.locator('dialog.gg-settings[open]').count(), 1, 'Escape while recording closes only the recorder');
    assert.deepEqual(await keysOf(MUTE), ['Ctrl+M']);
    // Again, kept with the Save button this time: the key moves from Bypass to Mute.
    await row(MUTE).getByRole('button', { name: 'Change' }).click();
    await capture.waitFor();
    await page.keyboard.press('Alt+b');
    await Promise.all([settingsSaved(page), page.locator('.gg-keybindings').getByRole('button', { name: 'Save' }).click()]);
    assert.deepEqual(await keysOf(MUTE), ['Alt+B']);
    assert.deepEqual(await keysOf(BYPASS), [], 'Bypass lost it');
    // Reset gives Bypass its Ctrl+B back.
    await Promise.all([settingsSaved(page), row(BYPASS).getByRole('button', { name: 'Reset' }).click()]);
    assert.deepEqual(await keysOf(BYPASS), ['Ctrl+B']);
    assert.deepEqual(await keysOf(MUTE), ['Alt+B']);
    await page.keyboard.press('Escape');
    await page.locator('dialog.gg-settings').waitFor({ state: 'detached' });

    // At once, without a reload: Alt+B mutes, Ctrl+M does nothing, Ctrl+B bypasses.
    await selectNode(page, 3);
    await page.keyboard.press('Alt+b');
    assert.equal(await modeOf(page, 3), 2, 'Alt+B muted');
    await page.keyboard.press('Control+m');
    assert.equal(await modeOf(page, 3), 2, 'Ctrl+M is bound to nothing now');
    await page.keyboard.press('Control+b');
    assert.equal(await modeOf(page, 3), 4, 'Ctrl+B bypassed');

    await page.reload();
    await waitReady(page);
    await selectNode(page, 5);
    await page.keyboard.press('Alt+b');
    assert.equal(await modeOf(page, 5), 2, 'after a reload Alt+B still mutes');
    // Ctrl+, opens the settings too (ComfyUI's key for them).
    await page.keyboard.press('Control+,');
    await page.locator('dialog.gg-settings[open]').waitFor();
    await page.locator('.gg-settings-nav button[data-category="Keybinding"]').click();
    assert.deepEqual(await keysOf(MUTE), ['Alt+B']);
    await Promise.all([settingsSaved(page), row(MUTE).getByRole('button', { name: 'Reset' }).click()]);
    assert.deepEqual(await keysOf(MUTE), ['Ctrl+M']);
    assert.deepEqual((await settingsFile())['Comfy.Keybinding.NewBindings'], []);
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });
});

describe('settings', () => {
  test('node id badges, what a released link opens and asking before Clear act at once and survive a reload', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const badges = () =>
      page.evaluate(() => {
        const app = (globalThis as unknown as Win).gategraph;
        app.canvas.draw(true, true);
        return app.nodes.map((n: { ggIdBadge?: string }) => n.ggIdBadge ?? null).filter(Boolean) as string[];
      });
    assert.ok((await badges()).includes('#3'), 'node ids are shown by default, as in ComfyUI');

    // A link released on empty canvas opens the context menu by default.
    const release = async () => {
      const from = await slotPosition(page, 4, 'output', 0);
      const to = await emptySpot(page, [400, 650]);
      await page.mouse.move(from.x, from.y);
      await page.mouse.down();
      await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 5 });
      await page.mouse.move(to.x, to.y, { steps: 5 });
      await page.mouse.up();
    };
    await release();
    await page.locator('.litecontextmenu .litemenu-entry', { hasText: 'Search' }).waitFor();
    await page.keyboard.press('Escape');
    await page.locator('.litecontextmenu').first().waitFor({ state: 'detached' });

    await openSettings(page);
    // The search box finds a setting in any category.
    await page.locator('.gg-settings-search').fill('badge');
    assert.deepEqual(await page.locator('.gg-setting:visible').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { settingId: string } }).dataset.settingId)), ['Comfy.NodeBadge.NodeIdBadgeMode']);
    await Promise.all([settingsSaved(page), page.locator('select[name="Comfy.NodeBadge.NodeIdBadgeMode"]').selectOption('None')]);
    assert.deepEqual(await badges(), [], 'the badges went at once');
    await page.locator('.gg-settings-nav button[data-category="Node search"]').click();
    await Promise.all([settingsSaved(page), page.locator('select[name="Comfy.LinkRelease.Action"]').selectOption('search box')]);
    await page.locator('.gg-settings-nav button[data-category="Workflow"]').click();
    await Promise.all([settingsSaved(page), page.locator('input[name="Comfy.ConfirmClear"]').uncheck()]);
    await page.locator('.gg-settings-close').click();
    await page.locator('dialog.gg-settings').waitFor({ state: 'detached' });
    const file = await settingsFile();
    assert.deepEqual(
      [file['Comfy.NodeBadge.NodeIdBadgeMode'], file['Comfy.LinkRelease.Action'], file['Comfy.ConfirmClear']],
      ['None', 'search box', false],
    );

    await page.reload();
    await waitReady(page);
    assert.deepEqual(await badges(), [], 'no badges after the reload');
    // Released on empty canvas, the link now opens the search box, offering nodes that take a MODEL.
    await release();
    await page.locator('.gg-search input').fill('ksampler');
    await page.locator('.gg-search li[data-type="KSampler"]').waitFor();
    assert.equal(await page.locator('.litecontextmenu').count(), 0, 'no context menu');
    await page.keyboard.press('Escape');
    await page.locator('.gg-search').waitFor({ state: 'detached' });
    // Clear no longer asks.
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.locator('#gg-clear').click();
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.length), 0);
    assert.deepEqual(dialogs, []);
    await page.close();
  });
});
