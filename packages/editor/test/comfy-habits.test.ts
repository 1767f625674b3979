/**
 * What a ComfyUI user does without thinking, tried in real Chromium with the mouse and keyboard against the
 * real server: undo/redo (also after a reload), ComfyUI's shortcuts (Ctrl+G, Ctrl+Shift+V, Alt+C, P, `.`,
 * Ctrl+Alt+Enter, Escape, Delete), renaming by double-click, Alt+drag cloning, groups from ComfyUI files (no
 * font_size) and nested groups, and nodes of types the server does not have.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { editorSession, emptySpot, graphToPage, openEditor, waitReady, type Win } from './helpers.ts';

const session = editorSession();

const nodeIds = (page: Page) =>
  page.evaluate(() => ((globalThis as unknown as Win).gategraph.graph._nodes as { id: number }[]).map((n) => n.id).sort((a, b) => a - b));

const nodePos = (page: Page, id: number) =>
  // (litegraph 0.7 allocates node positions as Float32Array(10): the first two entries are x, y.)
  page.evaluate((id) => Array.from((globalThis as unknown as Win).gategraph.graph.getNodeById(id).pos as number[]).slice(0, 2), id);

const scaleOf = (page: Page) => page.evaluate(() => (globalThis as unknown as Win).gategraph.canvas.ds.scale as number);

/** Page position of a point on a node's title bar (x from the node's left edge). */
async function titleOf(page: Page, id: number, dx = 40): Promise<{ x: number; y: number }> {
  const pos = await nodePos(page, id);
  return graphToPage(page, [pos[0]! + dx, pos[1]! - 15]);
}

/** Presses the mouse on a point, moves it by (dx, dy) in steps and releases it: a drag as a hand does it. */
async function drag(page: Page, from: { x: number; y: number }, dx: number, dy: number): Promise<void> {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(from.x + dx / 2, from.y + dy / 2, { steps: 4 });
  await page.mouse.move(from.x + dx, from.y + dy, { steps: 4 });
  await page.mouse.up();
}

/**
 * Page position of a graph point on a group, checked the way a press there would land: it reaches the canvas
 * (no overlay over it), no node is there and the innermost group there is `title`. Drawn first, as a person's
 * press comes frames after the last change: litegraph hit-tests nodes by what it drew. Tried for two seconds
 * (a busy page may not have drawn yet); a failure says what was there instead.
 */
async function pointOnGroup(page: Page, title: string, at: [number, number]): Promise<{ x: number; y: number }> {
  const where = (pos: [number, number]) =>
    page.evaluate(({ pos, title }) => {
      const app = (globalThis as unknown as Win).gategraph;
      app.canvas.draw(true, true);
      const [cx, cy] = app.canvas.convertOffsetToCanvas(pos) as [number, number];
      const rect = app.canvasEl.getBoundingClientRect();
      const x = (rect.left as number) + cx;
      const y = (rect.top as number) + cy;
      const element = (globalThis as unknown as Win).document.elementFromPoint(x, y);
      const node = app.graph.getNodeOnPos(pos[0], pos[1], app.canvas.visible_nodes, 5);
      const group = app.graph.getGroupOnPos(pos[0], pos[1]);
      const problem =
        element !== app.canvasEl ? `the press would reach ${element?.tagName}.${element?.className}, not the canvas`
        : node ? `node ${node.id} is there`
        : group?.title !== title ? `group ${group?.title ?? '(none)'} is there`
        : undefined;
      return { x, y, problem };
    }, { pos, title });
  let target = await where(at);
  for (let tries = 0; target.problem && tries < 20; tries++) {
    await page.waitForTimeout(100);
    target = await where(at);
  }
  assert.equal(target.problem, undefined, `pressing group ${title} at ${at}`);
  return { x: target.x, y: target.y };
}

/**
 * Drags a group by a point of its title bar, checking first that a press there lands on that group
 * (pointOnGroup) and, after the press, that litegraph picked it up; a failure says what was there instead.
 */
