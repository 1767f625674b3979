/**
 * Undo/redo for every kind of change (move, add, delete, link, widget value, group, paste, bypass...) without
 * hooking each one: like ComfyUI's changeTracker, the graph is serialized when a user action has settled (a
 * mouse button released, a key released, typing paused) and compared with the last recorded state; a
 * difference is a new undo step. The view (pan and zoom) is not part of a state, so scrolling is not undone.
 *
 * Each workflow has its own history (undo-history.ts, in sessionStorage so it survives a reload): the id of
 * the workflow shown is kept in localStorage next to the autosaved graph, and opening another workflow (a
 * file, a server workflow, a history entry: app's `graph-loaded`) starts a new one.
 */
import type { EditorApp } from './app.ts';
import type { UiWorkflow } from './core.ts';
import { isEditingTitle } from './title-editor.ts';
import { UndoHistory } from './undo-history.ts';

const WORKFLOW_ID_KEY = 'gategraph.workflow.id';
/** Typing is one undo step per pause, not one per key. */
const TYPING_PAUSE_MS = 500;
/** Changes made by no input event (an extension, a websocket message) are picked up this often. */
const POLL_MS = 1500;

export interface ChangeTracker {
  undo(): boolean;
  redo(): boolean;
  /** Records the graph now if it changed (callers that change it programmatically and want a step at once). */
  checkState(): void;
  /** The graph as the history records it (to compare with `history.current`). */
  state(): string;
  readonly history: UndoHistory;
}

/**
 * The graph as an undo state: the UI workflow without the view, nodes in id order (clicking a node brings it
 * to the front, which reorders litegraph's list: not a change anyone would want to undo).
 */
export function graphState(app: EditorApp): string {
  const workflow = app.serializeGraph() as UiWorkflow & { extra?: Record<string, unknown> };
  if (workflow.extra && 'ds' in workflow.extra) {
    const { ds: _ds, ...extra } = workflow.extra;
    workflow.extra = extra;
  }
  workflow.nodes = [...workflow.nodes].sort((a, b) => Number(a.id) - Number(b.id));
  return JSON.stringify(workflow);
}

/**
 * Starts tracking. `continueSaved`: the graph on screen is the one autosaved in this browser, so the history
 * of its workflow (from before the reload) goes on; otherwise it is a new workflow.
 */
export function installChangeTracker(app: EditorApp, options: { continueSaved: boolean }): ChangeTracker {
  const savedId = options.continueSaved ? localStorage.getItem(WORKFLOW_ID_KEY) : null;
  let history = openHistory(savedId ?? undefined);
  let pointerDown = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  function openHistory(id = newWorkflowId()): UndoHistory {
    try {
      localStorage.setItem(WORKFLOW_ID_KEY, id);
    } catch {
      // Without localStorage the history still works until the page is left.
    }
    return new UndoHistory(sessionStorage, id);
  }

  const checkState = () => {
    clearTimeout(timer);
    timer = undefined;
    // Mid-drag states are not steps: the release records where the node ended. A title being typed is
    // recorded when the editor closes (it calls checkState).
    if (pointerDown || isEditingTitle()) return;
    history.record(graphState(app));
  };
  const schedule = (delay: number) => {
    clearTimeout(timer);
    timer = setTimeout(checkState, delay);
  };
  checkState();

  const restore = (state: string | undefined) => {
    if (state === undefined) return false;
    app.restoreGraphState(JSON.parse(state) as UiWorkflow);
    history.replaceCurrent(graphState(app));
    return true;
  };

  // A workflow opened under a known id (a tab switched back to, workflow-tabs.ts) goes on with its history.
  app.events.addEventListener('graph-loaded', (event) => {
    history = openHistory((event as CustomEvent<{ workflowId?: string }>).detail?.workflowId);
    checkState();
  });
  // Capture phase: litegraph and the DOM widgets stop some events from bubbling.
  addEventListener('pointerdown', (e) => {
    if (e.button === 0) pointerDown = true;
  }, true);
  addEventListener('pointerup', () => {
    pointerDown = false;
    // After litegraph's own mouseup handler has finished the change (drop a link, end a drag).
    schedule(0);
  }, true);
  addEventListener('keyup', (e) => schedule(isTextField(e.target) ? TYPING_PAUSE_MS : 0), true);
  addEventListener('input', () => schedule(TYPING_PAUSE_MS), true);
  addEventListener('change', () => schedule(0), true);
  setInterval(() => {
    if (timer === undefined) checkState();
  }, POLL_MS);

  return {
    get history() {
      return history;
    },
    checkState,
    state: () => graphState(app),
    undo() {
      // A change not yet recorded (typing that has not paused) is the step undone first.
      checkState();
      return restore(history.undo());
    },
    redo() {
      checkState();
      return restore(history.redo());
    },
  };
}

function newWorkflowId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

export function isTextField(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable === true);
}
