/**
 * Reports the memory of the sessions this pack opens (the diffusion package's default session pool) to the
 * host's memory ledger, once per process, so the output cache makes room when a model opens and hosts can
 * show what the models hold.
 */
import { hostMemoryLedger } from '@gategraph/core';
import { getDefaultSessionPool } from '@gategraph/diffusion';

let reported = false;

export function reportSessionMemory(): void {
  if (reported) return;
  reported = true;
  const pool = getDefaultSessionPool();
  const ledger = hostMemoryLedger();
  ledger.hold({ name: 'onnxruntime sessions', heldBytes: () => pool.openBytes });
  pool.onOpenChange(() => ledger.changed());
}
