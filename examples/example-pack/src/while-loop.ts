/**
 * A while loop made of two nodes, as ComfyUI's flow-control packs make it: everything between WhileLoopOpen
 * and WhileLoopClose is the body. While `condition` is true, WhileLoopClose expands into a fresh copy of the
 * body (read from the live prompt) fed with this round's values, plus a copy of itself: the loop is recursion
 * by expansion, and each round's nodes are cached like any others. It shows three parts of the node API:
 *
 * - expansion: `execute` returns `{ outputs, expand }`, built with `ctx.graph()`;
 * - `rawLink`: `flow` receives the link to the opening node (`[id, slot]`), which is how the closing node
 *   finds where the body starts;
 * - the `DYNPROMPT` hidden input: the live prompt (expansions included), to copy the body from.
 */
import { boolean, defineNode, socket, type PromptLink, type PromptView } from '@gategraph/core';

/** How many values a loop carries from one round to the next. */
export const LOOP_VALUES = 4;

const valueInputs = () =>
  Object.fromEntries(
    Array.from({ length: LOOP_VALUES }, (_, i) => [`value${i}`, socket('*', { optional: true, acceptsConstant: true, tooltip: `Loop value ${i}: its value in this round.` })]),
  ) as Record<`value${0 | 1 | 2 | 3}`, ReturnType<typeof socket>>;
const valueOutputs = Array.from({ length: LOOP_VALUES }, (_, i) => ({ type: '*', name: `value${i}` }));

export const WhileLoopOpen = defineNode({
  id: 'WhileLoopOpen',
  displayName: 'While Loop (open)',
  category: 'examples/flow',
  description: 'Starts a loop: its values are the initial values in the first round, the values of the round before after that.',
  inputs: valueInputs(),
  outputs: [{ type: 'FLOW_CONTROL', name: 'flow' }, ...valueOutputs],
  execute(inputs) {
    const values = inputs as Record<string, unknown>;
    return ['open', ...Array.from({ length: LOOP_VALUES }, (_, i) => values[`value${i}`])] as never;
  },
});

export const WhileLoopClose = defineNode({
  id: 'WhileLoopClose',
  displayName: 'While Loop (close)',
  category: 'examples/flow',
  description: 'Ends a loop: while condition is true, runs the body again with these values; then outputs them.',
  inputs: {
    flow: socket('FLOW_CONTROL', { rawLink: true, tooltip: 'The flow output of the WhileLoopOpen this loop starts at.' }),
    condition: boolean({ forceInput: true, tooltip: 'Run another round while this is true.' }),
    ...valueInputs(),
  },
  hidden: { prompt: 'DYNPROMPT', self: 'UNIQUE_ID' },
  outputs: valueOutputs,
  execute(inputs, ctx) {
    const values = inputs as unknown as Record<string, unknown>;
    const current = Array.from({ length: LOOP_VALUES }, (_, i) => values[`value${i}`]);
    if (!inputs.condition) return current as never;

    const open = (inputs.flow as unknown as PromptLink)[0];
    const body = nodesBetween(inputs.prompt, open, inputs.self);
    const graph = ctx.graph();
    // Same local ids as the originals (the close node's copy is "close"), shown on the original nodes.
    const copyId = (id: string) => (id === inputs.self ? 'close' : id);
    for (const id of body) graph.node(inputs.prompt.get(id)!.class_type, {}, copyId(id)).overrideDisplayId(inputs.prompt.displayId(id) ?? id);
    for (const id of body) {
      const copy = graph.lookup(copyId(id))!;
      for (const [name, value] of Object.entries(inputs.prompt.get(id)!.inputs)) {
        const linked = Array.isArray(value) && body.has(String(value[0]));
        copy.set(name, linked ? graph.lookup(copyId(String(value[0])))!.out(value[1] as number) : value);
      }
    }
    // The next round starts from this round's values.
    const nextOpen = graph.lookup(copyId(open))!;
    current.forEach((value, i) => nextOpen.set(`value${i}`, value));
    const nextClose = graph.lookup('close')!;
    return { outputs: current.map((_, i) => nextClose.out(i)), expand: graph.finalize() };
  },
});

/** The open node, the close node, and every node on a path from one to the other. */
function nodesBetween(prompt: PromptView, open: string, close: string): Set<string> {
  const upstreamOfClose = new Set<string>();
  const stack = [close];
  while (stack.length) {
    const id = stack.pop()!;
    if (upstreamOfClose.has(id)) continue;
    upstreamOfClose.add(id);
    if (id === open) continue;
    for (const value of Object.values(prompt.get(id)?.inputs ?? {})) if (Array.isArray(value) && typeof value[1] === 'number') stack.push(String(value[0]));
  }
  // Of those, the ones that depend on the open node (the body); the loop's inputs from outside stay links.
  const body = new Set<string>([open]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const id of upstreamOfClose) {
      if (body.has(id)) continue;
      const inputs = Object.values(prompt.get(id)?.inputs ?? {});
      if (inputs.some((v) => Array.isArray(v) && body.has(String(v[0])))) {
        body.add(id);
        grew = true;
      }
    }
  }
  return body;
}
