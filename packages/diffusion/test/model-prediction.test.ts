/**
 * The prediction types of ModelSamplingDiscrete and LCM's distilled noise levels. The constants below were printed
 * by ComfyUI's own classes (comfy/model_sampling.py ModelSamplingDiscrete + EPS, comfy_extras/
 * nodes_model_advanced.py ModelSamplingDiscreteDistilled + LCM, at pollockjj/ComfyUI 618b803), with SD-1.x's
 * schedule (ComfyUI's "linear" 0.00085..0.012 = diffusers' scaled_linear), in float32; the formulas are also
 * transcribed here, never through the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  denoisedAt,
  distilledNoiseLevels,
  MODEL_PREDICTIONS,
  noiseLevels,
  predictionAt,
  resolveSchedulerConfig,
  scheduleSigmas,
  sigmaToTimestep,
  timestepToSigma,
  type Tensor,
} from '../src/index.ts';

const sd = noiseLevels(resolveSchedulerConfig({}));
const lcm = distilledNoiseLevels(sd);
const t = (values: number[]): Tensor => ({ data: Float32Array.from(values), shape: [1, 2, 2, 2] });

function close(actual: readonly number[], expected: readonly number[], rel: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= rel * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${a} vs ${expected[i]}`));
}

test('LCM\'s distilled levels: every 20th of the 1000 levels from the top, as ModelSamplingDiscreteDistilled keeps them', () => {
  assert.equal(lcm.numTrainTimesteps, 50);
  assert.equal(lcm.timestepStride, 20);
  // Transcription of its __init__: sigmas_valid[49 - x] = sigmas[999 - x * 20].
  for (let x = 0; x < 50; x++) assert.equal(lcm.sigmas[49 - x], sd.sigmas[999 - x * 20]);
  close([0, 1, 2, 24, 48, 49].map((i) => lcm.sigmas[i]!), [0.13445067405700684, 0.19630272686481476, 0.24822044372558594, 1.6128861904144287, 12.966320991516113, 14.614641189575195], 1e-6, 'sigmas');
  assert.equal(lcm.sigmaMin, lcm.sigmas[0]);
  assert.equal(lcm.sigmaMax, lcm.sigmas[49]);
});

test('LCM\'s timestep(sigma) and sigma(timestep), and the normal schedule on its levels', () => {
  const sigmas = [Math.fround(lcm.sigmas[10]! * 1.01), 0.5, 3.0, 14.0];
  assert.deepEqual(sigmas.map((s) => sigmaToTimestep(lcm, s)), [219, 179, 679, 999]);
  close([999, 19, 500, 123.4].map((ts) => timestepToSigma(lcm, ts)), [14.614640235900879, 0.13445065915584564, 1.618304967880249, 0.39599624276161194], 1e-6, 'sigma(t)');
  close(scheduleSigmas('normal', lcm, 4), [14.614640235900879, 2.991056203842163, 0.9728259444236755, 0.13445065915584564, 0], 1e-6, 'normal, 4 steps');
  // The undistilled levels keep their meaning: the timestep is the level's index.
  assert.equal(sigmaToTimestep(sd, sd.sigmas[321]!), 321);
  assert.equal(timestepToSigma(sd, 321), sd.sigmas[321]);
});

test('LCM\'s boundary condition: ComfyUI\'s LCM.calculate_denoised, printed and transcribed', () => {
  const x = t([1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991, -1.0845223665237427, -1.3985954523086548, 0.40334683656692505, 0.8380263447761536]);
  const out = t([-0.7192575931549072, -0.40334352850914, -0.5966353416442871, 0.18203648924827576, -0.8566746115684509, 1.1006041765213013, -1.0711873769760132, 0.1227012425661087]);
  const sigma = lcm.sigmas[30]!;
  const timestep = sigmaToTimestep(lcm, sigma);
  assert.equal(timestep, 619);
  const denoised = denoisedAt(out, x, sigma, 'lcm', timestep);
  close(Array.from(denoised.data), [3.301234722137451, 0.6936734914779663, -0.7186440229415894, 0.12293344736099243, 1.0120168924331665, -4.092103481292725, 3.0248630046844482, 0.537739634513855], 1e-5, 'denoised');
  // Transcribed: x0 = x - out * sigma; scaled = 10 t; c_skip = 0.25 / (scaled^2 + 0.25); c_out = scaled / sqrt(scaled^2 + 0.25).
  const scaled = timestep * 10;
  const cSkip = 0.25 / (scaled * scaled + 0.25);
  const cOut = scaled / Math.sqrt(scaled * scaled + 0.25);
  const expected = Array.from(x.data, (xi, k) => cOut * (xi - out.data[k]! * sigma) + cSkip * xi);
  close(Array.from(denoised.data), expected, 1e-6, 'transcription');
});

test('x0 and img_to_img read the output as the clean latent; every type\'s prediction comes back from its estimate', () => {
  const x = t([0.3, -1.2, 2.5, 0.1, -0.7, 0.9, 1.4, -2.2]);
  const out = t([0.5, 0.25, -0.75, 1.5, -1, 0.125, 2, -0.5]);
  for (const type of ['x0', 'img_to_img'] as const) assert.deepEqual(denoisedAt(out, x, 3, type).data, out.data);
  for (const type of MODEL_PREDICTIONS) {
    const back = predictionAt(denoisedAt(out, x, 2.5, type, 619), x, 2.5, type, 619);
    close(Array.from(back.data), Array.from(out.data), 1e-5, type);
  }
});
