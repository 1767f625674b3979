/**
 * Small nodes to build loops and switches with: integer arithmetic, a comparison, an output gate
 * (ExecutionBlocker), a variadic average (undeclared inputs), a wait (a concurrent node), and a number check
 * that validates its own input (VALIDATE_INPUTS).
 */
import { boolean, combo, defineNode, ExecutionBlocker, int, socket, string } from '@gategraph/core';

export const IntMath = defineNode({
  id: 'IntMath',
  displayName: 'Int Math',
  category: 'examples/flow',
  inputs: {
    a: int({ default: 0, min: -1e15, max: 1e15 }),
    b: int({ default: 1, min: -1e15, max: 1e15 }),
    operation: combo(['add', 'subtract', 'multiply'] as const, { default: 'add' }),
  },
  outputs: [{ type: 'INT' }],
  execute: ({ a, b, operation }) => [operation === 'add' ? a + b : operation === 'subtract' ? a - b : a * b],
});

export const IntCompare = defineNode({
  id: 'IntCompare',
  displayName: 'Int Compare',
  category: 'examples/flow',
  inputs: {
    a: int({ default: 0, min: -1e15, max: 1e15 }),
    b: int({ default: 0, min: -1e15, max: 1e15 }),
    comparison: combo(['a < b', 'a <= b', 'a == b'] as const, { default: 'a < b' }),
  },
  outputs: [{ type: 'BOOLEAN' }],
  execute: ({ a, b, comparison }) => [comparison === 'a < b' ? a < b : comparison === 'a <= b' ? a <= b : a === b],
});

export const OutputGate = defineNode({
  id: 'OutputGate',
  displayName: 'Output Gate',
  category: 'examples/flow',
  description:
    'Passes its value on when enabled; otherwise the nodes after it do not run (an ExecutionBlocker). With a message, ' +
    'the first node it stops reports it as an error, and the rest of the prompt still runs.',
  inputs: {
    value: socket('*'),
    enabled: boolean({ default: true }),
    message: string({ default: '', tooltip: 'Empty: skip the nodes after it silently.' }),
  },
  outputs: [{ type: '*', name: 'value' }],
  execute: ({ value, enabled, message }) => [enabled ? value : new ExecutionBlocker(message || null)],
});

export const AverageNumbers = defineNode({
  id: 'AverageNumbers',
  displayName: 'Average Numbers',
  category: 'examples/flow',
  description: 'The mean of every number connected to it: add inputs by connecting more (any name), as ComfyUI\'s **kwargs nodes.',
  inputs: { first: socket('*', { tooltip: 'A number; connect any further inputs under any name.' }) },
  acceptsUndeclaredInputs: true,
  outputs: [{ type: 'FLOAT', name: 'mean' }],
  execute(inputs) {
    const numbers = Object.values(inputs as Record<string, unknown>).filter((v): v is number => typeof v === 'number');
    return [numbers.reduce((sum, n) => sum + n, 0) / Math.max(1, numbers.length)];
  },
});

export const WaitSeconds = defineNode({
  id: 'WaitSeconds',
  displayName: 'Wait',
  category: 'examples/flow',
  description: 'Waits, then passes its value on. It only waits (as a node calling a remote service would), so it runs alongside other nodes.',
  concurrent: true,
  inputs: { value: socket('*'), seconds: int({ default: 1, min: 0, max: 3600 }) },
  outputs: [{ type: '*', name: 'value' }],
  async execute({ value, seconds }, ctx) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, seconds * 1000);
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), reject(ctx.signal.reason)), { once: true });
    });
    return [value];
  },
});

export const HalfOf = defineNode({
  id: 'HalfOf',
  displayName: 'Half Of',
  category: 'examples/flow',
  description: 'Half of a number. Takes an INT or a FLOAT link, or a constant written as an integer (it checks that itself).',
  inputs: { value: socket('*') },
  // VALIDATE_INPUTS taking `value` over: no built-in check; the hook sees the link's type or the literal's kind.
  validatesInputs: ['value'],
  validate(inputs, ctx) {
    const type = ctx.inputTypes.value;
    if (type !== undefined) return type === 'INT' || type === 'FLOAT' || `value must come from an INT or FLOAT output, not ${type}`;
    if (typeof inputs.value !== 'number') return `value must be a number, got ${JSON.stringify(inputs.value)}`;
    return ctx.numberKinds.value === 'int' || 'a constant value must be written as an integer (1, not 1.0)';
  },
  outputs: [{ type: 'FLOAT' }],
  execute: ({ value }) => [(value as number) / 2],
});
