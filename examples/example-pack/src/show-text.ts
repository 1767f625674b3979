import { defineNode, socket } from '@gategraph/core';

/** How a value of any type is shown: strings as they are, everything else as JSON. */
function show(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value); // cycles, BigInt
  }
}

export const ShowText = defineNode({
  id: 'ShowText',
  displayName: 'Show Text',
  category: 'examples/utils',
  description: 'Shows its input on the node in the editor, and passes it on as text.',
  inputs: {
    // '*' accepts a link of any type.
    value: socket('*'),
  },
  // Receive a whole list at once (e.g. all seeds of a RandomSeedList) instead of running once per element.
  inputIsList: true,
  outputs: [{ type: 'STRING', name: 'text', isList: true }],
  // An output node: running a prompt means running its output nodes and what they need.
  outputNode: true,
  execute({ value }) {
    const text = value.map(show);
    // `ui` goes to the editor in the `executed` message and to the history; the editor extension shows it.
    return { ui: { text }, outputs: [text] };
  },
});
