// Builds the editor (web/) to static files in dist/, which the server serves at `/`.
//
// litegraph.js 0.7 is a classic script that defines globals on `this`, so it is not bundled: it is copied to
// dist/vendor/ and loaded by a plain <script> tag before the app (node packs' extensions also expect the
// `LiteGraph` global, as in ComfyUI). The default workflow of the repository is copied next to the app, so
// the editor finds it at /workflows/default.ui.json whatever server serves dist/.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../..');
const require = createRequire(import.meta.url);
const litegraphDir = dirname(require.resolve('litegraph.js/package.json'));

/** Files copied as they are: URL path in dist -> absolute source path (skipped when the source is absent). */
const copied: Record<string, string> = {
  'vendor/litegraph.core.js': join(litegraphDir, 'build/litegraph.core.js'),
  'vendor/litegraph.css': join(litegraphDir, 'css/litegraph.css'),
  'workflows/default.ui.json': join(repoRoot, 'workflows/default.ui.json'),
};

function copyFiles(): Plugin {
  return {
    name: 'gategraph-copy-files',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const path = (req.url ?? '').split('?')[0]!.replace(/^\//, '');
        const source = copied[path];
        if (!source || !existsSync(source)) return next();
        res.setHeader('Content-Type', path.endsWith('.css') ? 'text/css' : path.endsWith('.json') ? 'application/json' : 'text/javascript');
        res.end(readFileSync(source));
      });
    },
    generateBundle() {
      for (const [fileName, source] of Object.entries(copied)) {
        if (existsSync(source)) this.emitFile({ type: 'asset', fileName, source: readFileSync(source) });
      }
    },
  };
}

export default defineConfig({
  root: join(here, 'web'),
  base: './',
  plugins: [copyFiles()],
  build: {
    outDir: join(here, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `pnpm --filter @gategraph/editor dev` proxies the API to a server started with `pnpm serve`.
    proxy: Object.fromEntries(
      ['/prompt', '/queue', '/history', '/object_info', '/view', '/upload', '/interrupt', '/extensions', '/userdata', '/system_stats', '/api'].map(
        (p) => [p, { target: process.env.GATEGRAPH_URL ?? 'http://127.0.0.1:8188', ws: false }],
      ).concat([['/ws', { target: (process.env.GATEGRAPH_URL ?? 'http://127.0.0.1:8188').replace(/^http/, 'ws'), ws: true }]]),
    ),
  },
});
