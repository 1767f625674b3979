import { defineNode, string } from '@gategraph/core';

export const StringConcat = defineNode({
  id: 'StringConcat',
  displayName: 'Concatenate Strings',
  category: 'examples/text',
  description: 'Joins two strings with a separator.',
  inputs: {
    // STRING widgets; in the editor each can be turned into a socket and fed by a link.
    a: string({ multiline: true, default: '' }),
    b: string({ multiline: true, default: '' }),
    separator: string({ default: ' ', tooltip: 'Put between a and b; left out when either is empty.' }),
  },
  outputs: [{ type: 'STRING', name: 'text' }],
  execute({ a, b, separator }) {
    return [a && b ? a + separator + b : a + b];
  },
});
