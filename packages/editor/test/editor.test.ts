/**
 * The editor in a real browser (Debian's Chromium through playwright-core) against a real server on
 * 127.0.0.1:0 started as `pnpm serve` starts it: the real node pack (packages/nodes-tgate) sampling on the
 * embedded model (models/tiny-sd, 64x64 images in about a second), and the example pack. Covered: the product's
 * default graph, queueing with live feedback and a real image, TGATE added with the mouse and run, errors on
 * inputs, saving and restoring (file, reload, PNG drop), ComfyUI workflow files, the queue panel, TGATE
 * timelines, and the access token. No test depends on what the image shows (the model is still training).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { readPngText } from '../../diffusion/src/png-text.ts';
import { decodePng, encodePng } from '../../diffusion/src/png.ts';
import { expectedSubgraphPrompt, wrapPositivePromptInSubgraph } from '../../core/test/fixtures/subgraph-workflow.ts';
import { dragLink, editorSession, graphToPage, insertTgateWithMouse, openEditor, repoRoot, startRealServer, type TestServer, waitReady, type Win } from './helpers.ts';

const fixtures = join(repoRoot, 'packages', 'core', 'test', 'fixtures');
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

type UiNode = { id: number; type: string; widgets_values?: unknown[] };
/** The graph a first visit opens (the editor's build copies it to dist/workflows/). */
const defaultWorkflow = () => readJson(join(repoRoot, 'workflows', 'default.ui.json')) as { nodes: UiNode[] };
const defaultWidgets = (type: string) => defaultWorkflow().nodes.find((n) => n.type === type)!.widgets_values!;

const session = editorSession();

/** Graph content that must survive saving: nodes (without the execution order litegraph recomputes) and links. */
async function graphContent(page: Page): Promise<{ nodes: unknown[]; links: unknown[] }> {
  return page.evaluate(() => {
    const workflow = (globalThis as unknown as Win).gategraph.serializeGraph();
    const nodes = workflow.nodes
      .map(({ order: _order, ...node }: { order?: number; id: number }) => node)
      .sort((a: { id: number }, b: { id: number }) => a.id - b.id);
    return { nodes, links: workflow.links };
  });
}

/** Records what the websocket brings from now on: progress values (and the sampler's bar), preview frames. */
async function watchRun(page: Page, samplerId = 3): Promise<void> {
  await page.evaluate((samplerId) => {
    const w = globalThis as unknown as Win;
    const app = w.gategraph;
    w.seen = { progress: [] as number[], previews: 0, sampler: [] as number[], running: [] as boolean[] };
    app.api.addEventListener('progress', (e: { detail: { value: number } }) => {
      w.seen.progress.push(e.detail.value);
      w.seen.sampler.push(app.nodeById(samplerId).gg.progress?.value ?? -1);
      w.seen.running.push(app.nodeById(samplerId).gg.running === true);
    });
    app.api.addEventListener('b_preview', () => w.seen.previews++);
  }, samplerId);
}

async function seenDuringRun(page: Page): Promise<{ progress: number[]; previews: number; sampler: number[]; running: boolean[] }> {
  return page.evaluate(() => (globalThis as unknown as Win).seen);
}

/**
 * Clicks Queue and waits until the node shows a new image loaded from /view (or the run fails: then the error
 * toast's text fails the test). Returns the image's file name and the size the browser decoded.
 */
async function queueAndWaitForImage(page: Page, nodeId: number): Promise<{ filename: string; width: number; height: number }> {
  const previous = await page.evaluate((id) => ((globalThis as unknown as Win).gategraph.nodeById(id)?.gg.images[0]?.dataset.filename as string) ?? '', nodeId);
  await page.locator('#gg-queue').click();
  await page.waitForFunction(
    ({ id, previous }) => {
      const w = globalThis as unknown as Win;
      const img = w.gategraph.nodeById(id)?.gg.images[0];
      const shown = img !== undefined && img.dataset.filename !== previous && img.complete && img.naturalWidth > 0;
      return shown || w.document.querySelector('.gg-toast-error') !== null;
    },
    { id: nodeId, previous },
    // The first run opens the model's ONNX sessions; the machine may be busy with other work.
    { timeout: 90_000 },
  );
  const failure = await page.locator('.gg-toast-error').first().textContent({ timeout: 100 }).catch(() => null);
  if (failure) throw new Error(`the run failed: ${failure}`);
  return page.evaluate((id) => {
    const img = (globalThis as unknown as Win).gategraph.nodeById(id).gg.images[0];
    return { filename: img.dataset.filename as string, width: img.naturalWidth as number, height: img.naturalHeight as number };
  }, nodeId);
}

/** A generated picture: a PNG of that size whose pixels are not all one colour. */
function assertGeneratedPng(png: Buffer, width: number, height: number): void {
  const image = decodePng(png);
  assert.deepEqual([image.width, image.height], [width, height], 'the PNG has the size the graph asks for');
  const first = image.data.slice(0, image.channels);
  let varied = false;
  for (let i = 0; i < image.data.length && !varied; i += image.channels) {
    for (let c = 0; c < image.channels; c++) if (image.data[i + c] !== first[c]) varied = true;
  }
  assert.ok(varied, 'the image is not a blank fill');
}

