/**
 * The running prompt's progress in the browser tab's title, as ComfyUI shows it ("[42%] gategraph"), so a run
 * can be followed from another tab; the title comes back when the prompt ends (success, error, interrupt).
 */
import type { EditorApp } from './app.ts';

export function installTitleProgress(app: EditorApp): void {
  const base = document.title;
  const restore = () => {
    document.title = base;
  };
  app.api.addEventListener('progress', (event) => {
    const { value, max } = (event as CustomEvent<{ value: number; max: number }>).detail;
    if (max > 0) document.title = `[${Math.round((100 * value) / max)}%] ${base}`;
  });
  app.api.addEventListener('executing', (event) => {
    if ((event as CustomEvent<{ node: string | null }>).detail?.node === null) restore();
  });
  for (const type of ['execution_success', 'execution_error', 'execution_interrupted']) app.api.addEventListener(type, restore);
}
