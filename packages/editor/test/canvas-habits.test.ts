/**
 * More of what ComfyUI users do on the canvas, in real Chromium against the real server: a Primitive node
 * feeding two widgets (its link dropped on each widget, which turns it into an input), a Primitive on the seed
 * with its control after generate moving the seed on at each queue, a plain image dropped on
 * the canvas becoming a LoadImage node, a saved file with array positions and the real view, an opened graph
 * fitted to the canvas, a number widget keeping its value on invalid input, and Note / Reroute / Primitive in
 * the search box.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { encodePng } from '../../diffusion/src/png.ts';
import { addNodeWithSearch, editorSession, graphToPage, openEditor, repoRoot, slotPosition, waitReady, type Win } from './helpers.ts';

const session = editorSession();

/** Page position of a widget of a node (`fraction` across its width). */
async function widgetPoint(page: Page, node: number, name: string, fraction = 0.5): Promise<{ x: number; y: number }> {
  await page.evaluate(() => (globalThis as unknown as Win).gategraph.canvas.draw(true, true));
  const local = await page.evaluate(
    ({ node, name, fraction }) => {
      const n = (globalThis as unknown as Win).gategraph.nodeById(node);
      const w = n.widgets.find((w: { name: string }) => w.name === name);
      return [n.pos[0] + n.size[0] * fraction, n.pos[1] + w.last_y + 10] as [number, number];
    },
    { node, name, fraction },
  );
  return graphToPage(page, local);
}

const widgetValue = (page: Page, node: number, name: string) =>
  page.evaluate(({ node, name }) => (globalThis as unknown as Win).gategraph.nodeById(node).widgets.find((w: { name: string }) => w.name === name)?.value, { node, name });

/** Clicks the middle of a number widget (litegraph's value prompt opens), types a text and presses Enter. */
async function typeIntoNumberWidget(page: Page, node: number, name: string, text: string): Promise<void> {
  const at = await widgetPoint(page, node, name);
  await page.mouse.click(at.x, at.y);
  const input = page.locator('.graphdialog input.value');
  await input.waitFor();
  await input.fill(text);
  await input.press('Enter');
  await input.waitFor({ state: 'detached' });
}

