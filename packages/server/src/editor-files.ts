/**
 * The web editor's static files at `/`, and the page shown in their place while they are not built.
 *
 * Whether the editor is built is decided per request, not once at start: a build made while the server runs
 * (`pnpm install` or `build:editor` in another terminal) is served on the next reload, without a restart. The
 * page reloads itself every few seconds, so it turns into the editor by itself once the build is there.
 */
import { existsSync, statSync } from 'node:fs';
import { relative, resolve, sep } from 'node:path';
import express from 'express';

/** How often the not-built page reloads itself, seconds. */
const RECHECK_SECONDS = 3;

export interface EditorFilesOptions {
  /** The built editor (an index.html and its assets). */
  dir: string;
  /**
   * The command that builds it, as a person types it (the README's install line); undefined when `dir` is not
   * the workspace's own build (`--editor-dir`), which no command of ours produces.
   */
  buildCommand: string | undefined;
}

/**
 * The editor's Content-Security-Policy: scripts only from this server (the editor's bundle, litegraph, packs'
 * extension scripts), no inline script, no plugins, not framed by other sites. 'unsafe-eval' stays because
 * litegraph's number widgets evaluate typed arithmetic ("512*2") with eval; inline styles stay for litegraph
 * and the editor's dialogs. What users upload is never a script here: /view serves it with a CSP of its own.
 */
export const EDITOR_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function serveEditorFiles(app: express.Express, options: EditorFilesOptions): void {
  const index = `${options.dir}/index.html`;
  // express.static falls through when the folder or file is missing, so it can be mounted before a build exists.
  app.use(
    express.static(options.dir, {
      index: 'index.html',
      dotfiles: 'ignore',
      setHeaders: (res) => res.setHeader('Content-Security-Policy', EDITOR_CSP),
    }),
  );
  app.get(['/', '/index.html'], (_req, res) => {
    res.setHeader('Content-Security-Policy', EDITOR_CSP);
    if (existsSync(index)) return void res.sendFile(index);
    res.type('html').set('Cache-Control', 'no-store').send(notBuiltPage(options.buildCommand));
  });
}

/**
 * Whether a (normalized) request path names a file express.static would serve from `dir`, or the editor's
 * page itself (which is the not-built page while there is no build).
 */
export function isEditorFile(dir: string, path: string): boolean {
  if (path === '/' || path === '/index.html') return true;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  const file = resolve(dir, `.${decoded}`);
  const inside = relative(dir, file);
  if (inside === '' || inside.startsWith('..') || inside.startsWith(sep) || inside.split(sep).some((part) => part.startsWith('.'))) return false;
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function notBuiltPage(buildCommand: string | undefined): string {
  const how = buildCommand
    ? `<p>Build it by running, in the repository's folder:</p>\n<pre><code>${escapeHtml(buildCommand)}</code></pre>\n` +
      `<p>(the first line of the README runs it too). You do not need to restart the server.</p>`
    : `<p>The folder given with <code>--editor-dir</code> holds no <code>index.html</code>: point it at a built editor ` +
      `(<code>packages/editor/dist</code> after an install), or leave the flag out.</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${RECHECK_SECONDS}"><title>gategraph: editor not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42em;margin:4em auto;padding:0 1em}code,pre{background:#eee;padding:.1em .3em}pre{padding:.6em}</style>
</head><body>
<h1>gategraph server is running</h1>
<p>The web editor is not built yet, so there is nothing to show here.</p>
${how}
<p>This page checks again every ${RECHECK_SECONDS} seconds and opens the editor once it is built.</p>
<p>The API works already: <a href="object_info">/object_info</a>, <a href="queue">/queue</a>, <a href="history">/history</a>, <a href="system_stats">/system_stats</a>.</p>
</body></html>
`;
}
