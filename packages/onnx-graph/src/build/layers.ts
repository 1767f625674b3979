// torch.nn layers as the ONNX an export of them holds (torch >= 1.13, opset 17), each in its module's scope and with
// its weights taken from a checkpoint by key. Every helper gets the diffusers/transformers module name (the scope,
// which is what module discovery and derivations read) and the checkpoint key prefix (LDM, OpenCLIP, ...: where
// the weights are), so one helper serves every key layout.
//
// Choices, measured on onnxruntime-node 1.30's CPU provider (packages/onnx-graph/README.md, "Graphs built from
// checkpoints"):
// - GroupNorm is the exporter's decomposition (Reshape to [N, groups, -1], InstanceNormalization, Reshape back,
//   per-channel Mul/Add): 1.3-2x faster than ONNX GroupNormalization-21 (which ORT runs as its function body) at
//   SD sizes, and the same graph as an export.
// - LayerNorm is LayerNormalization-17: ORT fuses the exporter's ReduceMean/Sub/Pow/Sqrt/Div chain into the same
//   kernel (identical outputs and times), so the single node is only smaller.
// - Attention is spelled out as the export does (heads to the batch axis, q scaled, Q·Kᵀ, Softmax, ·V, heads
//   back), so attention-fusion.ts can rewrite it into com.microsoft.MultiHeadAttention like any export.
import { float, type GraphBuilder } from './builder.ts';
import type { WeightView } from './weights.ts';

export interface Ctx {
  b: GraphBuilder;
  w: WeightView;
}

/** nn.Linear on [..., in] through MatMul by the transposed weight (+ bias first, as exports add it). */
export function linear(ctx: Ctx, x: string, module: string, key: string, options: { bias?: boolean; shape?: [number, number] } = {}): string {
  const { b, w } = ctx;
  return b.scope(module, () => {
    const weight = w.take(`${key}.weight`, { transpose: true }, options.shape);
    let y = b.op('MatMul', [x, b.weight(`${b.paramName('weight')}.T`, weight)]);
    if (options.bias ?? true) y = b.op('Add', [b.weight(b.paramName('bias'), w.take(`${key}.bias`, {}, [weight.dims[1]!])), y]);
    return y;
  });
}

/** nn.Linear on a 2-D input as Gemm(transB=1): the weight as stored, as exports write the time embedding. */
export function linearGemm(ctx: Ctx, x: string, module: string, key: string): string {
  const { b, w } = ctx;
  return b.scope(module, () => {
    const weight = w.take(`${key}.weight`);
    if (weight.dims.length !== 2) throw new Error(`${key}.weight is not 2-D`);
    const bias = w.take(`${key}.bias`, {}, [weight.dims[0]!]);
    return b.op('Gemm', [x, b.weight(b.paramName('weight'), weight), b.weight(b.paramName('bias'), bias)], { alpha: float(1), beta: float(1), transB: 1 });
  });
}

/** nn.Conv2d (square kernel from the weight; `padding` defaults to kernel // 2). */
export function conv2d(ctx: Ctx, x: string, module: string, key: string, options: { stride?: number; padding?: number; inChannels?: number } = {}): string {
  const { b, w } = ctx;
  return b.scope(module, () => {
    const weight = w.take(`${key}.weight`);
    const [out, cin, kh, kw] = weight.dims as [number, number, number, number];
    if (weight.dims.length !== 4) throw new Error(`${key}.weight is [${weight.dims}], not a 2-D convolution weight`);
    if (options.inChannels !== undefined && cin !== options.inChannels) throw new Error(`${key}.weight takes ${cin} channels; ${options.inChannels} arrive here`);
    const bias = w.take(`${key}.bias`, {}, [out]);
    const p = options.padding ?? Math.floor(kh / 2);
    const s = options.stride ?? 1;
    return b.op('Conv', [x, b.weight(b.paramName('weight'), weight), b.weight(b.paramName('bias'), bias)], {
      dilations: [1, 1],
      group: 1,
      kernel_shape: [kh, kw],
      pads: [p, p, p, p],
      strides: [s, s],
    });
  });
}

