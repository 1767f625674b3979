import { boolean, defineNode, string } from '@gategraph/core';

export const SwitchString = defineNode({
  id: 'SwitchString',
  displayName: 'Switch String',
  category: 'examples/logic',
  description: 'Passes on one of two strings. Only the chosen branch runs: the other upstream nodes are skipped.',
  inputs: {
    use_first: boolean({ default: true, labelOn: 'first', labelOff: 'second' }),
    // Lazy: execute gets a function, and the nodes feeding this input run only if it is called.
    first: string({ forceInput: true, lazy: true }),
    second: string({ forceInput: true, lazy: true }),
  },
  outputs: [{ type: 'STRING' }],
  async execute({ use_first, first, second }) {
    return [use_first ? await first() : await second()];
  },
});