describe('canvas habits', () => {
  test('a Primitive node feeds two widgets: its link dropped on each turns it into an input', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const primitive = await addNodeWithSearch(page, [26, 650], 'Primitive', 'PrimitiveNode');
    for (const name of ['width', 'height']) {
      const from = await slotPosition(page, primitive, 'output', 0);
      const to = await widgetPoint(page, 5, name);
      await page.mouse.move(from.x, from.y);
      await page.mouse.down();
      await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 5 });
      await page.mouse.move(to.x, to.y, { steps: 5 });
      await page.mouse.up();
    }
    const state = await page.evaluate((id) => {
      const app = (globalThis as unknown as Win).gategraph;
      const latent = app.nodeById(5);
      const p = app.graph.getNodeById(id);
      return {
        inputs: latent.inputs.map((i: { name: string; link: number | null }) => [i.name, i.link !== null]),
        output: [p.outputs[0].type, p.outputs[0].name, p.outputs[0].links.length],
        widget: p.widgets.map((w: { name: string; value: unknown }) => [w.name, w.value]),
      };
    }, primitive);
    assert.deepEqual(state.inputs, [['width', true], ['height', true]], 'both widgets became linked inputs');
    assert.deepEqual(state.output, ['INT', 'width', 2], 'the primitive took the INT type of the first widget');
    assert.deepEqual(state.widget, [['width', 64], ['control_after_generate', 'fixed']], 'and a copy of its widget, with its value (and a control, fixed for a plain number)');

    // The value typed into the primitive goes to both inputs of the queued prompt.
    await typeIntoNumberWidget(page, primitive, 'width', '128');
    assert.equal(await widgetValue(page, 5, 'height'), 128, 'the fed widgets show the value');
    const { prompt } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.equal(prompt['5'].inputs.width, 128);
    assert.equal(prompt['5'].inputs.height, 128);
    assert.equal(String(primitive) in prompt, false, 'the primitive itself is not sent');

    // Saved and opened again, it is rebuilt with its type, widget and value.
    const saved = await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph());
    await page.evaluate((w) => (globalThis as unknown as Win).gategraph.loadGraphData(w), saved);
    const again = await page.evaluate((id) => {
      const p = (globalThis as unknown as Win).gategraph.graph.getNodeById(id);
      return [p.outputs[0].type, p.widgets.map((w: { value: unknown }) => w.value)];
    }, primitive);
    assert.deepEqual(again, ['INT', [128, 'fixed']]);
    const reloaded = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt().prompt);
    assert.deepEqual(reloaded['5'].inputs, prompt['5'].inputs);
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('a Primitive on the seed has control after generate: the seed moves on after each queue, saved in widgets_values as ComfyUI', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    // One step: the runs this queues stay short.
    await page.evaluate(() => ((globalThis as unknown as Win).gategraph.nodeById(3).widgets.find((w: { name: string }) => w.name === 'steps').value = 1));
    const primitive = await addNodeWithSearch(page, [26, 650], 'Primitive', 'PrimitiveNode');
    const from = await slotPosition(page, primitive, 'output', 0);
    const to = await widgetPoint(page, 3, 'seed');
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 5 });
    await page.mouse.move(to.x, to.y, { steps: 5 });
    await page.mouse.up();
    const widgets = (id: number) =>
      page.evaluate((id) => (globalThis as unknown as Win).gategraph.graph.getNodeById(id).widgets.map((w: { name: string; value: unknown }) => [w.name, w.value]), id);
    const seed = await widgetValue(page, 3, 'seed');
    assert.deepEqual(await widgets(primitive), [['seed', seed], ['control_after_generate', 'randomize']], 'a seed\'s primitive controls it, randomizing by default as ComfyUI');

    // Increment, chosen from the control's list with the mouse; the seed typed in.
    const choose = async (mode: string) => {
      await page.waitForTimeout(800);
      const at = await widgetPoint(page, primitive, 'control_after_generate');
      await page.mouse.click(at.x, at.y);
      await page.locator('.litecontextmenu .litemenu-entry', { hasText: new RegExp(`^${mode}$`) }).click();
      assert.equal(await widgetValue(page, primitive, 'control_after_generate'), mode);
    };
    await choose('increment');
    await page.waitForTimeout(800);
    await typeIntoNumberWidget(page, primitive, 'seed', '1000');
    assert.equal(await widgetValue(page, 3, 'seed'), 1000, 'the sampler shows the primitive\'s value');

    /** Ctrl+Enter; returns the queued body's seed and the primitive's saved widgets_values in its workflow. */
    const queue = async () => {
      await page.locator('#gg-canvas').focus();
      const [request] = await Promise.all([
        page.waitForRequest((r) => r.url().endsWith('/prompt') && r.method() === 'POST'),
        page.waitForResponse((r) => r.url().endsWith('/prompt') && r.request().method() === 'POST'),
        page.keyboard.press('Control+Enter'),
      ]);
      const body = request.postDataJSON() as { prompt: Record<string, { inputs: { seed: unknown } }>; extra_data: { extra_pnginfo: { workflow: { nodes: { id: number; widgets_values: unknown[] }[] } } } };
      return { seed: body.prompt['3']!.inputs.seed, saved: body.extra_data.extra_pnginfo.workflow.nodes.find((n) => n.id === primitive)!.widgets_values };
    };
    assert.deepEqual(await queue(), { seed: 1000, saved: [1000, 'increment'] }, 'the value shown is the one queued');
    await page.waitForFunction((id) => (globalThis as unknown as Win).gategraph.graph.getNodeById(id).widgets[0].value === 1001, primitive);
    assert.equal(await widgetValue(page, 3, 'seed'), 1001, 'after the queue both moved on by one');
    assert.deepEqual(await queue(), { seed: 1001, saved: [1001, 'increment'] });
    await page.waitForFunction((id) => (globalThis as unknown as Win).gategraph.graph.getNodeById(id).widgets[0].value === 1002, primitive);

    // Saved as ComfyUI saves a primitive: [value, control]; kept over a reload.
    const saved = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.serializeGraph().nodes.find((n: { id: number }) => n.id === id), primitive);
    assert.deepEqual(saved.widgets_values, [1002, 'increment']);
    await page.waitForFunction((id) => {
      const stored = JSON.parse((globalThis as unknown as Win).localStorage.getItem('gategraph.workflow') ?? 'null') as { nodes: { id: number; widgets_values?: unknown[] }[] } | null;
      return JSON.stringify(stored?.nodes.find((n) => n.id === id)?.widgets_values) === JSON.stringify([1002, 'increment']);
    }, primitive);
    await page.reload();
    await waitReady(page);
    assert.deepEqual(await widgets(primitive), [['seed', 1002], ['control_after_generate', 'increment']]);

    // Fixed: queued twice, the seed stays.
    await choose('fixed');
    assert.equal((await queue()).seed, 1002);
    assert.equal((await queue()).seed, 1002);
    assert.equal(await widgetValue(page, primitive, 'seed'), 1002);
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('invalid number input keeps the previous value and says so', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    assert.equal(await widgetValue(page, 3, 'steps'), 25);
    await typeIntoNumberWidget(page, 3, 'steps', 'abc');
    assert.equal(await widgetValue(page, 3, 'steps'), 25, 'steps kept 25, not the default');
    await page.locator('.gg-toast', { hasText: 'Not a number: steps keeps 25' }).waitFor();
    await typeIntoNumberWidget(page, 3, 'steps', '30');
    assert.equal(await widgetValue(page, 3, 'steps'), 30, 'a number is still taken');
    await page.close();
  });

  test('a plain image dropped on the canvas becomes a LoadImage node with the file uploaded', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const pixels = new Uint8Array(8 * 8 * 3).map((_, i) => (i * 37) % 256);
    const png = Buffer.from(encodePng({ width: 8, height: 8, channels: 3, data: pixels } as never));
    const at = await graphToPage(page, [26, 650]);
    await page.evaluate(
      ({ data, at }) => {
        const w = globalThis as unknown as Win;
        const binary = Uint8Array.from(w.atob(data) as string, (c: string) => c.charCodeAt(0));
        const transfer = new w.DataTransfer();
        transfer.items.add(new w.File([binary], 'photo.png', { type: 'image/png' }));
        const target = w.document.getElementById('gg-canvas');
        for (const type of ['dragover', 'drop']) target.dispatchEvent(new w.DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true, clientX: at.x, clientY: at.y }));
      },
      { data: png.toString('base64'), at },
    );
    await page.locator('.gg-toast', { hasText: 'Uploaded photo.png to a new Load Image node' }).waitFor();
    const node = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const n = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'LoadImage');
      return { pos: Array.from(n.pos as number[]).slice(0, 2).map(Math.round), image: n.widgets[0].value, count: app.nodes.length };
    });
    assert.ok(Math.abs(node.pos[0]! - 26) <= 1 && Math.abs(node.pos[1]! - 650) <= 1, `where it was dropped: ${node.pos}`);
    assert.equal(node.image, 'photo.png');
    assert.equal(node.count, 8, 'the graph was kept, one node added');
    assert.deepEqual(readFileSync(join(session.server.root, 'input', 'photo.png')), png, 'the file was uploaded to the input folder');
    await page.close();
  });

  test('a saved file has array positions and sizes and the real view; an opened graph fits the visible canvas', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await page.setViewportSize({ width: 1400, height: 900 });
    page.on('dialog', (dialog) => void dialog.accept('mine'));
    // Scroll the view a little, as a user does before saving.
    const box = (await page.locator('#gg-canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, -200);
    const ds = await page.evaluate(() => {
      const d = (globalThis as unknown as Win).gategraph.canvas.ds;
      return { scale: d.scale as number, offset: Array.from(d.offset as number[]) };
    });
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#gg-save').click()]);
    const file = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { nodes: { pos: unknown; size: unknown }[]; extra: { ds: unknown } };
    for (const node of file.nodes) {
      assert.ok(Array.isArray(node.pos) && node.pos.length === 2, `pos is [x, y]: ${JSON.stringify(node.pos)}`);
      assert.ok(Array.isArray(node.size) && node.size.length === 2, `size is [w, h]: ${JSON.stringify(node.size)}`);
    }
    assert.deepEqual(file.extra.ds, ds, 'extra.ds is the view on screen');
    assert.notEqual(ds.scale, 1);

    // The repository's default file says scale 1, offset 0, which at 1400x900 puts nodes out of view (under
    // the queue panel): opened, it is fitted to the canvas.
    const workflow = readFileSync(join(repoRoot, 'workflows', 'default.ui.json'));
    await page.locator('#gg-file').setInputFiles({ name: 'default.ui.json', mimeType: 'application/json', buffer: workflow });
    await page.locator('.gg-toast', { hasText: 'Opened default.ui.json' }).last().waitFor();
    const fits = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const rect = app.canvasEl.getBoundingClientRect();
      const panel = (globalThis as unknown as Win).document.getElementById('gg-queue-panel').getBoundingClientRect();
      return app.nodes.every((n: { pos: [number, number]; size: [number, number] }) => {
        const [x, y] = app.canvas.convertOffsetToCanvas([n.pos[0], n.pos[1] - 30]);
        const [x2, y2] = app.canvas.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
        return x >= 0 && y >= 0 && x2 <= app.canvasEl.width && y2 <= app.canvasEl.height && rect.left + x2 <= panel.left;
      });
    });
    assert.ok(fits, 'every node is inside the canvas, none under the queue panel');
    // A file whose view shows the whole graph keeps it.
    const keep = { ...JSON.parse(workflow.toString()), extra: { ds: { scale: 0.5, offset: [20, 30] } } };
    await page.locator('#gg-file').setInputFiles({ name: 'small.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(keep)) });
    await page.locator('.gg-toast', { hasText: 'Opened small.json' }).last().waitFor();
    const kept = await page.evaluate(() => {
      const d = (globalThis as unknown as Win).gategraph.canvas.ds;
      return { scale: d.scale as number, offset: Array.from(d.offset as number[]) };
    });
    assert.deepEqual(kept, { scale: 0.5, offset: [20, 30] });
    await page.close();
  });

  test('Note, Reroute and Primitive are in the search box', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const note = await addNodeWithSearch(page, [26, 650], 'note', 'Note');
    const reroute = await addNodeWithSearch(page, [1209, 400], 'reroute', 'Reroute');
    const types = await page.evaluate(
      ({ note, reroute }) => [note, reroute].map((id) => (globalThis as unknown as Win).gategraph.graph.getNodeById(id).type),
      { note, reroute },
    );
    assert.deepEqual(types, ['Note', 'Reroute']);
    const { prompt } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.equal(Object.keys(prompt).length, 7, 'editor-only nodes are not sent');
    await page.close();
  });
});
