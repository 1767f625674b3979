import { combo, defineNode, float, int, socket } from '@gategraph/core';
import { K_SAMPLER_NAMES, SCHEDULER_NAMES } from '@gategraph/diffusion';
import { runSampler, SAMPLER_NAME_TOOLTIP } from './ksampler.ts';
import { checkSamplerInputs } from '../queue-checks.ts';

/** ComfyUI's limit for the step window widgets. */
const MAX_STEP = 10000;

/**
 * ComfyUI's KSamplerAdvanced: KSampler over a window of the schedule, for multi-stage sampling (a first sampler
 * runs steps 0..k and returns the latent with its noise left in, a second continues from step k with
 * add_noise off, possibly with another model, prompt or TGATE/DeepCache patch). Same inputs and values as
 * ComfyUI's node, so workflows move between the two.
 */
export const KSamplerAdvanced = defineNode({
  id: 'KSamplerAdvanced',
  displayName: 'KSampler (Advanced)',
  category: 'sampling',
  description:
    'KSampler over a window of the schedule: runs steps start_at_step..end_at_step of a `steps`-step schedule, with or without adding noise first and optionally leaving the remaining noise in the result (for chaining samplers). Applies the patches its MODEL carries; a TGATE gate step counts the steps this node runs.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to denoise with (with any patches added by TGATE / DeepCache nodes).' }),
    add_noise: combo(['enable', 'disable'] as const, {
      tooltip: 'enable: start from the latent plus seeded noise at the window\'s first level (as KSampler does). disable: start from the latent as it is, e.g. the leftover-noise output of a previous KSamplerAdvanced.',
    }),
    noise_seed: int({
      default: 0,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      controlAfterGenerate: true,
      tooltip: 'Seed of the added noise (and of the fresh noise stochastic samplers draw at each step).',
    }),
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'Length of the whole schedule the window is cut from.' }),
    cfg: float({ default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip: 'Classifier-free guidance: how strongly the image follows the prompt. 1 turns guidance off (one UNet pass per step).' }),
    sampler_name: combo(K_SAMPLER_NAMES, { tooltip: SAMPLER_NAME_TOOLTIP }),
    scheduler: combo(SCHEDULER_NAMES, { tooltip: 'How the noise levels are spaced over the whole schedule.' }),
    positive: socket('CONDITIONING', { tooltip: 'What the image should show.' }),
    negative: socket('CONDITIONING', { tooltip: 'What the image should avoid.' }),
    latent_image: socket('LATENT', { tooltip: 'The latent to continue from: an EmptyLatentImage, a VAEEncode, or a previous stage\'s output.' }),
    start_at_step: int({ default: 0, min: 0, max: MAX_STEP, tooltip: 'First step of the window (0 = the top of the schedule). At or past the last step, the latent passes through unchanged.' }),
    end_at_step: int({ default: MAX_STEP, min: 0, max: MAX_STEP, tooltip: 'The window stops before this step; values past `steps` run to the end.' }),
    return_with_leftover_noise: combo(['disable', 'enable'] as const, {
      tooltip: 'When the window ends before the schedule does: disable finishes denoising at that point (the last level becomes 0); enable returns the latent with its remaining noise, for a next stage with add_noise disabled.',
    }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The latent after the window (with leftover noise if asked for).' }],
  // Sizes the model cannot take are refused when the prompt is queued (see queue-checks.ts).
  validate(inputs, context) {
    return checkSamplerInputs(inputs.cfg, context);
  },
  async execute(inputs, ctx) {
    const latent = await runSampler(
      {
        model: inputs.model,
        seed: inputs.noise_seed,
        steps: inputs.steps,
        cfg: inputs.cfg,
        sampler_name: inputs.sampler_name,
        scheduler: inputs.scheduler,
        positive: inputs.positive,
        negative: inputs.negative,
        latent_image: inputs.latent_image,
        denoise: 1,
        addNoise: inputs.add_noise === 'enable',
        window: {
          startStep: inputs.start_at_step,
          endStep: inputs.end_at_step,
          forceFullDenoise: inputs.return_with_leftover_noise !== 'enable',
        },
      },
      ctx,
    );
    return [latent];
  },
});