/** Opens a file through the toolbar's Open button (its file input), and waits for the editor to say so. */
async function openFile(page: Page, name: string, content: string | Buffer): Promise<void> {
  await page.locator('#gg-file').setInputFiles({ name, mimeType: name.endsWith('.png') ? 'image/png' : 'application/json', buffer: Buffer.from(content) });
  await page.locator('.gg-toast', { hasText: `Opened ${name}` }).last().waitFor();
}

describe('editor', () => {
  test('a first visit opens the default text-to-image graph, built from /object_info', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const nodes = await page.evaluate(() =>
      (globalThis as unknown as Win).gategraph.nodes.map((n: { id: number; comfyClass: string }) => [n.id, n.comfyClass]),
    );
    assert.deepEqual(new Map(nodes), new Map([
      [4, 'CheckpointLoaderSimple'], [6, 'CLIPTextEncode'], [7, 'CLIPTextEncode'], [5, 'EmptyLatentImage'],
      [3, 'KSampler'], [8, 'VAEDecode'], [9, 'SaveImage'],
    ]));
    // It is the product's workflows/default.ui.json, with its values, on the real node classes.
    const shown = (await graphContent(page)).nodes as UiNode[];
    assert.deepEqual(
      shown.map((n) => [n.id, n.type, n.widgets_values ?? []]),
      defaultWorkflow().nodes.sort((a, b) => a.id - b.id).map((n) => [n.id, n.type, n.widgets_values ?? []]),
    );
    const { prompt, warnings } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.deepEqual(warnings, []);
    assert.equal(prompt['4'].inputs.ckpt_name, 'tiny-sd');
    const models = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(4).widgets[0].options.values as string[]);
    assert.ok(models.includes('tiny-sd'), `the loader lists the embedded model from the models folder: ${models.join(', ')}`);
    assert.deepEqual(prompt['3'].inputs.model, ['4', 0]);
    assert.deepEqual(prompt['3'].inputs.positive, ['6', 0]);
    assert.deepEqual(prompt['3'].inputs.negative, ['7', 0]);
    assert.deepEqual(prompt['3'].inputs.latent_image, ['5', 0]);
    assert.deepEqual(prompt['8'].inputs, { samples: ['3', 0], vae: ['4', 2] });
    assert.deepEqual(prompt['9'].inputs.images, ['8', 0]);
    // Widgets follow object_info: the seed's control widget right after it, limits from the spec.
    const widgets = await page.evaluate(() =>
      (globalThis as unknown as Win).gategraph.nodeById(3).widgets.map((w: { name: string; type: string; options: { min?: number; max?: number } }) => [
        w.name,
        w.type,
        w.options.min ?? null,
        w.options.max ?? null,
      ]),
    );
    assert.deepEqual(widgets.map((w: unknown[]) => w[0]), ['seed', 'control_after_generate', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise']);
    assert.deepEqual(widgets[2], ['steps', 'number', 1, 10000]);
    assert.equal(widgets[4][1], 'combo');
    assert.equal(await page.locator('textarea[data-widget="text"]').count(), 2, 'the prompts are multiline textareas');
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('without the workflow file the default graph is built in code, with the same wiring', async () => {
    const links = (prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }>) =>
      Object.fromEntries(
        Object.entries(prompt).map(([id, node]) => [id, [node.class_type, Object.entries(node.inputs).filter(([, v]) => Array.isArray(v))]]),
      );
    const { page: fromFile } = await openEditor(session.browser.context, session.server.url);
    const expected = links((await fromFile.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt())).prompt);
    await fromFile.close();

    const page = await session.browser.context.newPage();
    await page.route('**/workflows/default.ui.json', (route) => route.fulfill({ status: 404, body: 'not here' }));
    await page.goto(session.server.url);
    await page.evaluate(() => (globalThis as unknown as Win).localStorage.clear());
    await page.reload();
    await waitReady(page);
    const built = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.deepEqual(built.warnings, []);
    assert.deepEqual(links(built.prompt), expected);
    assert.equal(built.prompt['4'].inputs.ckpt_name, 'tiny-sd');
    await page.close();
  });

  test('editing the prompt and queueing samples on the model, with progress, previews and the image on SaveImage', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const text = 'a small blue square at the bottom right on a white background';
    await page.locator('textarea[data-widget="text"][data-node-id="6"]').fill(text);
    await watchRun(page);
    await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.nodeById(3).widgets.find((x: { name: string }) => x.name === 'control_after_generate').value = 'increment';
    });
    const values = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).widgets.map((w: { value: unknown }) => w.value) as number[]);
    const seed = values[0]!;
    const steps = values[2]!;
    const [width, height] = defaultWidgets('EmptyLatentImage') as [number, number];
    const shown = await queueAndWaitForImage(page, 9);
    assert.deepEqual([shown.width, shown.height], [width, height], 'SaveImage shows the generated image, decoded from /view');
    const filename = shown.filename;
    const seen = await seenDuringRun(page);
    assert.deepEqual(seen.progress, Array.from({ length: steps }, (_, i) => i + 1), 'every sampler step was reported');
    assert.deepEqual(seen.sampler, seen.progress, 'the progress bar on the KSampler followed');
    assert.ok(seen.running.every(Boolean), 'the sampler was marked as the running node');
    assert.ok(seen.previews >= 1, 'latent previews arrived as binary frames');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).gg.running), false, 'nothing runs after the prompt');
    // After queueing, the seed moved on as its control widget says.
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).widgets[0].value), seed + 1);

    const history = (await (await fetch(`${session.server.url}/history`)).json()) as Record<string, { prompt: [number, string, Record<string, { inputs: Record<string, unknown> }>] }>;
    const run = Object.values(history).at(-1)!;
    assert.equal(run.prompt[2]['6']!.inputs.text, text, 'the edited prompt was queued');
    assert.equal(run.prompt[2]['3']!.inputs.seed, seed, 'the seed is changed after queueing, not before');
    const png = readFileSync(join(session.server.root, 'output', filename));
    assertGeneratedPng(png, width, height);
    const workflow = JSON.parse(readPngText(png).workflow!) as { nodes: { id: number; widgets_values?: unknown[] }[] };
    assert.equal(workflow.nodes.find((n) => n.id === 6)!.widgets_values![0], text, 'the PNG carries the UI workflow');
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });

  test('queueing an unchanged graph again says that everything came from the cache', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    await page.locator('textarea[data-widget="text"][data-node-id="6"]').fill(`cache check ${Date.now()}`);
    await page.evaluate(() => ((globalThis as unknown as Win).gategraph.nodeById(3).widgets[1].value = 'fixed'));
    await queueAndWaitForImage(page, 9);
    await page.locator('#gg-queue').click();
    await page.locator('.gg-toast', { hasText: 'Nothing was executed' }).waitFor();
    await page.close();
  });

  test('nodes added with the search box and the menu, linked with the mouse, run', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void dialog.accept());
    await page.locator('#gg-clear').click();
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodes.length === 0);

    // Double-click on the empty canvas opens the search box; Enter adds the best match there.
    const first = await graphToPage(page, [100, 100]);
    await page.mouse.dblclick(first.x, first.y);
    await page.locator('.gg-search input').fill('concat');
    await page.keyboard.press('Enter');
    // Right-click on the canvas: Add Node > examples > utils > Show Text.
    const second = await graphToPage(page, [500, 100]);
    await page.mouse.click(second.x, second.y, { button: 'right' });
    // Each submenu opens as a new menu: pick the entry in the newest one.
    const entry = (text: string | RegExp) => page.locator('.litecontextmenu').last().locator('.litemenu-entry', { hasText: text });
    await entry('Add Node').click();
    await entry(/^examples$/).click();
    await entry(/^utils$/).click();
    await entry('Show Text').click();

    const nodes = await page.evaluate(() =>
      (globalThis as unknown as Win).gategraph.nodes.map((n: { id: number; comfyClass: string; pos: number[] }) => ({ id: n.id, type: n.comfyClass, pos: [...n.pos] })),
    );
    assert.deepEqual(nodes.map((n: { type: string }) => n.type), ['StringConcat', 'ShowText']);
    const [concat, show] = nodes as { id: number; pos: number[] }[];
    assert.ok(Math.abs(concat!.pos[0]! - 100) < 2 && Math.abs(concat!.pos[1]! - 100) < 2, 'the node is placed where the box was opened');

    await page.evaluate(() => (globalThis as unknown as Win).gategraph.canvas.draw(true, true));
    await page.locator(`textarea[data-widget="a"][data-node-id="${concat!.id}"]`).fill('hello');
    await page.locator(`textarea[data-widget="b"][data-node-id="${concat!.id}"]`).fill('world');
    await dragLink(page, { node: concat!.id, slot: 0 }, { node: show!.id, slot: 0 });
    const linked = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).inputs[0].link !== null, show!.id);
    assert.ok(linked, 'the mouse drag made a link');

    await page.locator('#gg-canvas').focus();
    await page.keyboard.press('Control+Enter');
    // The example pack's editor extension shows the text through node.onExecuted.
    await page.waitForFunction(
      (id) => (globalThis as unknown as Win).gategraph.nodeById(id).widgets?.find((w: { name: string }) => w.name === 'shown')?.value === 'hello world',
      show!.id,
      { timeout: 15_000 },
    );
    await page.close();
  });

  test('the editor links what the server accepts: the same type rule (case-sensitive, spaces after commas ignored)', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const verdicts = await page.evaluate(() => {
      const check = (globalThis as unknown as { LiteGraph: { isValidConnection(a: unknown, b: unknown): boolean } }).LiteGraph;
      return [
        check.isValidConnection('MODEL', 'model'),
        check.isValidConnection('INT, FLOAT', 'FLOAT'),
        check.isValidConnection('FLOAT', 'INT,FLOAT'),
        check.isValidConnection('STRING', '*'),
        check.isValidConnection('LATENT', 'IMAGE'),
        check.isValidConnection('', 'IMAGE'),
      ];
    });
    // validation.ts's isTypeCompatible gives the same answers (core's validation tests).
    assert.deepEqual(verdicts, [false, true, true, true, false, true]);
    await page.close();
  });

  test('an out-of-range value is refused by the server and marked on that input', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    // The widget clamps what is typed; a file can still carry any value.
    const workflow = defaultWorkflow();
    workflow.nodes.find((n) => n.type === 'KSampler')!.widgets_values![2] = 20000; // steps, max 10000
    await openFile(page, 'too-many-steps.json', JSON.stringify(workflow));
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodeById(3)?.widgets[2].value === 20000);
    await page.locator('#gg-queue').click();
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodeById(3).gg.errors.length > 0);
    const marked = await page.evaluate(() =>
      (globalThis as unknown as Win).gategraph.nodes.filter((n: { gg: { errors: unknown[] } }) => n.gg.errors.length > 0).map((n: { id: number }) => n.id),
    );
    assert.deepEqual(marked, [3], 'only the sampler is marked');
    const errors = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).gg.errors);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].input, 'steps');
    assert.match(errors[0].message, /10000/);
    await page.locator('.gg-toast-error', { hasText: 'steps' }).waitFor();
    // Fixing the value clears the mark on that input.
    await page.evaluate(() => {
      const node = (globalThis as unknown as Win).gategraph.nodeById(3);
      const steps = node.widgets[2];
      steps.value = 20;
      steps.callback(20);
    });
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).gg.errors), []);
    await page.close();
  });

  test('a node failing while it runs shows the error on that node', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void dialog.accept());
    await page.locator('#gg-clear').click();
    // A pattern arriving over a link is checked only when the node runs.
    const [source, failing] = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const source = app.addNode('StringConcat', [0, 0]);
      const regex = app.addNode('RegexReplace', [400, 0]);
      const show = app.addNode('ShowText', [800, 0]);
      source.widgets[0].value = '[';
      source.connect(0, regex, regex.findInputSlot('text'));
      regex.connect(0, show, 0);
      app.fitView();
      return [source.id as number, regex.id as number];
    });
    // The node menu turns the pattern widget into a socket, and a mouse drag links it.
    const title = await page.evaluate((id) => {
      const node = (globalThis as unknown as Win).gategraph.nodeById(id);
      return [node.pos[0] + 40, node.pos[1] - 15] as [number, number];
    }, failing);
    const at = await graphToPage(page, title);
    await page.mouse.click(at.x, at.y, { button: 'right' });
    await page.locator('.litemenu-entry', { hasText: 'Convert pattern to input' }).click();
    const patternSlot = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).findInputSlot('pattern') as number, failing);
    assert.ok(patternSlot >= 0, 'the pattern widget has a socket now');
    await dragLink(page, { node: source, slot: 0 }, { node: failing, slot: patternSlot });
    const { prompt } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.deepEqual(prompt[String(failing)].inputs.pattern, [String(source), 0], 'the link feeds the widget input');
    await page.locator('#gg-queue').click();
    await page.locator('.gg-toast-error', { hasText: 'not a valid regular expression' }).waitFor();
    const errors = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).gg.errors, failing);
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /NodeInputError.*not a valid regular expression/);
    await page.close();
  });

  test('the graph survives a reload, a save to file and open, and a dropped PNG', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void dialog.accept(dialog.type() === 'prompt' ? 'my graph' : undefined));
    await page.locator('textarea[data-widget="text"][data-node-id="7"]').fill('ugly, deformed');
    await page.evaluate(() => ((globalThis as unknown as Win).gategraph.nodeById(3).widgets[2].value = 12)); // steps
    const before = await graphContent(page);
    // The autosave copies the graph to localStorage each second.
    await page.waitForFunction(() => {
      // (No named helper functions in here: tsx would wrap them in a helper the page does not have.)
      const saved = JSON.parse((globalThis as unknown as Win).localStorage.getItem('gategraph.workflow') ?? 'null') as { nodes: UiNode[] } | null;
      const [sampler, negative] = [3, 7].map((id) => saved?.nodes.find((n) => n.id === id)?.widgets_values ?? []);
      return negative![0] === 'ugly, deformed' && sampler![2] === 12;
    });
    await page.reload();
    await waitReady(page);
    assert.deepEqual(await graphContent(page), before, 'reload restores the graph from localStorage');

    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#gg-save').click()]);
    assert.equal(download.suggestedFilename(), 'my graph.json');
    const saved = readFileSync((await download.path())!, 'utf8');
    await page.locator('#gg-clear').click();
    await openFile(page, 'my graph.json', saved);
    assert.deepEqual(await graphContent(page), before, 'a saved file opens as the same graph');

    // A PNG made by a run carries the workflow: dropping it restores that graph.
    const { filename } = await queueAndWaitForImage(page, 9);
    const png = readFileSync(join(session.server.root, 'output', filename));
    const embedded = JSON.parse(readPngText(png).workflow!) as { nodes: { id: number }[] };
    await page.locator('#gg-clear').click();
    await dropFile(page, 'run.png', png);
    const restored = await graphContent(page);
    assert.deepEqual(
      restored.nodes.map((n) => (n as { widgets_values?: unknown }).widgets_values),
      [...embedded.nodes].sort((a, b) => a.id - b.id).map((n) => (n as { widgets_values?: unknown }).widgets_values),
    );

    // ComfyUI's own PNGs too (written by Pillow as ComfyUI's SaveImage does).
    const comfy = readFileSync(join(repoRoot, 'packages', 'diffusion', 'test', 'fixtures', 'comfyui_saveimage.png'));
    await dropFile(page, 'ComfyUI_00001_.png', comfy);
    const text = await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(6).widgets[0].value);
    assert.equal(text, 'un chat dans un café, 東京の夜, 🐱');
    await page.close();
  });

  test('a workflow saved on the server is listed and opens again', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    page.on('dialog', (dialog) => void dialog.accept(dialog.type() === 'prompt' ? 'kept on server' : undefined));
    await page.locator('textarea[data-widget="text"][data-node-id="6"]').fill('saved remotely');
    const before = await graphContent(page);
    await page.locator('#gg-save-server').click();
    await page.locator('.gg-toast', { hasText: 'Saved kept on server.json on the server' }).waitFor();
    await page.locator('#gg-clear').click();
    await page.locator('#gg-server-workflows').focus();
    await page.locator('#gg-server-workflows option[value="kept on server.json"]').waitFor({ state: 'attached' });
    await page.locator('#gg-server-workflows').selectOption('kept on server.json');
    await page.locator('.gg-toast', { hasText: 'Opened kept on server.json from the server' }).waitFor();
    assert.deepEqual(await graphContent(page), before);
    await page.close();
  });

  test('ComfyUI workflow files (UI 0.4 and 1) load and queue the same API prompt ComfyUI does', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const expected = readJson(join(fixtures, 'default-workflow.api.json'));
    for (const file of ['default-workflow.ui.json', 'default-workflow.ui-v1.json']) {
      await openFile(page, file, readFileSync(join(fixtures, file), 'utf8'));
      await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.nodeById(3)?.widgets[0].value === 156680208700286);
      const { prompt, warnings } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
      assert.deepEqual(warnings, [], file);
      assert.deepEqual(prompt, expected, file);
      assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodeById(3).widgets[1].value), 'randomize', file);
    }
    await page.close();
  });

  test('a subgraph of a version 1 workflow is kept as a placeholder, saved with its definition and queued expanded', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    type Node = { id: number; type: string; widgets_values?: unknown };
    const workflow = readJson(join(fixtures, 'default-workflow.ui-v1.json')) as { nodes: Node[]; definitions?: unknown };
    // The positive prompt wrapped in a subgraph (the same case as core's converter test).
    wrapPositivePromptInSubgraph(workflow);
    await openFile(page, 'subgraph.json', JSON.stringify(workflow));
    const { prompt, warnings } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    const expected = expectedSubgraphPrompt(readJson(join(fixtures, 'default-workflow.api.json')) as Record<string, unknown>);
    assert.deepEqual(warnings, []);
    assert.deepEqual(prompt, expected);
    assert.equal(await page.locator('.gg-toast', { hasText: 'Missing node types' }).count(), 0);
    const saved = await page.evaluate(() => (globalThis as unknown as Win).gategraph.serializeGraph());
    assert.deepEqual(saved.definitions, workflow.definitions, 'saving keeps the subgraph definitions');
    await page.close();
  });

  test('Reroute and Note nodes of ComfyUI workflows load as editor-only nodes and are left out of the prompt', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    type Node = { id: number; type: string; inputs?: { link: number | null }[]; outputs?: { links: number[] }[] };
    const workflow = readJson(join(fixtures, 'default-workflow.ui.json')) as { nodes: Node[]; links: unknown[][]; last_node_id: number; last_link_id: number };
    // CLIP of the checkpoint reaches the positive prompt through a reroute (link 3 -> reroute -> link 10).
    const link3 = workflow.links.find((l) => l[0] === 3)!;
    link3[3] = 10;
    link3[4] = 0;
    workflow.links.push([10, 10, 0, 6, 0, 'CLIP']);
    workflow.nodes.find((n) => n.id === 6)!.inputs![0]!.link = 10;
    workflow.nodes.push(
      { id: 10, type: 'Reroute', pos: [300, 300], size: [75, 26], flags: {}, order: 1, mode: 0, inputs: [{ name: '', type: '*', link: 3 }], outputs: [{ name: '', type: 'CLIP', links: [10], slot_index: 0 }], properties: { showOutputText: false, horizontal: false } } as unknown as Node,
      { id: 11, type: 'Note', pos: [0, 0], size: [300, 100], flags: {}, order: 0, mode: 0, properties: { text: '' }, widgets_values: ['lower cfg for softer images'] } as unknown as Node,
    );
    workflow.last_node_id = 11;
    workflow.last_link_id = 10;
    await openFile(page, 'rerouted.json', JSON.stringify(workflow));
    const state = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      return { reroute: app.nodeById(10)?.comfyClass, note: app.nodeById(11)?.widgets[0].value, prompt: app.graphToPrompt() };
    });
    assert.equal(state.reroute, 'Reroute');
    assert.equal(state.note, 'lower cfg for softer images');
    assert.deepEqual(state.prompt.warnings, []);
    assert.deepEqual(state.prompt.prompt, readJson(join(fixtures, 'default-workflow.api.json')));
    assert.equal(await page.locator('.gg-toast', { hasText: 'Missing node types' }).count(), 0);
    await page.close();
  });

  test('the queue panel cancels a pending prompt and interrupts the running one', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    // Real runs, told apart by their seeds: two of 2000 steps (about a minute each; the first is interrupted
    // long before its end, the second is cancelled while it waits) and a short one that runs to the end.
    const queue = async (seed: number, steps: number) => {
      await page.evaluate(
        ({ seed, steps }) => {
          const sampler = (globalThis as unknown as Win).gategraph.nodeById(3);
          sampler.widgets[0].value = seed;
          sampler.widgets[2].value = steps;
        },
        { seed, steps },
      );
      const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/prompt') && r.request().method() === 'POST'), page.locator('#gg-queue').click()]);
      return ((await response.json()) as { prompt_id: string }).prompt_id;
    };
    const running = await queue(101, 2000);
    const cancelled = await queue(102, 2000);
    const last = await queue(103, 3);
    await page.locator(`.gg-running li[data-prompt-id="${running}"]`).waitFor({ timeout: 30_000 });
    await page.locator(`.gg-pending li[data-prompt-id="${last}"]`).waitFor();
    await page.locator(`.gg-pending li[data-prompt-id="${cancelled}"]`).getByRole('button', { name: 'Cancel' }).click();
    await page.locator(`.gg-pending li[data-prompt-id="${cancelled}"]`).waitFor({ state: 'detached' });
    await page.locator(`.gg-running li[data-prompt-id="${running}"]`).getByRole('button', { name: 'Interrupt' }).click();
    await page.locator('.gg-toast', { hasText: 'interrupted' }).waitFor();
    // The remaining prompt runs to the end.
    await page.locator(`.gg-history li[data-prompt-id="${last}"].gg-status-success`).waitFor({ timeout: 60_000 });
    const history = (await (await fetch(`${session.server.url}/history`)).json()) as Record<string, { status: { status_str: string; completed: boolean } }>;
    assert.equal(cancelled in history, false, 'the cancelled prompt never ran');
    assert.equal(history[running]?.status.completed, false, 'the interrupted prompt did not complete');
    await page.close();
  });

  test('an image input uploads from its button or a drop on the node, selects the file and previews it', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const id = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const node = app.addNode('LoadImage', [0, 800]);
      app.fitView();
      app.canvas.draw(true, true);
      return node.id as number;
    });
    const png = Buffer.from(encodePng({ width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3).fill(200) }));
    const button = await page.evaluate((id) => {
      const node = (globalThis as unknown as Win).gategraph.nodeById(id);
      const widget = node.widgets.find((w: { name: string }) => w.name === 'upload');
      return [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.last_y + 10] as [number, number];
    }, id);
    const at = await graphToPage(page, button);
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.mouse.click(at.x, at.y)]);
    await chooser.setFiles({ name: 'upload test.png', mimeType: 'image/png', buffer: png });
    const shown = async (name: string) => {
      await page.waitForFunction(
        ({ id, name }) => {
          const node = (globalThis as unknown as Win).gategraph.nodeById(id);
          const img = node.gg.images[0];
          return node.widgets[0].value === name && img?.complete && img.naturalWidth === 8;
        },
        { id, name },
      );
    };
    await shown('upload test.png');
    assert.deepEqual(readFileSync(join(session.server.root, 'input', 'upload test.png')), png);

    const center = await page.evaluate((id) => {
      const node = (globalThis as unknown as Win).gategraph.nodeById(id);
      return [node.pos[0] + 40, node.pos[1] + 10] as [number, number];
    }, id);
    await dropFile(page, 'dropped.png', png, await graphToPage(page, center), 'Uploaded dropped.png');
    await shown('dropped.png');
    const { prompt } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.equal(prompt[String(id)].inputs.image, 'dropped.png');
    assert.equal('upload' in prompt[String(id)].inputs, false, 'the button is not an input');

    // A file that appears in the input folder some other way shows up after Refresh.
    writeFileSync(join(session.server.root, 'input', 'copied in.png'), png);
    await page.locator('#gg-refresh').click();
    await page.locator('.gg-toast', { hasText: 'Node definitions refreshed' }).waitFor();
    const choices = await page.evaluate((id) => (globalThis as unknown as Win).gategraph.nodeById(id).widgets[0].options.values as string[], id);
    assert.ok(choices.includes('copied in.png'), `the list has the new file: ${choices.join(', ')}`);
    await page.close();
  });

  test('TGATE nodes draw the plan of the connected sampler and follow their widgets', async () => {
    const { page } = await openEditor(session.browser.context, session.server.url);
    const summary = () => page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      return app.timelineFor(app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'GateSchedule'));
    });
    await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.nodeById(3).widgets.find((w: { name: string }) => w.name === 'steps').value = 20;
      const gate = app.addNode('GateSchedule', [0, 700]);
      const cross = app.addNode('CacheCrossAttn', [350, 700]);
      const self = app.addNode('CacheSelfAttn', [700, 700]);
      app.nodeById(4).connect(0, cross, 0);
      gate.connect(0, cross, 1);
      gate.connect(0, self, 1);
      cross.connect(0, self, 0);
      self.connect(0, app.nodeById(3), 0);
    });
    let timeline = await summary();
    assert.equal(timeline.error, undefined);
    assert.equal(timeline.plan.stepCount, 20, 'the steps come from the KSampler');
    assert.equal(timeline.plan.steps.filter((s: { crossAttn: string }) => s.crossAttn === 'reuse').length, 10);
    assert.ok(timeline.plan.steps.some((s: { selfAttn: string }) => s.selfAttn === 'reuse'), 'CacheSelfAttn in the chain caches self-attention');
    assert.match(timeline.summary, /gate at step 9: 10 of 20 steps reuse cross-attn/);
    // Hovering a step of the drawn timeline says what runs there.
    const cell = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.fitView();
      const node = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'GateSchedule');
      const widget = node.widgets.find((w: { name: string }) => w.name === 'timeline');
      const cellW = (node.size[0] - 24 - 58) / 20;
      return [node.pos[0] + 12 + 58 + 15.5 * cellW, node.pos[1] + widget.last_y + 12] as [number, number];
    });
    const hover = await graphToPage(page, cell);
    await page.mouse.move(hover.x, hover.y);
    await page.locator('.gg-tooltip', { hasText: 'step 15' }).waitFor();
    const tip = await page.locator('.gg-tooltip').textContent();
    assert.match(tip ?? '', /one pass \(negative text\)/);
    assert.match(tip ?? '', /cross-attention reused from the cache/);
    await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.nodeById(3).widgets.find((w: { name: string }) => w.name === 'steps').value = 30;
      app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'GateSchedule').widgets.find((w: { name: string }) => w.name === 'gate_step').value = 12;
    });
    timeline = await summary();
    assert.equal(timeline.plan.stepCount, 30);
    assert.match(timeline.summary, /gate at step 11: 18 of 30 steps reuse cross-attn/);
    // Bypassing a TGATE node (select it, Ctrl+B) takes it out of the prompt: the model flows past it.
    const crossTitle = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      app.fitView();
      const node = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'CacheCrossAttn');
      return [node.pos[0] + 60, node.pos[1] - 15] as [number, number];
    });
    const at = await graphToPage(page, crossTitle);
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction(() => (globalThis as unknown as Win).gategraph.selectedNodes().length === 1);
    await page.keyboard.press('Control+b');
    const bypassed = await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const cross = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'CacheCrossAttn');
      const self = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'CacheSelfAttn');
      const { prompt } = app.graphToPrompt();
      return { mode: cross.mode, inPrompt: String(cross.id) in prompt, selfModel: prompt[String(self.id)].inputs.model };
    });
    assert.deepEqual(bypassed, { mode: 4, inPrompt: false, selfModel: ['4', 0] });
    await page.keyboard.press('Control+b');
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'CacheCrossAttn').mode), 0);

    // Settings the planner refuses are shown as its message, not a broken drawing.
    await page.evaluate(() => {
      const app = (globalThis as unknown as Win).gategraph;
      const gate = app.nodes.find((n: { comfyClass: string }) => n.comfyClass === 'GateSchedule');
      gate.widgets.find((w: { name: string }) => w.name === 'warm_up').value = 50; // past the gate
    });
    timeline = await summary();
    assert.match(timeline.error, /warmUp/);
    await page.close();
  });

  test('TGATE put between the loader and the sampler with the mouse runs on the model and shows its timeline', async () => {
    const { page, errors } = await openEditor(session.browser.context, session.server.url);
    const { gate, cross } = await insertTgateWithMouse(page);
    const { prompt, warnings } = await page.evaluate(() => (globalThis as unknown as Win).gategraph.graphToPrompt());
    assert.deepEqual(warnings, []);
    assert.deepEqual(prompt[String(cross)].inputs, { model: ['4', 0], schedule: [String(gate), 0] }, 'the dragged links feed CacheCrossAttn');
    assert.deepEqual(prompt['3'].inputs.model, [String(cross), 0], 'the sampler takes the patched model instead of the loader\'s');
    assert.equal(prompt[String(gate)].class_type, 'GateSchedule');

    // Both TGATE nodes draw the plan of the sampler they feed: its 25 steps, gated at step 10.
    const steps = defaultWidgets('KSampler')[2] as number;
    for (const id of [gate, cross]) {
      const timeline = await page.evaluate((id) => {
        const app = (globalThis as unknown as Win).gategraph;
        return app.timelineFor(app.nodeById(id));
      }, id);
      assert.equal(timeline.error, undefined);
      assert.equal(timeline.plan.stepCount, steps);
      assert.match(timeline.summary, new RegExp(`${steps - 10} of ${steps} steps reuse cross-attn`));
    }

    await watchRun(page);
    const [width, height] = defaultWidgets('EmptyLatentImage') as [number, number];
    const shown = await queueAndWaitForImage(page, 9);
    assert.deepEqual([shown.width, shown.height], [width, height], 'SaveImage shows the gated run\'s image');
    assertGeneratedPng(readFileSync(join(session.server.root, 'output', shown.filename)), width, height);
    const seen = await seenDuringRun(page);
    assert.deepEqual(seen.progress, Array.from({ length: steps }, (_, i) => i + 1), 'progress of every step');
    assert.ok(seen.previews >= 1, 'latent previews arrived');
    const history = (await (await fetch(`${session.server.url}/history`)).json()) as Record<string, { prompt: [number, string, Record<string, { class_type: string }>] }>;
    const ran = Object.values(Object.values(history).at(-1)!.prompt[2]).map((n) => n.class_type);
    assert.ok(ran.includes('GateSchedule') && ran.includes('CacheCrossAttn'), `the queued prompt has the TGATE nodes: ${ran.join(', ')}`);

    // After the run the timeline is still drawn on the GateSchedule: hovering a step after the gate says so.
    const cell = await page.evaluate(
      ({ id, steps }) => {
        const app = (globalThis as unknown as Win).gategraph;
        app.fitView();
        const node = app.nodeById(id);
        const widget = node.widgets.find((w: { name: string }) => w.name === 'timeline');
        const cellW = (node.size[0] - 24 - 58) / steps;
        return [node.pos[0] + 12 + 58 + 15.5 * cellW, node.pos[1] + widget.last_y + 12] as [number, number];
      },
      { id: gate, steps },
    );
    const hover = await graphToPage(page, cell);
    await page.mouse.move(hover.x, hover.y);
    await page.locator('.gg-tooltip', { hasText: 'step 15' }).waitFor();
    assert.match((await page.locator('.gg-tooltip').textContent()) ?? '', /cross-attention reused from the cache/);
    assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
    await page.close();
  });
});

