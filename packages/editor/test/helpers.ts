/**
 * Browser-test fixtures: a real gategraph server on 127.0.0.1:0 writing to a temporary folder (the workspace's
 * node pack packages/nodes-tgate with the embedded model models/tiny-sd, and the example pack with its editor
 * extension), Debian's Chromium driven by playwright-core with a fresh profile, and helpers that act on the
 * canvas with real mouse events.
 */
import { after, before } from 'node:test';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { silentLogger } from '@gategraph/core';
import { startServer, type GategraphServer, type StartServerOptions } from '@gategraph/server';

/**
 * The page's globals, as test code inside `page.evaluate` sees them. Typed loosely on purpose: the test files
 * are compiled with the workspace's Node settings (no DOM library), and the editor's own types live in web/.
 * Write `const w = globalThis as unknown as Win;` inside the callback (the cast is erased, so the browser runs
 * plain `globalThis`).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Win = { gategraph: any; document: any; localStorage: any; [key: string]: any };

export const editorDir = fileURLToPath(new URL('..', import.meta.url));
export const repoRoot = join(editorDir, '..', '..');
export const distDir = join(editorDir, 'dist');
export const modelsDir = join(repoRoot, 'models');
export const examplePackDir = join(repoRoot, 'examples', 'example-pack');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Fails early, and says what to do, when dist/ is missing or older than the sources. */
export function assertEditorBuilt(): void {
  const built = join(distDir, 'index.html');
  if (!existsSync(built)) {
    throw new Error('The editor is not built: run `pnpm --filter @gategraph/editor build` (the root `pnpm test` does it)');
  }
  const builtAt = statSync(built).mtimeMs;
  const newest = readdirSync(join(editorDir, 'web'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs)
    .reduce((a, b) => Math.max(a, b), 0);
  if (newest > builtAt + 1000) {
    throw new Error('packages/editor/dist is older than packages/editor/web: run `pnpm --filter @gategraph/editor build` again');
  }
}

export interface TestServer {
  server: GategraphServer;
  url: string;
  root: string;
  close(): Promise<void>;
}

/**
 * The server as `pnpm serve` starts it: the workspace packs found by core's `createHost` (packages/nodes-tgate:
 * the real diffusion and TGATE nodes) and the repository's models folder (the embedded tiny-sd), plus the example
 * pack and its editor extension. Everything it writes (outputs, uploads, previews, queue and history) goes to a
 * temporary folder, `root`, removed by `close()`.
 */
export async function startRealServer(options: StartServerOptions = {}): Promise<TestServer> {
  assertEditorBuilt();
  const root = mkdtempSync(join(tmpdir(), 'gategraph-editor-'));
  try {
    const server = await startServer({
      // The repository root, so packs are discovered in packages/ exactly as `pnpm serve` does it.
      root: repoRoot,
      paths: { output: join(root, 'output'), input: join(root, 'input'), temp: join(root, 'temp'), models: modelsDir },
      dataDir: join(root, 'server'),
      customNodesDir: false,
      extraPacks: [examplePackDir],
      host: '127.0.0.1',
      port: 0,
      editorDir: distDir,
      logger: silentLogger,
      fsync: false,
      env: {},
      ...options,
    });
    // A pack that fails to load is only logged (silently here): say so instead of failing later on a missing class.
    for (const [node, pack] of [['KSampler', 'nodes-tgate'], ['StringConcat', 'example-pack']] as const) {
      if (server.registry.sourceOf(node)?.pack !== pack) {
        await server.close();
        throw new Error(`the ${pack} pack did not load (no ${node}): run \`pnpm serve\` to see its error`);
      }
    }
    return {
      server,
      url: server.url,
      root,
      async close() {
        await server.close();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

export interface TestBrowser {
  context: BrowserContext;
  downloads: string;
  close(): Promise<void>;
}

/** Chromium with a fresh profile (so localStorage starts empty). */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'gategraph-chromium-'));
  const downloads = mkdtempSync(join(tmpdir(), 'gategraph-downloads-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    downloadsPath: downloads,
    viewport: { width: 1600, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
  return {
    context,
    downloads,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      rmSync(downloads, { recursive: true, force: true });
    },
  };
}

/** Opens the editor and waits until it has started; page errors fail the test that looks at `errors`. */
export async function openEditor(context: BrowserContext, url: string, options: { clearStorage?: boolean } = {}): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  if (options.clearStorage ?? true) {
    await page.goto(`${url}/favicon-none`, { waitUntil: 'commit' }).catch(() => undefined);
    await page.evaluate(() => (globalThis as unknown as Win).localStorage.clear()).catch(() => undefined);
  }
  await page.goto(url);
  await waitReady(page);
  return { page, errors };
}

export async function waitReady(page: Page): Promise<void> {
  await page.waitForFunction(() => (globalThis as unknown as Win).document.body.dataset.ready !== undefined, undefined, { timeout: 20_000 });
  const state = await page.evaluate(() => (globalThis as unknown as Win).document.body.dataset.ready as string);
  if (state !== 'true') throw new Error(`the editor failed to start: ${await page.locator('.gg-fatal').textContent()}`);
}

/** Page coordinates of a node's slot centre (input or output). */
export async function slotPosition(page: Page, nodeId: number, kind: 'input' | 'output', slot: number): Promise<{ x: number; y: number }> {
  return page.evaluate(
    ({ nodeId, kind, slot }) => {
      const app = (globalThis as unknown as Win).gategraph;
      const node = app.graph.getNodeById(nodeId);
      const pos = node.getConnectionPos(kind === 'input', slot);
      const [x, y] = app.canvas.convertOffsetToCanvas([pos[0], pos[1]]) as [number, number];
      const rect = app.canvasEl.getBoundingClientRect();
      return { x: (rect.left as number) + x, y: (rect.top as number) + y };
    },
    { nodeId, kind, slot },
  );
}

/** Page coordinates of a graph position. */
export async function graphToPage(page: Page, pos: [number, number]): Promise<{ x: number; y: number }> {
  return page.evaluate((pos) => {
    const app = (globalThis as unknown as Win).gategraph;
    const [x, y] = app.canvas.convertOffsetToCanvas(pos) as [number, number];
    const rect = app.canvasEl.getBoundingClientRect();
    return { x: (rect.left as number) + x, y: (rect.top as number) + y };
  }, pos);
}

/** Drags a link from an output slot to an input slot with the mouse. */
export async function dragLink(page: Page, from: { node: number; slot: number }, to: { node: number; slot: number }): Promise<void> {
  const a = await slotPosition(page, from.node, 'output', from.slot);
  const b = await slotPosition(page, to.node, 'input', to.slot);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
}

/**
 * Page coordinates of a graph position on the empty canvas, for a double-click or a right-click there. Throws
 * when a node covers it or it is out of view: the click would do something else than the test means.
 */
export async function emptySpot(page: Page, pos: [number, number]): Promise<{ x: number; y: number }> {
  const problem = await page.evaluate((pos) => {
    const app = (globalThis as unknown as Win).gategraph;
    const node = app.graph.getNodeOnPos(pos[0], pos[1], app.graph._nodes, 10);
    if (node) return `node ${node.id} (${node.comfyClass}) is there`;
    const [x, y] = app.canvas.convertOffsetToCanvas(pos) as [number, number];
    if (x < 0 || y < 0 || x > app.canvasEl.width || y > app.canvasEl.height) return 'it is out of view';
    return undefined;
  }, pos);
  if (problem) throw new Error(`graph position ${pos.join(', ')} is not an empty spot on the canvas: ${problem}`);
  return graphToPage(page, pos);
}

/** The ids of the nodes of a class, oldest first. */
export async function nodesOfClass(page: Page, type: string): Promise<number[]> {
  return page.evaluate(
    (type) => (globalThis as unknown as Win).gategraph.nodes.filter((n: { comfyClass: string }) => n.comfyClass === type).map((n: { id: number }) => n.id) as number[],
    type,
  );
}

/** Adds a node as a user does in ComfyUI: double-click on the empty canvas, type in the search box, Enter. */
export async function addNodeWithSearch(page: Page, pos: [number, number], query: string, type: string): Promise<number> {
  const before = await nodesOfClass(page, type);
  const at = await emptySpot(page, pos);
  // litegraph takes two clicks as a double-click only within 300 ms; on a machine busy with parallel test files
  // the second click can come late, so a double-click that opened nothing is tried again (four tries).
  // A search box that opens late must not get the next try's clicks: they would land on its list and add
  // whatever node is listed there.
  for (let attempt = 0; ; attempt++) {
    if ((await page.locator('.gg-search input').count()) > 0) break;
    await page.mouse.dblclick(at.x, at.y);
    const opened = await page.locator('.gg-search input').waitFor({ timeout: 6000 }).then(() => true, () => false);
    if (opened) break;
    if (attempt === 3) {
      await page.screenshot({ path: join(tmpdir(), `gg-no-search-box-${Date.now()}.png`) }).catch(() => {});
      throw new Error(`double-clicking the canvas at ${pos.join(', ')} (page ${at.x}, ${at.y}) opened no search box`);
    }
  }
  await page.locator('.gg-search input').fill(query);
  await page.locator(`.gg-search li.selected[data-type="${type}"]`).waitFor();
  await page.keyboard.press('Enter');
  const added = (await nodesOfClass(page, type)).filter((id) => !before.includes(id));
  if (added.length !== 1) throw new Error(`searching "${query}" and pressing Enter did not add one ${type} (added ${added.length})`);
  return added[0]!;
}

/** Adds a node through the canvas menu: right-click on the empty canvas, Add Node, then each submenu entry. */
export async function addNodeFromMenu(page: Page, pos: [number, number], path: (string | RegExp)[], type: string): Promise<number> {
  const before = await nodesOfClass(page, type);
  const at = await emptySpot(page, pos);
  await page.mouse.click(at.x, at.y, { button: 'right' });
  // Each submenu opens as a new menu: pick the entry in the newest one.
  for (const text of ['Add Node', ...path]) await page.locator('.litecontextmenu').last().locator('.litemenu-entry', { hasText: text }).click();
  const added = (await nodesOfClass(page, type)).filter((id) => !before.includes(id));
  if (added.length !== 1) throw new Error(`Add Node > ${path.join(' > ')} did not add one ${type} (added ${added.length})`);
  return added[0]!;
}

/**
 * Puts TGATE between the loader and the sampler of the default graph with the mouse, as a user would: a
 * GateSchedule from the search box, a CacheCrossAttn from the canvas menu (sampling > tgate), and three dragged
 * links (loader MODEL -> CacheCrossAttn, GateSchedule -> CacheCrossAttn, CacheCrossAttn -> KSampler model,
 * which replaces the loader's link there). The new nodes go in the free space under the loader and the latent.
 */
export async function insertTgateWithMouse(page: Page, ids: { loader: number; sampler: number } = { loader: 4, sampler: 3 }): Promise<{ gate: number; cross: number }> {
  const gate = await addNodeWithSearch(page, [26, 650], 'GateSchedule', 'GateSchedule');
  const cross = await addNodeFromMenu(page, [473, 790], [/^sampling$/, /^tgate$/, 'Cache Cross-Attention'], 'CacheCrossAttn');
  // Draw now: litegraph finds slots among the nodes drawn in the last frame.
  await page.evaluate(() => (globalThis as unknown as Win).gategraph.canvas.draw(true, true));
  const slot = (node: number, name: string) =>
    page.evaluate(({ node, name }) => (globalThis as unknown as Win).gategraph.nodeById(node).findInputSlot(name) as number, { node, name });
  await dragLink(page, { node: ids.loader, slot: 0 }, { node: cross, slot: await slot(cross, 'model') });
  await dragLink(page, { node: gate, slot: 0 }, { node: cross, slot: await slot(cross, 'schedule') });
  await dragLink(page, { node: cross, slot: 0 }, { node: ids.sampler, slot: await slot(ids.sampler, 'model') });
  return { gate, cross };
}

export const here = dirname(fileURLToPath(import.meta.url));

/**
 * The real server and Chromium a browser test file shares: started before its tests (the server first: one that
 * cannot start must not leave a browser running, which would keep the test process alive), closed after them.
 */
export function editorSession(): { readonly server: TestServer; readonly browser: TestBrowser } {
  const session = {} as { server: TestServer; browser: TestBrowser };
  before(async () => {
    session.server = await startRealServer();
    session.browser = await launchBrowser();
  });
  after(async () => {
    await session.browser?.close();
    await session.server?.close();
  });
  return session;
}