/** nn.GroupNorm over [N, C, ...] as the exporter writes it (see the file comment). */
export function groupNorm(ctx: Ctx, x: string, module: string, key: string, options: { groups: number; eps: number; channels: number }): string {
  const { b, w } = ctx;
  const { groups, eps, channels } = options;
  if (channels % groups !== 0) throw new Error(`GroupNorm ${key}: ${channels} channels do not split into ${groups} groups`);
  return b.scope(module, () => {
    const scale = w.take(`${key}.weight`, { reshape: [channels, 1, 1] }, [channels]);
    const shift = w.take(`${key}.bias`, { reshape: [channels, 1, 1] }, [channels]);
    const grouped = b.op('Reshape', [x, b.ints([0, groups, -1])]);
    const normed = b.op('InstanceNormalization', [grouped, b.constant(new Array(groups).fill(1)), b.constant(new Array(groups).fill(0))], { epsilon: float(eps) });
    const back = b.op('Reshape', [normed, b.op('Shape', [x])]);
    const scaled = b.op('Mul', [back, b.weight(b.paramName('weight'), scale)]);
    return b.op('Add', [scaled, b.weight(b.paramName('bias'), shift)]);
  });
}

/** nn.LayerNorm over the last axis. */
export function layerNorm(ctx: Ctx, x: string, module: string, key: string, options: { eps: number; channels: number }): string {
  const { b, w } = ctx;
  return b.scope(module, () => {
    const scale = w.take(`${key}.weight`, {}, [options.channels]);
    const shift = w.take(`${key}.bias`, {}, [options.channels]);
    if (b.opset >= 17) {
      return b.op('LayerNormalization', [x, b.weight(b.paramName('weight'), scale), b.weight(b.paramName('bias'), shift)], { axis: -1, epsilon: float(options.eps) });
    }
    const mean = b.op('ReduceMean', [x], { axes: [-1] });
    const centred = b.op('Sub', [x, mean]);
    const variance = b.op('ReduceMean', [b.op('Pow', [centred, b.scalar(2)])], { axes: [-1] });
    const normed = b.op('Div', [centred, b.op('Sqrt', [b.op('Add', [variance, b.scalar(options.eps)])])]);
    return b.op('Add', [b.op('Mul', [normed, b.weight(b.paramName('weight'), scale)]), b.weight(b.paramName('bias'), shift)]);
  });
}

/** x * sigmoid(x) (nn.SiLU), in scope `module` when given. */
export function silu(b: GraphBuilder, x: string, module?: string): string {
  const f = () => b.op('Mul', [x, b.op('Sigmoid', [x])]);
  return module ? b.scope(module, f) : f();
}

/** Exact (erf) GELU, in the current scope: 0.5 * x * (1 + erf(x / sqrt 2)). */
export function gelu(b: GraphBuilder, x: string): string {
  const erf = b.op('Erf', [b.op('Div', [x, b.scalar(Math.SQRT2)])]);
  return b.op('Mul', [b.op('Mul', [x, b.op('Add', [erf, b.scalar(1)])]), b.scalar(0.5)]);
}

/** CLIP's quick GELU, in the current scope: x * sigmoid(1.702 x). */
export function quickGelu(b: GraphBuilder, x: string): string {
  return b.op('Mul', [x, b.op('Sigmoid', [b.op('Mul', [x, b.scalar(1.702)])])]);
}

/** Elements [start, end) of the last axis. */
export function sliceLast(b: GraphBuilder, x: string, start: number, end: number): string {
  return b.op('Slice', [x, b.ints([start]), b.ints([end]), b.ints([-1]), b.ints([1])]);
}

