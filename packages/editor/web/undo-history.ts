/**
 * A bounded undo/redo history of one workflow: the serialized graph after each settled change, kept in a Web
 * Storage (sessionStorage: it survives a reload of the page but belongs to the tab, so two tabs editing do not
 * undo each other's changes). No DOM or litegraph here: change-tracker.ts decides when a change has settled.
 */

/** How many states a workflow keeps: enough for a long editing session, small enough for the storage quota. */
export const HISTORY_LIMIT = 50;
/** Histories of other workflows (other tabs) kept beside the current one (older ones are dropped). */
const KEPT_WORKFLOWS = 12;
const PREFIX = 'gategraph.history.';

interface Stored {
  states: string[];
  /** The state shown now; states after it are the redo list. */
  index: number;
  /** When it was last written, to drop the oldest histories first. */
  touched: number;
}

export class UndoHistory {
  #states: string[] = [];
  #index = -1;

  constructor(
    private readonly storage: Storage,
    readonly workflowId: string,
    private readonly limit = HISTORY_LIMIT,
  ) {
    const saved = readStored(storage, PREFIX + workflowId);
    if (saved) {
      this.#states = saved.states;
      this.#index = saved.index;
    } else {
      // A new workflow: a good moment to drop old ones (not on every change: it reads each stored history).
      pruneOtherHistories(storage, workflowId);
    }
  }

  /** The state the graph is in now, as far as the history knows. */
  get current(): string | undefined {
    return this.#states[this.#index];
  }

  get canUndo(): boolean {
    return this.#index > 0;
  }

  get canRedo(): boolean {
    return this.#index < this.#states.length - 1;
  }

  /**
   * Records a state after a change. The redo list is dropped (a new change forks history, as in every
   * editor); the oldest state goes when the limit is reached. Returns false when nothing changed.
   */
  record(state: string): boolean {
    if (state === this.current) return false;
    this.#states = [...this.#states.slice(0, this.#index + 1), state];
    if (this.#states.length > this.limit) this.#states = this.#states.slice(this.#states.length - this.limit);
    this.#index = this.#states.length - 1;
    this.#persist();
    return true;
  }

  /**
   * Replaces the current state by an equivalent one, keeping the redo list: a restored state can serialize a
   * little differently (execution order, sizes litegraph recomputes), which must not count as a new change.
   */
  replaceCurrent(state: string): void {
    if (this.#index < 0 || state === this.current) return;
    this.#states[this.#index] = state;
    this.#persist();
  }

  /** Moves back one state and returns it (undefined when there is nothing to undo). */
  undo(): string | undefined {
    if (!this.canUndo) return undefined;
    this.#index--;
    this.#persist();
    return this.current;
  }

  redo(): string | undefined {
    if (!this.canRedo) return undefined;
    this.#index++;
    this.#persist();
    return this.current;
  }

  /**
   * Writes the history. When the storage is full the oldest states go first (the newest ones are the likely
   * undo targets); a single state too big to store leaves the history in memory only.
   */
  #persist(): void {
    for (;;) {
      const stored: Stored = { states: this.#states, index: this.#index, touched: Date.now() };
      try {
        this.storage.setItem(PREFIX + this.workflowId, JSON.stringify(stored));
        return;
      } catch {
        if (this.#index <= 0) return;
        this.#states = this.#states.slice(1);
        this.#index--;
      }
    }
  }
}

function readStored(storage: Storage, key: string): Stored | undefined {
  try {
    const parsed = JSON.parse(storage.getItem(key) ?? 'null') as Stored | null;
    const valid =
      parsed &&
      Array.isArray(parsed.states) &&
      parsed.states.every((s) => typeof s === 'string') &&
      Number.isInteger(parsed.index) &&
      parsed.index >= 0 &&
      parsed.index < parsed.states.length;
    return valid ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Keeps the histories of the few most recently edited other workflows; the rest would only fill the quota. */
function pruneOtherHistories(storage: Storage, keep: string): void {
  const others: { key: string; touched: number }[] = [];
  for (let i = 0; i < storage.length; i++) {
    const key = storage.key(i);
    if (!key?.startsWith(PREFIX) || key === PREFIX + keep) continue;
    others.push({ key, touched: readStored(storage, key)?.touched ?? 0 });
  }
  others.sort((a, b) => b.touched - a.touched);
  for (const { key } of others.slice(KEPT_WORKFLOWS)) storage.removeItem(key);
}