/** Drops a file on the canvas (at a page position, else its corner) and waits for the editor's answer. */
async function dropFile(page: Page, name: string, bytes: Buffer, at?: { x: number; y: number }, expect = `Opened ${name}`): Promise<void> {
  const data = bytes.toString('base64');
  await page.evaluate(
    ({ name, data, at }) => {
      const w = globalThis as unknown as Win;
      const binary = Uint8Array.from(w.atob(data) as string, (c: string) => c.charCodeAt(0));
      const transfer = new w.DataTransfer();
      transfer.items.add(new w.File([binary], name, { type: 'image/png' }));
      const target = w.document.getElementById('gg-canvas');
      const position = at ? { clientX: at.x, clientY: at.y } : {};
      target.dispatchEvent(new w.DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true, ...position }));
      target.dispatchEvent(new w.DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true, ...position }));
    },
    { name, data, at },
  );
  await page.locator('.gg-toast', { hasText: expect }).last().waitFor();
}

describe('access token', () => {
  let guarded: TestServer;
  before(async () => {
    guarded = await startRealServer({ token: 'sekret-token' });
  });
  after(async () => {
    await guarded?.close();
  });

  test('a 401 asks for the token once, keeps it, and sends it on HTTP and the websocket', async () => {
    const page = await session.browser.context.newPage();
    await page.goto(guarded.url);
    await page.evaluate(() => (globalThis as unknown as Win).localStorage.clear());
    await page.reload();
    const dialog = page.locator('#gg-token-dialog');
    await dialog.locator('input').fill('sekret-token');
    await dialog.getByRole('button', { name: 'Connect' }).click();
    await waitReady(page);
    assert.equal(await page.evaluate(() => (globalThis as unknown as Win).localStorage.getItem('gategraph.token')), 'sekret-token');
    assert.ok((await page.evaluate(() => (globalThis as unknown as Win).gategraph.nodes.length)) > 0, 'object_info was read with the token');
    await page.locator('#gg-connection[data-state="open"]').waitFor();
    // The next visit uses the stored token without asking.
    await page.reload();
    await waitReady(page);
    assert.equal(await page.locator('#gg-token-dialog').count(), 0);
    await page.close();
  });
});