export interface AttentionOptions {
  heads: number;
  /** Channels of the query input (and of the output). */
  queryDim: number;
  /** Channels of the context (cross-attention); the query's when absent. */
  contextDim?: number;
  /** heads x head channels (default queryDim). */
  innerDim?: number;
  /** Whether q, k, v projections have biases (CLIP's do, the UNet's do not). */
  qkvBias?: boolean;
  /** Key names of the projections under the module key (diffusers: to_q, to_k, to_v, to_out.0). */
  names?: { q: string; k: string; v: string; out: string };
  /** Scope names of the projections (default the key names). */
  scopes?: { q: string; k: string; v: string; out: string };
  /** Weights of q, k, v as row blocks of one fused tensor (OpenCLIP's in_proj_weight / in_proj_bias). */
  fused?: { weight: string; bias?: string };
  /** An additive mask on the scores, [.., Sq, Sk] broadcastable (CLIP's causal mask). */
  mask?: string;
}

/**
 * Multi-head attention in module scope `module`, keys under `key`: softmax(q kᵀ / sqrt(d)) v through the
 * output projection, spelled as the torch 1.x exporter writes diffusers' AttnProcessor ([batch*heads, tokens, d]).
 * `context` is the key/value input (cross-attention) or undefined (self-attention).
 */
export function attention(ctx: Ctx, x: string, context: string | undefined, module: string, key: string, options: AttentionOptions): string {
  const { b } = ctx;
  const inner = options.innerDim ?? options.queryDim;
  const heads = options.heads;
  if (inner % heads !== 0) throw new Error(`attention ${key}: ${inner} channels do not split into ${heads} heads`);
  const d = inner / heads;
  const names = options.names ?? { q: 'to_q', k: 'to_k', v: 'to_v', out: 'to_out.0' };
  const scopes = options.scopes ?? names;
  const kvIn = options.contextDim ?? options.queryDim;
  return b.scope(module, () => {
    const project = (input: string, which: 'q' | 'k' | 'v', inDim: number): string => {
      if (options.fused) {
        const row = { q: 0, k: 1, v: 2 }[which] * inner;
        return b.scope(scopes[which], () => {
          const wt = ctx.w.take(`${key}.${options.fused!.weight}`, { rows: [row, row + inner], transpose: true }, [3 * inner, inDim]);
          let y = b.op('MatMul', [input, b.weight(`${b.paramName('weight')}.T`, wt)]);
          if (options.fused!.bias) y = b.op('Add', [b.weight(b.paramName('bias'), ctx.w.take(`${key}.${options.fused!.bias}`, { rows: [row, row + inner] }, [3 * inner])), y]);
          return y;
        });
      }
      return linear(ctx, input, scopes[which], `${key}.${names[which]}`, { bias: options.qkvBias ?? false, shape: [inner, inDim] });
    };
    const q = project(x, 'q', options.queryDim);
    const source = context ?? x;
    const k = project(source, 'k', kvIn);
    const v = project(source, 'v', kvIn);
    // [B, S, h*d] -> [B, S, h, d] -> [B, h, S, d] -> [B*h, S, d]
    const toBatch = (t: string): { t: string; tokens: string } => {
      const tokens = b.op('Shape', [t], { start: 1, end: 2 });
      const split = b.op('Transpose', [b.op('Reshape', [t, b.ints([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
      return { t: b.op('Reshape', [split, b.op('Concat', [b.ints([-1]), tokens, b.ints([d])], { axis: 0 })]), tokens };
    };
    const qh = toBatch(q);
    const kh = toBatch(k);
    const vh = toBatch(v);
    let scores = b.op('MatMul', [b.op('Mul', [qh.t, b.scalar(1 / Math.sqrt(d))]), b.op('Transpose', [kh.t], { perm: [0, 2, 1] })]);
    if (options.mask) scores = b.op('Add', [scores, options.mask]);
    const probs = b.op('Softmax', [scores], { axis: -1 });
    const out = b.op('MatMul', [probs, vh.t]);
    // [B*h, S, d] -> [B, h, S, d] -> [B, S, h, d] -> [B, S, h*d]
    const unsplit = b.op('Reshape', [out, b.op('Concat', [b.ints([-1, heads]), qh.tokens, b.ints([d])], { axis: 0 })]);
    const merged = b.op('Reshape', [b.op('Transpose', [unsplit], { perm: [0, 2, 1, 3] }), b.ints([0, 0, inner])]);
    return linear(ctx, merged, scopes.out, `${key}.${names.out}`, { shape: [options.queryDim, inner] });
  });
}
