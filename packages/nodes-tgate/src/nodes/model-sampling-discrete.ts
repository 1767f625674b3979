/**
 * ComfyUI's ModelSamplingDiscrete (comfy_extras/nodes_model_advanced.py): read the model's output as another
 * prediction type, on the zero-terminal-SNR schedule or not. The MODEL gets a patch that every sampler node reads
 * when it builds its schedule (model-sampling.ts); the UNet is unchanged.
 */
import { boolean, combo, defineNode, NodeInputError, socket } from '@gategraph/core';
import { isModelSamplingPatch, modelSamplingPatch, modelSamplingProblem, SAMPLING_MODES } from '../model-sampling.ts';
import { ModelRef } from '../types.ts';

export const ModelSamplingDiscrete = defineNode({
  id: 'ModelSamplingDiscrete',
  displayName: 'ModelSamplingDiscrete',
  category: 'advanced/model',
  description:
    'Samples the model as another kind of model: what its output predicts (the noise, v, the clean image) and on which noise levels. ' +
    'For checkpoints whose file does not say it (a v-prediction or zero-SNR SD-1.x / SD-2.x fine-tune, an LCM model loaded as a plain checkpoint). ' +
    'Every sampler node uses it (KSampler, KSamplerAdvanced, SamplerCustom, BasicScheduler); TGATE / DeepCache patches still apply.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to sample differently. Its patches (TGATE, DeepCache) are kept.' }),
    sampling: combo(SAMPLING_MODES, {
      tooltip:
        'What the UNet predicts. eps: the noise (SD-1.x, SD-2 base). v_prediction: v (SD-2 768-v and v fine-tunes). ' +
        'lcm: a latent consistency model (LCM-distilled weights or an LCM LoRA): 50 noise levels and LCM\'s boundary condition; use the lcm sampler, ' +
        'sgm_uniform or normal, 4-8 steps, cfg 1-2. x0: the clean latent itself. img_to_img: the clean latent, from an input that is not rescaled by the noise level. ' +
        'The engine\'s own euler, euler_ancestral, dpmpp_2m, lcm and ddim run lcm, x0 and img_to_img as ComfyUI\'s k-diffusion samplers.',
    }),
    zsnr: boolean({
      default: false,
      tooltip:
        'Zero terminal SNR: rescale the noise schedule so its last level is pure noise (Lin et al. 2023), for models trained that way (with v_prediction). ' +
        'Replaces what the checkpoint\'s config says. Not with eps or lcm: an epsilon prediction cannot recover an image from pure noise.',
    }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model, sampled with this prediction type and schedule.' }],
  execute({ model, sampling, zsnr }, ctx) {
    const problem = modelSamplingProblem({ sampling, zsnr });
    if (problem) throw new NodeInputError(`zsnr: ${problem}`, 'zsnr');
    // One override at a time, as ComfyUI's object patch replaces the previous one.
    const others = model.patches.filter((p) => !isModelSamplingPatch(p));
    return [new ModelRef(model.model, [...others, modelSamplingPatch({ sampling, zsnr }, ctx.nodeId)])];
  },
});
