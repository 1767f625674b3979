import { boolean, defineNode, NodeInputError, string } from '@gategraph/core';

/** Compiles the pattern, or returns a message saying what is wrong with it. */
function compile(pattern: string, ignoreCase: boolean): RegExp | string {
  try {
    return new RegExp(pattern, ignoreCase ? 'gi' : 'g');
  } catch (error) {
    return `"${pattern}" is not a valid regular expression: ${(error as Error).message}`;
  }
}

export const RegexReplace = defineNode({
  id: 'RegexReplace',
  displayName: 'Regex Replace',
  category: 'examples/text',
  description: 'Replaces every match of a JavaScript regular expression; $1, $2... in the replacement insert groups.',
  inputs: {
    text: string({ forceInput: true }),
    pattern: string({ default: '\\s+' }),
    replacement: string({ default: ' ' }),
    ignore_case: boolean({ default: false }),
  },
  outputs: [{ type: 'STRING' }],
  // Runs before anything executes, on the widget values; linked inputs are absent here.
  validate({ pattern, ignore_case }) {
    if (pattern === undefined) return true;
    const compiled = compile(pattern, ignore_case ?? false);
    return typeof compiled === 'string' ? compiled : true;
  },
  execute({ text, pattern, replacement, ignore_case }) {
    // A pattern arriving over a link was not validated; report a bad one as the user's error, not a crash.
    const compiled = compile(pattern, ignore_case);
    if (typeof compiled === 'string') throw new NodeInputError(compiled, 'pattern');
    return [text.replace(compiled, replacement)];
  },
});
