import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineNode, int, float, combo, socket, string, boolean } from '../src/index.ts';

declare global {
  namespace GateGraph {
    interface SocketTypes {
      TEST_LATENT: { samples: Float32Array };
    }
  }
}

test('defineNode infers input value types from the specs (checked by tsc)', async () => {
  const node = defineNode({
    id: 'TypedNode',
    inputs: {
      latent: socket('TEST_LATENT'),
      seed: int({ default: 1, min: 0, controlAfterGenerate: true }),
      cfg: float({ default: 7, step: 0.5, round: 0.01 }),
      sampler: combo(['euler', 'ddim'], { default: 'euler' }),
      text: string({ multiline: true, optional: true }),
      flag: boolean({ lazy: true }),
    },
    hidden: { prompt: 'PROMPT' },
    outputs: [{ type: 'TEST_LATENT', name: 'out' }, { type: 'INT' }],
    async execute(inputs) {
      // Each line fails to compile if the inferred type is wrong.
      const samples: Float32Array = inputs.latent.samples;
      const seed: number = inputs.seed;
      const sampler: 'euler' | 'ddim' = inputs.sampler;
      const text: string | undefined = inputs.text;
      const flag: boolean = await inputs.flag();
      const nodes: number = Object.keys(inputs.prompt).length;
      // @ts-expect-error a combo value outside its options is a type error
      const wrong: 'dpm' = inputs.sampler;
      void wrong;
      return [{ samples }, seed + (flag ? 1 : 0) + nodes + sampler.length + (text?.length ?? 0)] as [
        { samples: Float32Array },
        number,
      ];
    },
  });
  assert.equal(node.id, 'TypedNode');
  const result = await node.execute(
    ({
      latent: { samples: new Float32Array(2) },
      seed: 1,
      cfg: 7,
      sampler: 'euler',
      text: undefined,
      flag: async () => true,
      prompt: { a: { class_type: 'X', inputs: {} } },
    }) as never,
    {} as never,
  );
  assert.deepEqual((result as unknown[])[1], 1 + 1 + 1 + 5);
});
