/**
 * The tensor work of inpainting, as ComfyUI does it: masks resized to the latent with torch's bilinear
 * interpolation, the kept region blended back (KSamplerX0Inpaint), and an inpainting UNet's extra input
 * channels (mask + masked-image latent, ComfyUI's c_concat) appended to the sample.
 */
import { sizeOf, type Tensor } from './tensor.ts';

/**
 * torch.nn.functional.interpolate(x, size=[h, w], mode='bilinear', align_corners=False) on [N, C, H, W]:
 * each output pixel samples the input at ((o + 0.5) * H / h - 0.5), clamped at 0, between its two neighbours.
 */
export function resizeBilinear(t: Tensor, height: number, width: number): Tensor {
  const [n, c, H, W] = t.shape as [number, number, number, number];
  if (t.shape.length !== 4) throw new RangeError(`resizeBilinear: expected [N, C, H, W], got [${t.shape.join(', ')}]`);
  if (H === height && W === width) return t;
  const out = new Float32Array(n * c * height * width);
  const source = (o: number, inSize: number, outSize: number) => {
    const x = Math.max(0, (o + 0.5) * (inSize / outSize) - 0.5);
    const lo = Math.min(Math.floor(x), inSize - 1);
    const hi = Math.min(lo + 1, inSize - 1);
    return { lo, hi, frac: x - lo };
  };
  const rows = Array.from({ length: height }, (_, y) => source(y, H, height));
  const cols = Array.from({ length: width }, (_, x) => source(x, W, width));
  for (let plane = 0; plane < n * c; plane++) {
    const src = plane * H * W;
    const dst = plane * height * width;
    for (let y = 0; y < height; y++) {
      const r = rows[y]!;
      for (let x = 0; x < width; x++) {
        const q = cols[x]!;
        const top = t.data[src + r.lo * W + q.lo]! * (1 - q.frac) + t.data[src + r.lo * W + q.hi]! * q.frac;
        const bottom = t.data[src + r.hi * W + q.lo]! * (1 - q.frac) + t.data[src + r.hi * W + q.hi]! * q.frac;
        out[dst + y * width + x] = top * (1 - r.frac) + bottom * r.frac;
      }
    }
  }
  return { data: out, shape: [n, c, height, width] };
}

/**
 * `inside * mask + outside * (1 - mask)` for a latent [B, C, h, w] and a mask [1 or B, 1 or C, h, w] (1 =
 * take `inside`). `outside` has the latent's shape or batch 1.
 */
export function blendMasked(inside: Tensor, outside: Tensor, mask: Tensor): Tensor {
  const [B, C, h, w] = inside.shape as [number, number, number, number];
  const [mb, mc, mh, mw] = mask.shape as [number, number, number, number];
  if (mask.shape.length !== 4 || mh !== h || mw !== w || (mb !== 1 && mb !== B) || (mc !== 1 && mc !== C)) {
    throw new RangeError(`the mask [${mask.shape.join(', ')}] does not fit the latent [${inside.shape.join(', ')}]`);
  }
  const ob = outside.shape[0]!;
  if (sizeOf(outside.shape) / ob !== C * h * w || (ob !== 1 && ob !== B)) {
    throw new RangeError(`the kept latent [${outside.shape.join(', ')}] does not fit the latent [${inside.shape.join(', ')}]`);
  }
  const plane = h * w;
  const out = new Float32Array(inside.data.length);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const at = (b * C + c) * plane;
      const keep = ((ob === 1 ? 0 : b) * C + c) * plane;
      const m = ((mb === 1 ? 0 : b) * mc + (mc === 1 ? 0 : c)) * plane;
      for (let p = 0; p < plane; p++) {
        const k = mask.data[m + p]!;
        out[at + p] = inside.data[at + p]! * k + outside.data[keep + p]! * (1 - k);
      }
    }
  }
  return { data: out, shape: [B, C, h, w] };
}

/** [B, C1, h, w] and [1 or B, C2, h, w] -> [B, C1 + C2, h, w]: extra channels after the sample's own. */
export function concatChannels(sample: Tensor, extra: Tensor): Tensor {
  const [B, C1, h, w] = sample.shape as [number, number, number, number];
  const [eb, C2, eh, ew] = extra.shape as [number, number, number, number];
  if (extra.shape.length !== 4 || eh !== h || ew !== w || (eb !== 1 && eb !== B)) {
    throw new RangeError(`the extra UNet input channels [${extra.shape.join(', ')}] do not fit the latent [${sample.shape.join(', ')}]`);
  }
  const plane = h * w;
  const out = new Float32Array(B * (C1 + C2) * plane);
  for (let b = 0; b < B; b++) {
    out.set(sample.data.subarray(b * C1 * plane, (b + 1) * C1 * plane), b * (C1 + C2) * plane);
    const e = eb === 1 ? 0 : b;
    out.set(extra.data.subarray(e * C2 * plane, (e + 1) * C2 * plane), (b * (C1 + C2) + C1) * plane);
  }
  return { data: out, shape: [B, C1 + C2, h, w] };
}
