import { defineNode, float, socket } from '@gategraph/core';
import { samplingExtensions, type SamplingExtension, type Tensor } from '@gategraph/diffusion';

/** The kind of this pack's patch: what the sampler looks its extension up by. */
export const RESCALE_CFG = 'example-pack/rescale-cfg';

/** Per batch item: the standard deviation over its other dimensions, unbiased (torch.std's default). */
function stdPerItem(t: Tensor): number[] {
  const items = t.shape[0]!;
  const n = t.data.length / items;
  return Array.from({ length: items }, (_, b) => {
    const item = t.data.subarray(b * n, (b + 1) * n);
    const mean = item.reduce((s, v) => s + v, 0) / n;
    return Math.sqrt(item.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  });
}

/**
 * The extension for this pack's patch kind: a wrapper at the `cfg` point (ComfyUI's `sampler_cfg_function`),
 * which the sampler calls for every [uncond, cond] step with the two halves. It mixes them as plain CFG
 * (`next`) and then rescales the mix to the standard deviation of the cond half, blended by the multiplier
 * (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", section 3.4).
 */
const rescaleCfg: SamplingExtension = {
  owner: 'example-pack',
  kinds: [RESCALE_CFG],
  wrap(patches) {
    // Two RescaleCFG nodes on one MODEL: the one applied last wins, as ComfyUI's last set_model_sampler_cfg_function.
    const multiplier = patches[patches.length - 1]!.settings.multiplier as number;
    return {
      async cfg(next, call) {
        const mixed = await next(call);
        const condStd = stdPerItem(call.cond);
        const mixedStd = stdPerItem(mixed);
        const per = mixed.data.length / condStd.length;
        const out = new Float32Array(mixed.data.length);
        for (let i = 0; i < out.length; i++) {
          const b = Math.floor(i / per);
          const rescaled = mixed.data[i]! * (condStd[b]! / mixedStd[b]!);
          out[i] = multiplier * rescaled + (1 - multiplier) * mixed.data[i]!;
        }
        return { data: out, shape: [...mixed.shape] };
      },
    };
  },
};
// Registered when the pack is imported, with the host's service: the sampler finds it by the patch's kind.
samplingExtensions().register(rescaleCfg);

/**
 * A port of ComfyUI's RescaleCFG: a model patch that rescales the CFG mix of every guided step. The node only
 * adds a patch (data) to the MODEL; the wrapper above does the work when a sampler runs the patched MODEL, and
 * chains with the MODEL's other patches (TGATE, DeepCache, other packs' wrappers).
 * Where it differs: ComfyUI converts both halves to v-prediction before rescaling; this port rescales the
 * model's own prediction (diffusers' `guidance_rescale`), which is that for v-prediction models.
 */
export const RescaleCFG = defineNode({
  id: 'RescaleCFG',
  displayName: 'Rescale CFG',
  category: 'examples/model',
  description: 'Rescales the CFG mix of every guided step towards the prompt\'s own spread (ComfyUI\'s RescaleCFG).',
  inputs: {
    // MODEL values carry patches: `withPatch` returns a new MODEL (@gategraph/diffusion's PatchableModel).
    model: socket('MODEL'),
    multiplier: float({ default: 0.7, min: 0, max: 1, step: 0.01, tooltip: '0 = plain CFG, 1 = fully rescaled.' }),
  },
  outputs: [{ type: 'MODEL' }],
  execute({ model, multiplier }, ctx) {
    const patch = { kind: RESCALE_CFG, settings: { multiplier }, nodeId: ctx.nodeId, describe: () => `RescaleCFG: multiplier ${multiplier}` };
    return [model.withPatch(patch)];
  },
});