async function dragGroup(page: Page, title: string, at: [number, number], dx: number, dy: number): Promise<void> {
  const target = await pointOnGroup(page, title, at);
  await page.mouse.move(target.x, target.y);
  await page.mouse.down();
  const picked = await page.evaluate(() => {
    const canvas = (globalThis as unknown as Win).gategraph.canvas;
    return { group: canvas.selected_group?.title, resizing: canvas.selected_group_resizing, canvasDrag: canvas.dragging_canvas, mouse: [...canvas.graph_mouse] };
  });
  assert.equal(picked.group, title, `litegraph picked up ${JSON.stringify(picked)} on the press at ${at}`);
  await page.mouse.move(target.x + dx / 2, target.y + dy / 2, { steps: 4 });
  await page.mouse.move(target.x + dx, target.y + dy, { steps: 4 });
  await page.mouse.up();
}

async function clickTitle(page: Page, id: number, modifiers: ('Shift' | 'Control')[] = []): Promise<void> {
  const at = await titleOf(page, id);
  for (const key of modifiers) await page.keyboard.down(key);
  await page.mouse.click(at.x, at.y);
  for (const key of modifiers) await page.keyboard.up(key);
  // Two clicks within 300 ms are a double-click to litegraph: keep separate clicks apart, with room for a busy
  // page that handles the last click late.
  await page.waitForTimeout(800);
}

const selectedIds = (page: Page) =>
  page.evaluate(() => Object.keys((globalThis as unknown as Win).gategraph.canvas.selected_nodes).map(Number).sort((a, b) => a - b));

/** Opens a UI workflow file through the toolbar's file input, as the Open button does. */
async function openWorkflow(page: Page, name: string, workflow: unknown): Promise<void> {
  await page.locator('#gg-file').setInputFiles({ name, mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(workflow)) });
  await page.locator('.gg-toast', { hasText: `Opened ${name}` }).last().waitFor();
  await page.evaluate(() => (globalThis as unknown as Win).gategraph.canvas.draw(true, true));
}

/** The undo history has recorded the graph as it is now (it records once an action has settled). */
async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const tracker = (globalThis as unknown as Win).gategraph.changeTracker;
    return tracker.history.current === tracker.state();
  });
}

