/**
 * The host's memory ledger: one owner of "what the loaded models hold", which the output cache asks. Model
 * holders (a session pool) register with the ledger of their process and say when what they hold changed;
 * the output cache in `ram` mode makes room as soon as a model opens, instead of at its next insert, and
 * `/system_stats` reports the holders.
 *
 * One ledger per process, kept on `globalThis` under a registered symbol: a pack that loads its own copy of a
 * package still reports to the host's ledger.
 */

export interface MemoryHolder {
  /** Shown in reports ("onnxruntime sessions"). */
  readonly name: string;
  /** Bytes held now (an estimate: the weights of the open models). */
  heldBytes(): number;
}

export class MemoryLedger {
  readonly #holders = new Set<MemoryHolder>();
  readonly #listeners = new Set<() => void>();

  /** Adds a holder; the returned function removes it. */
  hold(holder: MemoryHolder): () => void {
    this.#holders.add(holder);
    this.changed();
    return () => {
      if (this.#holders.delete(holder)) this.changed();
    };
  }

  /** Bytes held by every holder. */
  heldBytes(): number {
    let total = 0;
    for (const holder of this.#holders) total += holder.heldBytes();
    return total;
  }

  /** Each holder and what it holds, for reports. */
  report(): Array<{ name: string; bytes: number }> {
    return [...this.#holders].map((holder) => ({ name: holder.name, bytes: holder.heldBytes() }));
  }

  /** A holder's bytes changed (a model opened or closed): listeners run now. */
  changed(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Runs `listener` after every change; the returned function stops it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

const KEY = Symbol.for('@gategraph/core/memory-ledger');

/** This process's ledger. */
export function hostMemoryLedger(): MemoryLedger {
  const global = globalThis as { [KEY]?: MemoryLedger };
  global[KEY] ??= new MemoryLedger();
  return global[KEY];
}
