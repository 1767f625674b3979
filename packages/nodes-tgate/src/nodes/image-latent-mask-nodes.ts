/**
 * ComfyUI's core latent, image and mask nodes (resize, crop, pad, composite, batch, convert), with ComfyUI's
 * ids, inputs and behaviour, so workflows that use them run here unchanged.
 */
import { ImageBatch, RebatchImages } from './image-batch.ts';
import { EmptyImage, ImageCrop, ImageInvert, ImagePadForOutpaint } from './image-edit.ts';
import { ImageScale, ImageScaleBy, ImageScaleToTotalPixels } from './image-scale.ts';
import { LatentFromBatch, RebatchLatents, RepeatLatentBatch } from './latent-batch.ts';
import { LatentComposite, LatentCompositeMasked, LatentUpscale, LatentUpscaleBy } from './latent-transform.ts';
import { LoadImageMask } from './load-image-mask.ts';
import { ImageToMask, InvertMask, MaskToImage, SolidMask } from './mask-nodes.ts';

export const imageLatentMaskNodes = [
  LatentUpscale,
  LatentUpscaleBy,
  LatentComposite,
  LatentCompositeMasked,
  LatentFromBatch,
  RepeatLatentBatch,
  RebatchLatents,
  ImageScale,
  ImageScaleBy,
  ImageScaleToTotalPixels,
  ImageInvert,
  ImageBatch,
  ImageCrop,
  EmptyImage,
  ImagePadForOutpaint,
  RebatchImages,
  LoadImageMask,
  ImageToMask,
  MaskToImage,
  SolidMask,
  InvertMask,
] as const;