describe('undo and redo', () => {
  test('a deleted node comes back with Ctrl+Z, goes again with Ctrl+Y, and undo still works after a reload', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const all = await nodeIds(page);
    assert.ok(all.includes(9));
    const link = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph.getNodeById(9).inputs[0].link !== null);
    assert.ok(link, 'SaveImage is linked to VAEDecode');

    await clickTitle(page, 9);
    await page.keyboard.press('Delete');
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9), 'Delete removed the selected node');
    await settled(page);

    await page.keyboard.press('Control+z');
    assert.deepEqual(await nodeIds(page), all, 'Ctrl+Z brought it back');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph.getNodeById(9).getInputNode(0)?.id), 8, 'with its link');
    await page.keyboard.press('Control+y');
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9), 'Ctrl+Y removed it again');
    await page.keyboard.press('Control+z');
    await page.keyboard.press('Control+Shift+z');
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9), 'Ctrl+Shift+Z redoes too');

    // In a text field Ctrl+Z / Ctrl+Y are the field's own (text) undo, not the graph's.
    await page.locator('textarea[data-widget="text"][data-node-id="6"]').click();
    await page.keyboard.press('Control+z');
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9), 'Ctrl+Z in a textarea left the graph alone');

    await page.reload();
    await waitReady(page);
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9), 'the reload shows the graph as it was left');
    await page.keyboard.press('Control+z');
    assert.deepEqual(await nodeIds(page), all, 'Ctrl+Z after the reload brought the node back');
    await page.keyboard.press('Control+y');
    assert.deepEqual(await nodeIds(page), all.filter((id) => id !== 9));
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('moves, typed widget values and bypass are undone one step at a time; the view is not', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const start = await nodePos(page, 5);
    await drag(page, await titleOf(page, 5), 120, 60);
    const moved = await nodePos(page, 5);
    const scale = await scaleOf(page);
    assert.ok(Math.abs(moved[0]! - start[0]! - 120 / scale) < 25 && moved[1]! > start[1]!, `the drag moved the node: ${start} -> ${moved}`);
    await settled(page);

    const box = page.locator('textarea[data-widget="text"][data-node-id="7"]');
    const before = await box.inputValue();
    // Only clicking a node (it comes to the front) is no undo step.
    await clickTitle(page, 6);
    await box.click();
    await page.keyboard.press('End');
    await page.keyboard.type(' and more');
    await settled(page);

    await clickTitle(page, 3);
    await page.keyboard.press('Control+b');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph.getNodeById(3).mode), 4);
    await settled(page);
    const view = await page.evaluate(() => [...(globalThis as unknown as Win).gategraph.canvas.ds.offset] as number[]);

    await page.keyboard.press('Control+z');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph.getNodeById(3).mode), 0, 'bypass undone');
    await page.keyboard.press('Control+z');
    assert.equal(await page.locator('textarea[data-widget="text"][data-node-id="7"]').inputValue(), before, 'typing undone as one step');
    await page.keyboard.press('Control+z');
    assert.deepEqual(await nodePos(page, 5), start, 'the move undone');
    assert.deepEqual(await page.evaluate(() => [...(globalThis as unknown as Win).gategraph.canvas.ds.offset] as number[]), view, 'the view stays');
    await page.keyboard.press('Control+y');
    assert.deepEqual(await nodePos(page, 5), moved, 'redo moves it again');
    await page.close();
  });
});

