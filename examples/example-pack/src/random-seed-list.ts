import { combo, defineNode, int } from '@gategraph/core';

const MAX_SEED = 2 ** 32 - 1;

/** A small seeded generator (mulberry32): the same seed always gives the same list. */
function seededUint32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export const RandomSeedList = defineNode({
  id: 'RandomSeedList',
  displayName: 'Random Seed List',
  category: 'examples/utils',
  description: 'A list of seeds. Nodes fed by a list run once per element, so one prompt renders every seed.',
  inputs: {
    seed: int({ default: 0, min: 0, max: MAX_SEED, controlAfterGenerate: true }),
    count: int({ default: 4, min: 1, max: 64 }),
    mode: combo(['from seed', 'fresh each run'], { default: 'from seed' }),
  },
  // isList: execute returns an array for this output, and downstream nodes run once per element.
  outputs: [{ type: 'INT', name: 'seeds', isList: true }],
  // In 'fresh each run' mode the output does not follow from the inputs: NaN tells the cache never to reuse it.
  fingerprint({ mode }) {
    return mode === 'fresh each run' ? NaN : 'deterministic';
  },
  execute({ seed, count, mode }) {
    const next = mode === 'from seed' ? seededUint32(seed) : () => crypto.getRandomValues(new Uint32Array(1))[0]!;
    return [Array.from({ length: count }, next)];
  },
});
