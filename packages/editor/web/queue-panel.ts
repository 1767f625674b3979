/**
 * The queue and history panel: the running prompt (Interrupt), pending ones (Cancel: removed from the
 * queue), and recent history: how each run ended (success, error with the failing node and its message,
 * interrupted with its reason), how long it ran, output thumbnails and an "N images" button opening the run's
 * images as a gallery (lightbox.ts), and Load, which opens the run's workflow (workflow-tabs.ts decides the
 * tab), or builds a graph from its API prompt when a script queued it. Refreshed on
 * the server's status messages.
 */
import type { EditorApp } from './app.ts';
import { formatDuration, summarizeRun, type HistoryEntry } from './history-entry.ts';
import { openLightbox } from './lightbox.ts';
import { loadWorkflowJson } from './workflow-io.ts';

type QueueTuple = HistoryEntry['prompt'];

const HISTORY_SHOWN = 20;

export function installQueuePanel(app: EditorApp, panel: HTMLElement): { refresh(): Promise<void> } {
  panel.innerHTML = `
    <header><h2>Queue</h2><span class="gg-queue-count" aria-live="polite"></span>
      <button type="button" class="gg-small" data-action="clear-history" title="Remove every history entry">Clear history</button></header>
    <section><h3>Running</h3><ul class="gg-running"></ul></section>
    <section><h3>Pending</h3><ul class="gg-pending"></ul></section>
    <section><h3>History</h3><ul class="gg-history"></ul></section>`;
  const running = panel.querySelector('.gg-running')!;
  const pending = panel.querySelector('.gg-pending')!;
  const history = panel.querySelector('.gg-history')!;
  const count = panel.querySelector('.gg-queue-count')!;
  let scheduled: ReturnType<typeof setTimeout> | undefined;

  const item = (label: string, promptId: string, extra?: HTMLElement[]) => {
    const li = document.createElement('li');
    li.dataset.promptId = promptId;
    const text = document.createElement('span');
    text.textContent = label;
    li.append(text, ...(extra ?? []));
    return li;
  };
  const button = (label: string, title: string, onClick: () => Promise<unknown> | void) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'gg-small';
    b.textContent = label;
    b.title = title;
    b.addEventListener('click', () => {
      void Promise.resolve(onClick())
        .catch((error: Error) => app.notify('error', error.message))
        .finally(() => void refresh());
    });
    return b;
  };

  async function refresh(): Promise<void> {
    const [queue, entries] = await Promise.all([
      app.api.json<{ queue_running: QueueTuple[]; queue_pending: QueueTuple[] }>('/queue'),
      app.api.json<Record<string, HistoryEntry>>(`/history?max_items=${HISTORY_SHOWN}`),
    ]).catch((error: Error) => {
      console.warn('gategraph: queue refresh failed', error);
      return [undefined, undefined] as const;
    });
    if (!queue || !entries) return;
    count.textContent = `${queue.queue_running.length + queue.queue_pending.length} in queue`;
    running.replaceChildren(
      ...queue.queue_running.map((t) =>
        item(`#${t[0]} running`, t[1], [button('Interrupt', 'Stop this prompt now', () => app.api.post('/interrupt', { prompt_id: t[1] }))]),
      ),
    );
    pending.replaceChildren(
      ...[...queue.queue_pending]
        .sort((a, b) => a[0] - b[0])
        .map((t) => item(`#${t[0]}`, t[1], [button('Cancel', 'Remove this prompt from the queue', () => app.api.post('/queue', { delete: [t[1]] }))])),
    );
    const list = Object.entries(entries).sort((a, b) => b[1].prompt[0] - a[1].prompt[0]);
    history.replaceChildren(...list.map(([id, entry]) => historyItem(id, entry)));
  }

  function historyItem(id: string, entry: HistoryEntry): HTMLElement {
    const run = summarizeRun(entry);
    const images = Object.values(entry.outputs ?? {})
      .flatMap((o) => o.images ?? [])
      .map((ref) => ({ src: app.api.viewUrl(ref), name: ref.filename }));
    const thumbs = images.slice(0, 4).map((image, index) => {
      const img = document.createElement('img');
      img.src = image.src;
      img.alt = image.name;
      img.title = 'Open the gallery';
      img.loading = 'lazy';
      img.className = 'gg-thumb';
      img.addEventListener('click', () => openLightbox(images, index));
      return img;
    });
    const workflow = entry.prompt[3]?.extra_pnginfo?.workflow;
    const extras: HTMLElement[] = [];
    if (run.durationMs !== undefined) {
      const time = document.createElement('span');
      time.className = 'gg-run-time';
      time.textContent = formatDuration(run.durationMs);
      time.title = 'From execution_start to the end of the run';
      extras.push(time);
    }
    if (run.reason) {
      const reason = document.createElement('div');
      reason.className = 'gg-run-reason';
      reason.textContent = run.reason;
      extras.push(reason);
    }
    extras.push(...thumbs);
    // An entry with several images (a batch, several output nodes) opens them all as one gallery, as ComfyUI's
    // queue does; the thumbnails show only the first few.
    if (images.length > 1) {
      const all = document.createElement('button');
      all.type = 'button';
      all.className = 'gg-small gg-gallery-open';
      all.textContent = `${images.length} images`;
      all.title = `Open the ${images.length} images of this run in the gallery (← → go between them)`;
      all.addEventListener('click', () => openLightbox(images, 0));
      extras.push(all);
    }
    // A prompt queued by a script has no editor workflow: its API prompt is laid out as a graph instead.
    const source = workflow ?? entry.prompt[2];
    extras.push(
      // In a new tab unless the tab shown is an unchanged temporary workflow, as ComfyUI opens it.
      button('Load', workflow ? 'Load the workflow of this run' : 'Build a graph from the API prompt of this run (queued without a workflow)', () =>
        app.tabs ? void app.tabs.open(source, `prompt ${id}`) : loadWorkflowJson(app, source, `prompt ${id}`),
      ),
    );
    extras.push(button('Delete', 'Remove from history', () => app.api.post('/history', { delete: [id] })));
    const li = item(`#${entry.prompt[0]} ${run.outcome}`, id, extras);
    li.classList.add(`gg-status-${run.outcome}`);
    return li;
  }

  const soon = () => {
    if (scheduled) return;
    scheduled = setTimeout(() => {
      scheduled = undefined;
      void refresh();
    }, 150);
  };
  for (const type of ['status', 'execution_start', 'executing', 'execution_error', 'execution_interrupted', 'execution_success', 'reconnected']) {
    app.api.addEventListener(type, (event) => {
      if (type === 'executing' && (event as CustomEvent<{ node: unknown }>).detail?.node !== null) return;
      soon();
    });
  }
  app.events.addEventListener('queued', soon);
  panel.querySelector('[data-action="clear-history"]')!.addEventListener('click', () => {
    void app.api.post('/history', { clear: true }).then(soon);
  });
  void refresh();
  return { refresh };
}