describe('ComfyUI shortcuts and mouse habits', () => {
  test('Ctrl+G groups the selection (named in place), dragging the group moves its nodes, Ctrl+Z undoes', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await clickTitle(page, 6);
    await clickTitle(page, 7, ['Shift']);
    assert.deepEqual(await selectedIds(page), [6, 7]);
    await page.keyboard.press('Control+g');
    const editor = page.locator('input.gg-title-editor');
    await editor.waitFor();
    await editor.fill('Prompts');
    await page.keyboard.press('Enter');
    await editor.waitFor({ state: 'detached' });
    const group = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const g = app.graph._groups[0];
      const inside = [6, 7].every((id) => {
        const b = app.graph.getNodeById(id).getBounding();
        return b[0] >= g.pos[0] && b[1] >= g.pos[1] && b[0] + b[2] <= g.pos[0] + g.size[0] && b[1] + b[3] <= g.pos[1] + g.size[1];
      });
      return { count: app.graph._groups.length, title: g.title, pos: [...g.pos] as number[], inside };
    });
    assert.deepEqual([group.count, group.title, group.inside], [1, 'Prompts', true], 'one group named Prompts around both nodes');

    const [p6, p7, p3] = [await nodePos(page, 6), await nodePos(page, 7), await nodePos(page, 3)];
    const bar = await graphToPage(page, [group.pos[0]! + 150, group.pos[1]! + 12]);
    await page.mouse.click(bar.x - 100, bar.y - 200); // deselect (empty canvas above the group)
    await drag(page, bar, 80, -60);
    const moved = (await page.evaluate(() => [...(globalThis as unknown as Win).gategraph.graph._groups[0].pos])) as number[];
    const dx = moved[0]! - group.pos[0]!;
    const dy = moved[1]! - group.pos[1]!;
    const scale = await scaleOf(page);
    assert.ok(Math.abs(dx - 80 / scale) < 20 && Math.abs(dy + 60 / scale) < 20, `the group moved: ${dx}, ${dy} at scale ${scale}`);
    // (Within a pixel: litegraph rounds the group's position when the drag ends, not its nodes'.)
    const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) < 1);
    assert.ok(near(await nodePos(page, 6), [p6[0]! + dx, p6[1]! + dy]), 'its first node moved with it');
    assert.ok(near(await nodePos(page, 7), [p7[0]! + dx, p7[1]! + dy]), 'its second node moved with it');
    assert.deepEqual(await nodePos(page, 3), p3, 'a node outside stayed');
    await settled(page);
    await page.keyboard.press('Control+z');
    assert.ok(near(await nodePos(page, 6), p6), 'Ctrl+Z put the group and its nodes back');
    await page.keyboard.press('Control+z');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph._groups.length), 0, 'and then removed the group');
    await page.close();
  });

  test('Ctrl+Alt+Enter interrupts the running prompt', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    // 2000 steps on the embedded model: long enough to be running when the keys are pressed.
    await page.evaluate(() => {
      const sampler = (globalThis as unknown as Win).gategraph.nodeById(3);
      sampler.widgets.find((w: { name: string }) => w.name === 'steps').value = 2000;
      sampler.widgets.find((w: { name: string }) => w.name === 'seed').value = 4242;
    });
    await page.locator('#gg-canvas').focus();
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/prompt') && r.request().method() === 'POST'),
      page.keyboard.press('Control+Enter'),
    ]);
    const promptId = ((await response.json()) as { prompt_id: string }).prompt_id;
    await page.locator(`.gg-running li[data-prompt-id="${promptId}"]`).waitFor({ timeout: 60_000 });
    await page.keyboard.press('Control+Alt+Enter');
    await page.locator('.gg-toast', { hasText: 'interrupted' }).waitFor();
    await page.locator(`.gg-history li[data-prompt-id="${promptId}"]`).waitFor({ timeout: 30_000 });
    const history = (await (await fetch(`${session.server.url}/history/${promptId}`)).json()) as Record<string, { status: { completed: boolean } }>;
    assert.equal(history[promptId]?.status.completed, false, 'the prompt did not run to the end');
    await page.close();
  });

  test('Escape closes the context menu and the search box', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const spot = await emptySpot(page, [400, 650]);
    await page.mouse.click(spot.x, spot.y, { button: 'right' });
    await page.locator('.litecontextmenu').first().waitFor();
    await page.keyboard.press('Escape');
    await page.locator('.litecontextmenu').first().waitFor({ state: 'detached' });
    // A submenu too (Add Node > category), closed with everything.
    await page.mouse.click(spot.x, spot.y, { button: 'right' });
    await page.locator('.litecontextmenu .litemenu-entry', { hasText: 'Add Node' }).click();
    assert.equal(await page.locator('.litecontextmenu').count(), 2);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelectorAll('.litecontextmenu').length === 0);
    // Past litegraph's 300 ms double-click window, with room for a busy page that handles the last click late.
    await page.waitForTimeout(800);
    await page.mouse.dblclick(spot.x, spot.y);
    await page.locator('.gg-search input').waitFor();
    await page.keyboard.press('Escape');
    await page.locator('.gg-search').waitFor({ state: 'detached' });
    await page.close();
  });

  test('double-clicking a node title renames it in place; Escape keeps the old name', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const at = await titleOf(page, 3);
    await page.mouse.dblclick(at.x, at.y);
    const editor = page.locator('input.gg-title-editor');
    await editor.waitFor();
    assert.equal(await editor.inputValue(), 'KSampler');
    await editor.fill('Main sampler');
    await page.keyboard.press('Enter');
    await editor.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).title), 'Main sampler');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph().nodes.find((n: { id: number }) => n.id === 3).title), 'Main sampler');
    // Past litegraph's 300 ms double-click window, with room for a busy page that handles the last click late.
    await page.waitForTimeout(800);
    await page.mouse.dblclick(at.x, at.y);
    await editor.waitFor();
    await editor.fill('Not kept');
    await page.keyboard.press('Escape');
    await editor.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).title), 'Main sampler');
    assert.equal(await page.locator('.gg-search').count(), 0, 'no search box or node panel opened');
    await page.close();
  });

  test('Alt+drag on a node drags a copy of it; the original stays', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const before = await nodeIds(page);
    const start = await nodePos(page, 5);
    await page.keyboard.down('Alt');
    await drag(page, await titleOf(page, 5), 0, 220);
    await page.keyboard.up('Alt');
    const added = (await nodeIds(page)).filter((id) => !before.includes(id));
    assert.equal(added.length, 1, 'one node was added');
    const copy = await page.evaluate((id) => {
      const node = (globalThis as unknown as Win).gategraph.nodeById(id);
      return { type: node.comfyClass, values: node.widgets.map((w: { value: unknown }) => w.value), pos: [...node.pos] as number[] };
    }, added[0]!);
    const original = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(5).widgets.map((w: { value: unknown }) => w.value));
    assert.equal(copy.type, 'EmptyLatentImage');
    assert.deepEqual(copy.values, original, 'with the same widget values');
    assert.ok(copy.pos[1]! - start[1]! > 150, 'the copy is where it was dragged');
    assert.deepEqual(await nodePos(page, 5), start, 'the original did not move');
    await page.close();
  });

  test('Ctrl+C then Ctrl+Shift+V keeps the input links from nodes not copied; Ctrl+V does not', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await clickTitle(page, 3);
    await page.keyboard.press('Control+c');
    const inputsOf = (id: number) =>
      page.evaluate((id) => {
        const node = (globalThis as unknown as Win).gategraph.nodeById(id);
        return node.inputs.map((_: unknown, i: number) => node.getInputNode(i)?.id ?? null) as (number | null)[];
      }, id);
    const before = await nodeIds(page);
    const spot = await emptySpot(page, [400, 700]);
    await page.mouse.move(spot.x, spot.y);
    await page.keyboard.press('Control+Shift+v');
    const linked = (await nodeIds(page)).filter((id) => !before.includes(id));
    assert.equal(linked.length, 1);
    assert.deepEqual(await inputsOf(linked[0]!), await inputsOf(3), 'the pasted sampler takes the same inputs');
    await page.keyboard.press('Control+v');
    const plain = (await nodeIds(page)).filter((id) => !before.includes(id) && id !== linked[0]);
    assert.equal(plain.length, 1);
    assert.ok((await inputsOf(plain[0]!)).every((id) => id === null), 'Ctrl+V pastes without links');
    await page.close();
  });

  test('Alt+C collapses, P pins (a pinned node does not move), `.` fits the selection, Ctrl+M mutes, Backspace deletes', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const flags = (id: number) => page.evaluate((id) => ({ ...(globalThis as unknown as Win).gategraph.nodeById(id).flags }), id);
    await clickTitle(page, 5);
    await page.keyboard.press('Alt+c');
    assert.equal((await flags(5)).collapsed, true);
    await page.keyboard.press('Alt+c');
    assert.equal((await flags(5)).collapsed, false);

    await page.keyboard.press('p');
    assert.equal((await flags(5)).pinned, true);
    const pinnedAt = await nodePos(page, 5);
    await drag(page, await titleOf(page, 5), 100, 80);
    assert.deepEqual(await nodePos(page, 5), pinnedAt, 'a pinned node stays put');
    await page.keyboard.press('p');
    assert.equal((await flags(5)).pinned, false);

    await page.keyboard.press('Control+m');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(5).mode), 2);
    await page.keyboard.press('Control+m');

    await page.keyboard.press('.');
    const fitted = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const node = app.nodeById(5);
      const [x0, y0] = app.canvas.convertOffsetToCanvas([node.pos[0], node.pos[1] - 30]);
      const [x1, y1] = app.canvas.convertOffsetToCanvas([node.pos[0] + node.size[0], node.pos[1] + node.size[1]]);
      return { scale: app.canvas.ds.scale, inView: x0 >= 0 && y0 >= 0 && x1 <= app.canvasEl.width && y1 <= app.canvasEl.height, centreX: (x0 + x1) / 2 / app.canvasEl.width };
    });
    assert.equal(fitted.scale, 1, 'one small node is shown at 100 %');
    assert.ok(fitted.inView && Math.abs(fitted.centreX - 0.5) < 0.05, `the node is in the middle of the view: ${JSON.stringify(fitted)}`);

    const before = await nodeIds(page);
    await page.keyboard.press('Backspace');
    assert.deepEqual(await nodeIds(page), before.filter((id) => id !== 5));
    await page.close();
  });
});

