/**
 * Editor extensions shipped by node packs (their web folder, listed by GET /extensions). Each URL is imported
 * as an ES module whose default export is `{ name, init?, beforeRegisterNodeDef?, nodeCreated?, setup? }`
 * (docs/authoring-nodes.md). A broken extension is reported and skipped; it never stops the editor.
 */
import type { EditorApp, EditorExtension } from './app.ts';

export async function loadExtensions(app: EditorApp): Promise<void> {
  let urls: string[] = [];
  try {
    urls = await app.api.json<string[]>('/extensions');
  } catch (error) {
    app.notify('warning', `Could not list editor extensions: ${(error as Error).message}`);
    return;
  }
  const modules = await Promise.all(
    urls.map(async (url) => {
      try {
        return { url, module: (await import(/* @vite-ignore */ new URL(url, location.href).href)) as { default?: unknown } };
      } catch (error) {
        app.notify('error', `Extension ${url} failed to load: ${(error as Error).message}`);
        return undefined;
      }
    }),
  );
  for (const loaded of modules) {
    if (!loaded) continue;
    const extension = loaded.module.default as EditorExtension | undefined;
    if (!extension || typeof extension !== 'object' || typeof extension.name !== 'string') {
      app.notify('error', `Extension ${loaded.url} has no default export { name, ... }; it was skipped`);
      continue;
    }
    registerExtension(app, extension);
  }
}

/** Adds an extension (also for scripts: `gategraph.registerExtension({...})`). Names must be unique. */
export function registerExtension(app: EditorApp, extension: EditorExtension): void {
  if (app.extensions.some((e) => e.name === extension.name)) {
    app.notify('error', `Two extensions are named "${extension.name}"; the second was skipped`);
    return;
  }
  app.extensions.push(extension);
}

/** Calls a hook on every extension, in load order; a failing one is logged and the others still run. */
export async function callHook(app: EditorApp, hook: 'init' | 'setup'): Promise<void> {
  for (const extension of app.extensions) {
    try {
      await extension[hook]?.(app);
    } catch (error) {
      console.error(`gategraph: extension ${extension.name} failed in ${hook}`, error);
      app.notify('error', `Extension ${extension.name} failed in ${hook}: ${(error as Error).message}`);
    }
  }
}
