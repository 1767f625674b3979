/**
 * Browser-test fixtures: a real gategraph server on 127.0.0.1:0 in a temporary folder (the example pack with
 * its editor extension, plus runnable stand-ins of the diffusion nodes), Debian's Chromium driven by
 * playwright-core with a fresh profile, and helpers that act on the canvas with real mouse events.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { listWebExtensions, loadPacks, NodeRegistry, silentLogger, type AnyNodeDefinition } from '@gategraph/core';
import { startServer, type GategraphServer, type StartServerOptions } from '@gategraph/server';
import { standInNodes } from './fixtures/stand-in-nodes.ts';

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

export interface TestServerOptions extends StartServerOptions {
  /** Node classes besides the packs'; default: the stand-in diffusion nodes. */
  nodes?: AnyNodeDefinition[];
  /** Packages loaded as packs (resolved from packages/editor); the example pack is always loaded. */
  packs?: string[];
}

/** The example pack (with its web extension) and the stand-in diffusion nodes, on a fresh server. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  assertEditorBuilt();
  const root = mkdtempSync(join(tmpdir(), 'gategraph-editor-'));
  const registry = new NodeRegistry();
  const packs = await loadPacks({ packages: ['@gategraph/example-pack', ...(options.packs ?? [])], resolveFrom: editorDir, registry, logger: silentLogger });
  if (packs.failed.length) throw new Error(`example pack failed to load: ${packs.failed.map((f) => f.error).join('; ')}`);
  for (const node of options.nodes ?? standInNodes({ inputDir: join(root, 'input') })) registry.register(node, { pack: 'editor-test-stand-ins' });
  const { nodes: _nodes, packs: _packs, ...serverOptions } = options;
  const server = await startServer({
    root,
    host: '127.0.0.1',
    port: 0,
    editorDir: distDir,
    registry,
    webExtensions: listWebExtensions(packs),
    logger: silentLogger,
    fsync: false,
    env: {},
    ...serverOptions,
  });
  return {
    server,
    url: server.url,
    root,
    async close() {
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
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

export const here = dirname(fileURLToPath(import.meta.url));