/** A ComfyUI example-style file: groups with title, bounding and colour only (no font_size), one nested. */
function groupedWorkflow(): unknown {
  const node = (id: number, type: string, pos: [number, number], widgets: unknown[]) => ({
    id, type, pos, size: [300, 110], flags: {}, order: id, mode: 0, properties: {}, widgets_values: widgets,
  });
  return {
    last_node_id: 3,
    last_link_id: 0,
    nodes: [node(1, 'EmptyLatentImage', [100, 150], [64, 64, 1]), node(2, 'EmptyLatentImage', [100, 420], [64, 64, 1]), node(3, 'EmptyLatentImage', [700, 150], [64, 64, 1])],
    links: [],
    groups: [
      { title: 'Outer', bounding: [50, 50, 500, 560], color: '#3f789e' },
      { title: 'Inner', bounding: [80, 330, 400, 250], color: '#a1309b' },
    ],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}

describe('groups', () => {
  test('groups of ComfyUI files (no font_size) show their titles, at 24 px', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await openWorkflow(page, 'grouped.json', groupedWorkflow());
    const drawn = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graph._groups.map((g: { ggDrawn?: unknown }) => g.ggDrawn));
    assert.deepEqual(drawn, [
      { title: 'Outer', fontSize: 24, font: '24px Arial' },
      { title: 'Inner', fontSize: 24, font: '24px Arial' },
    ]);
    // And the pixels: the title is light text on the group's dark band (litegraph drew nothing there).
    const lit = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const [x, y] = app.canvas.convertOffsetToCanvas([56, 54]);
      const data = app.canvasEl.getContext('2d').getImageData(Math.round(x), Math.round(y), 70, 24).data as number[];
      let bright = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i]! > 180 && data[i + 1]! > 180 && data[i + 2]! > 180) bright++;
      return bright;
    });
    assert.ok(lit > 30, `light title pixels where "Outer" is written: ${lit}`);
    await page.close();
  });

  test('moving a group moves its nodes and nested groups; a nested group moves alone; titles and colours are editable', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await openWorkflow(page, 'grouped.json', groupedWorkflow());
    const state = () =>
      page.evaluate(() => {
        const app = (globalThis as unknown as Win).gategraph;
        return {
          groups: app.graph._groups.map((g: { title: string; pos: number[]; color: string }) => ({ title: g.title, pos: [...g.pos], color: g.color })),
          nodes: [1, 2, 3].map((id) => Array.from(app.graph.getNodeById(id).pos as number[]).slice(0, 2)),
        };
      });
    const start = await state();
    await dragGroup(page, 'Outer', [300, 62], 60, 40);
    const outerMoved = await state();
    const d = [outerMoved.groups[0].pos[0] - start.groups[0].pos[0], outerMoved.groups[0].pos[1] - start.groups[0].pos[1]];
    assert.ok(Math.abs(d[0]! - 60) < 15 && Math.abs(d[1]! - 40) < 15, `the outer group moved by ${d}`);
    assert.deepEqual(outerMoved.groups[1].pos, [start.groups[1].pos[0] + d[0], start.groups[1].pos[1] + d[1]], 'the nested group moved with it');
    assert.deepEqual(outerMoved.nodes[0], [start.nodes[0]![0]! + d[0]!, start.nodes[0]![1]! + d[1]!], 'a node of the outer group moved');
    assert.deepEqual(outerMoved.nodes[1], [start.nodes[1]![0]! + d[0]!, start.nodes[1]![1]! + d[1]!], 'the node of the nested group moved');
    assert.deepEqual(outerMoved.nodes[2], start.nodes[2], 'the node outside did not');

    const inner = outerMoved.groups[1].pos as number[];
    // Past litegraph's 300 ms double-click window, with room for a busy page that handles the last click late.
    await page.waitForTimeout(800);
    await dragGroup(page, 'Inner', [inner[0]! + 250, inner[1]! + 12], 0, 50);
    const innerMoved = await state();
    assert.deepEqual(innerMoved.groups[0].pos, outerMoved.groups[0].pos, 'the outer group stays when the nested one is dragged');
    assert.ok(innerMoved.groups[1].pos[1] - inner[1]! > 30, 'the nested group moved');
    assert.ok(innerMoved.nodes[1]![1]! - outerMoved.nodes[1]![1]! > 30, 'with its node');
    assert.deepEqual(innerMoved.nodes[0], outerMoved.nodes[0], 'the outer group\'s other node stayed');

    // Double-click the title bar to rename.
    // Past litegraph's 300 ms double-click window, with room for a busy page that handles the last click late.
    await page.waitForTimeout(800);
    const outerTitle = await graphToPage(page, [innerMoved.groups[0].pos[0] + 300, innerMoved.groups[0].pos[1] + 12]);
    await page.mouse.dblclick(outerTitle.x, outerTitle.y);
    const editor = page.locator('input.gg-title-editor');
    await editor.waitFor();
    assert.equal(await editor.inputValue(), 'Outer');
    await editor.fill('Latents');
    await page.keyboard.press('Enter');
    await editor.waitFor({ state: 'detached' });
    assert.equal(await page.locator('.gg-search').count(), 0, 'no search box opened');
    // Right-click > Edit Group > Color > red.
    await page.mouse.click(outerTitle.x, outerTitle.y, { button: 'right' });
    const entry = (text: string | RegExp) => page.locator('.litecontextmenu').last().locator('.litemenu-entry', { hasText: text });
    await entry('Edit Group').click();
    await entry('Color').click();
    await entry(/^red$/).click();
    const saved = await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph().groups);
    assert.equal(saved[0].title, 'Latents');
    assert.equal(saved[0].color, '#A88', 'litegraph\'s red group colour');
    assert.equal(saved[0].font_size, 24, 'saved with the size it was drawn at');
    await page.close();
  });
});

