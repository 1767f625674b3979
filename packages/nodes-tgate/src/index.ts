/**
 * @gategraph/nodes-tgate: ComfyUI's base diffusion nodes over @gategraph/diffusion, and the TGATE /
 * DeepCache nodes, which add patches to a MODEL (see patches.ts). Hosts load it as a workspace pack
 * (`"gategraph": { "pack": true }` in package.json).
 */
import { definePack } from '@gategraph/core';
import { CheckpointLoader, CheckpointLoaderSimple } from './nodes/checkpoint-loader.ts';
import { LoraLoader, LoraLoaderModelOnly } from './nodes/lora-loader.ts';
import { VAELoader } from './nodes/vae-loader.ts';
import { CLIPLoader } from './nodes/clip-loader.ts';
import { DualCLIPLoader } from './nodes/dual-clip-loader.ts';
import { CLIPTextEncode } from './nodes/clip-text-encode.ts';
import { CLIPTextEncodeSDXL, CLIPTextEncodeSDXLRefiner } from './nodes/clip-text-encode-sdxl.ts';
import { CLIPSetLastLayer } from './nodes/clip-set-last-layer.ts';
import { EmptyLatentImage } from './nodes/empty-latent-image.ts';
import { KSampler } from './nodes/ksampler.ts';
import { KSamplerAdvanced } from './nodes/ksampler-advanced.ts';
import { VAEDecode, VAEEncode } from './nodes/vae.ts';
import { LoadImage } from './nodes/load-image.ts';
import { InpaintModelConditioning, SetLatentNoiseMask, VAEEncodeForInpaint } from './nodes/inpaint.ts';
import { PreviewImage, SaveImage } from './nodes/save-image.ts';
import { CacheCrossAttn, CacheSelfAttn, DeepCache, GateSchedule, TGatePreset } from './nodes/tgate-nodes.ts';
import { GateAdvisor } from './nodes/gate-advisor.ts';
import { imageLatentMaskNodes } from './nodes/image-latent-mask-nodes.ts';
import { conditioningNodes } from './nodes/conditioning-nodes.ts';
import { customSamplingNodes } from './nodes/custom-sampling.ts';
import { outputAndTiledNodes } from './nodes/output-and-tiled-nodes.ts';
import { modelNodes } from './nodes/model-nodes.ts';
import { registerTgateExtension } from './tgate/register.ts';
import { registerModelSamplingExtension } from './model-sampling.ts';

export * from './types.ts';
export * from './patches.ts';
export { runSampler, initialNoise, previewPacer, PREVIEW_INTERVAL_MS, type SamplerSettings } from './nodes/ksampler.ts';
import { releaseAllModels } from './model-cache.ts';
import { reportSessionMemory } from './session-memory.ts';
export { releaseAllModels };
export * from './tgate/schedule.ts';
export { planForPatches, samplingFor, registerTgateExtension, type PlannedSampling } from './tgate/register.ts';
export { recommendGate, relativeChange, AttentionChangeProbe } from './nodes/gate-advisor.ts';
export { drawLineChart, type LineChart } from './tgate/plot.ts';

export const baseNodes = [
  CheckpointLoaderSimple,
  CheckpointLoader,
  VAELoader,
  CLIPLoader,
  DualCLIPLoader,
  LoraLoader,
  LoraLoaderModelOnly,
  CLIPTextEncode,
  CLIPTextEncodeSDXL,
  CLIPTextEncodeSDXLRefiner,
  CLIPSetLastLayer,
  EmptyLatentImage,
  KSampler,
  KSamplerAdvanced,
  VAEDecode,
  VAEEncode,
  VAEEncodeForInpaint,
  SetLatentNoiseMask,
  InpaintModelConditioning,
  LoadImage,
  SaveImage,
  PreviewImage,
  ...conditioningNodes,
  ...imageLatentMaskNodes,
  ...customSamplingNodes,
] as const;

/** TGATE and DeepCache (category sampling/tgate): patches on MODEL, run by their sampling extension (tgate/register.ts). */
export const tgateNodes = [GateSchedule, CacheCrossAttn, CacheSelfAttn, DeepCache, TGatePreset, GateAdvisor] as const;

registerTgateExtension();
registerModelSamplingExtension();
reportSessionMemory();

export default definePack({
  name: 'nodes-tgate',
  nodes: [...baseNodes, ...tgateNodes, ...outputAndTiledNodes, ...modelNodes],
  // POST /free {unload_models: true}: close the ONNX sessions of every model the loader opened.
  onFree: releaseAllModels,
});
