import { defineNode, socket, string } from '@gategraph/core';

/** The value on a TEXT_STATS link. */
export interface TextStatsValue {
  characters: number;
  words: number;
  lines: number;
}

// Teach the type checker what flows on TEXT_STATS links: socket('TEXT_STATS') inputs are then typed
// `TextStatsValue`, and execute must return one for a TEXT_STATS output.
declare global {
  namespace GateGraph {
    interface SocketTypes {
      TEXT_STATS: TextStatsValue;
    }
  }
}

export const TextStats = defineNode({
  id: 'TextStats',
  displayName: 'Text Stats',
  category: 'examples/text',
  description: 'Counts the characters, words and lines of a text.',
  inputs: {
    text: string({ forceInput: true }),
  },
  outputs: [
    { type: 'TEXT_STATS', name: 'stats' },
    { type: 'INT', name: 'words' },
  ],
  execute({ text }) {
    const words = text.split(/\s+/).filter(Boolean).length;
    const stats = { characters: [...text].length, words, lines: text === '' ? 0 : text.split('\n').length };
    return [stats, words];
  },
});

export const FormatTextStats = defineNode({
  id: 'FormatTextStats',
  displayName: 'Format Text Stats',
  category: 'examples/text',
  inputs: {
    stats: socket('TEXT_STATS'),
    template: string({ default: '{words} words, {characters} characters, {lines} lines' }),
  },
  outputs: [{ type: 'STRING' }],
  execute({ stats, template }) {
    // `stats` is a TextStatsValue here, thanks to the SocketTypes declaration above.
    return [template.replace(/\{(characters|words|lines)\}/g, (_, key: keyof TextStatsValue) => String(stats[key]))];
  },
});