describe('groups by the title bar only', () => {
  test('pressing in a group\'s body pans the canvas and moves neither the group nor its nodes; Ctrl+drag there selects', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await openWorkflow(page, 'grouped.json', groupedWorkflow());
    const state = () =>
      page.evaluate(() => {
        const app = (globalThis as unknown as Win).gategraph;
        return {
          groups: app.graph._groups.map((g: { pos: number[] }) => [...g.pos]) as number[][],
          nodes: [1, 2, 3].map((id) => Array.from(app.graph.getNodeById(id).pos as number[]).slice(0, 2)),
          offset: [...app.canvas.ds.offset] as number[],
          scale: app.canvas.ds.scale as number,
        };
      });
    const start = await state();
    // In the outer group, below its title bar (24 px font: 33.6 high), beside its first node, outside the inner group.
    const body: [number, number] = [500, 200];
    assert.ok(body[1] > start.groups[0]![1]! + 34, 'the point is below the title bar');
    await drag(page, await pointOnGroup(page, 'Outer', body), 60, 40);
    const after = await state();
    assert.deepEqual(after.groups, start.groups, 'the groups did not move');
    assert.deepEqual(after.nodes, start.nodes, 'nor their nodes');
    const panned = [after.offset[0]! - start.offset[0]!, after.offset[1]! - start.offset[1]!];
    assert.ok(Math.abs(panned[0]! - 60 / start.scale) < 10 && Math.abs(panned[1]! - 40 / start.scale) < 10, `the view panned by the drag: ${panned}`);

    // Ctrl+drag from the body: a selection rectangle around the first node, the group stays.
    await page.waitForTimeout(800);
    const from = await pointOnGroup(page, 'Outer', [470, 100]);
    const to = await graphToPage(page, [90, 300]);
    await page.keyboard.down('Control');
    await drag(page, from, to.x - from.x, to.y - from.y);
    await page.keyboard.up('Control');
    assert.deepEqual(await selectedIds(page), [1], 'the rectangle selected the node it covers');
    const final = await state();
    assert.deepEqual([final.groups, final.nodes, final.offset], [start.groups, start.nodes, after.offset], 'nothing moved');

    // The title bar still drags it (with its nodes).
    await page.waitForTimeout(800);
    await dragGroup(page, 'Outer', [300, 62], 0, 50);
    const moved = await state();
    assert.ok(moved.groups[0]![1]! - start.groups[0]![1]! > 30, 'dragged by its title bar, the group moved');
    assert.ok(moved.nodes[0]![1]! - start.nodes[0]![1]! > 30, 'with its node');
    await page.close();
  });
});

describe('missing nodes', () => {
  test('a node type the server does not have shows its type and values, and saves unchanged', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const missing = {
      id: 7, type: 'FancyUpscaler', pos: [500, 100], size: [320, 150], flags: {}, order: 1, mode: 0,
      inputs: [{ name: 'image', type: 'IMAGE', link: null }], outputs: [{ name: 'IMAGE', type: 'IMAGE', links: null }],
      properties: { 'Node name for S&R': 'FancyUpscaler' }, widgets_values: [2, 'lanczos', true],
    };
    const workflow = {
      last_node_id: 7, last_link_id: 0,
      nodes: [{ id: 1, type: 'EmptyLatentImage', pos: [50, 100], size: [300, 110], flags: {}, order: 0, mode: 0, properties: {}, widgets_values: [64, 64, 1] }, missing],
      links: [], groups: [], config: {}, extra: {}, version: 0.4,
    };
    await openWorkflow(page, 'missing.json', workflow);
    await page.locator('.gg-toast', { hasText: 'Missing node types: FancyUpscaler' }).waitFor();
    const shown = await page.evaluate(() => {
      const node = (globalThis as unknown as Win).gategraph.graph.getNodeById(7);
      return { title: node.title, errors: node.has_errors };
    });
    assert.deepEqual(shown, { title: 'FancyUpscaler', errors: true }, 'titled with its type (litegraph said "undefined")');
    // Its values are drawn on it: light text in the first value row.
    const lit = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.canvas.draw(true, true);
      const node = app.graph.getNodeById(7);
      const [x, y] = app.canvas.convertOffsetToCanvas([node.pos[0] + 20, node.pos[1] + 30]);
      const data = app.canvasEl.getContext('2d').getImageData(Math.round(x), Math.round(y), 60, 30).data as number[];
      let bright = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i]! > 190 && data[i + 1]! > 190 && data[i + 2]! > 190) bright++;
      return bright;
    });
    assert.ok(lit > 10, `the values are drawn: ${lit} light pixels`);
    const saved = await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph().nodes.find((n: { id: number }) => n.id === 7));
    assert.deepEqual(saved, missing, 'saved exactly as the file had it');

    // Moved with the mouse, it keeps everything but the new position.
    await drag(page, await titleOf(page, 7), 40, 30);
    const after = await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph().nodes.find((n: { id: number }) => n.id === 7));
    assert.notDeepEqual(after.pos, missing.pos);
    assert.deepEqual({ ...after, pos: missing.pos }, missing);
    await page.close();
  });
});
