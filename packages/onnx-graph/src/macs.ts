// Multiply-accumulate counts from a graph: MatMul, Gemm, Conv and ConvTranspose (the ops that carry a UNet's
// cost; element-wise ops, norms and softmax are not counted, as in the MAC tables of the TGATE and DeepCache
// papers), broken down by module so a TGATE or DeepCache reduction can be explained.
import { OnnxGraphError } from './errors.ts';
import { attrInt, valueInfoType, type GraphProto, type ModelProto, type NodeProto } from './proto.ts';
import { detectPrefix, modulePathOf } from './scope.ts';
import { inferShapes, matmulShape, type TensorInfo } from './shapes.ts';

/** Sizes of a UNet call. height/width are IMAGE pixels (latents are 1/8 of that, as EmptyLatentImage). */
export interface UNetSizes {
  batch: number;
  height: number;
  width: number;
  /** Text tokens (77 for CLIP). */
  textLength?: number;
  /** Pixels per latent cell (8 for SD's VAE). */
  vaeScale?: number;
}

export interface MacOptions {
  baseDir?: string;
  /** Explicit shapes for graph inputs (overrides what is derived from sizes). */
  inputShapes?: Record<string, number[]>;
  /**
   * Take tensor shapes from this model instead (the full UNet a derived graph came from): derived graphs keep
   * tensor and node names, but their new inputs carry symbolic dims that sizes alone cannot resolve.
   */
  shapesFrom?: ModelProto;
}

export type MacCategory = 'attn1' | 'attn2' | 'ff' | 'transformer_other' | 'resnets' | 'samplers' | 'io' | 'time_embedding' | 'other';

export interface MacReport {
  /** All MACs: convolutions, linear layers and the attention score/value products. */
  total: number;
  /**
   * MACs of ops with a weight operand (Conv, ConvTranspose, Gemm, MatMul by an initializer): what module-hook
   * counters (thop, fvcore's defaults, the TGATE and DeepCache papers' tables) count as a UNet's MACs. They miss
   * the attention products (Q.K^T and P.V, both operands activations), which `activationMatMul` holds.
   */
  weightMacs: number;
  activationMatMul: number;
  byOp: Record<string, number>;
  byCategory: Record<MacCategory, number>;
  /** Every scope path (prefix stripped) with the MACs of the nodes inside it, nested scopes included. */
  byModule: Map<string, number>;
  /** Per-node MACs for nodes that have any. */
  nodes: Array<{ name: string; op: string; module?: string; macs: number }>;
  inputShapes: Record<string, number[]>;
}

export function unetInputShapes(model: ModelProto, sizes: UNetSizes): Record<string, number[]> {
  const graph = model.graph!;
  const inits = new Set(graph.initializer.map((t) => t.name));
  const scale = sizes.vaeScale ?? 8;
  const [h, w] = [sizes.height / scale, sizes.width / scale];
  if (!Number.isInteger(h) || !Number.isInteger(w)) {
    throw new OnnxGraphError(`image size ${sizes.width}x${sizes.height} is not a multiple of ${scale} (the VAE scale)`, 'bad_spec');
  }
  const shapes: Record<string, number[]> = {};
  for (const input of graph.input) {
    if (inits.has(input.name)) continue;
    const dims = valueInfoType(input).dims ?? [];
    const wanted = (i: number): number | undefined => {
      if (i === 0) return sizes.batch;
      if (input.name === 'sample' && i === 2) return h;
      if (input.name === 'sample' && i === 3) return w;
      if (input.name === 'encoder_hidden_states' && i === 1) return sizes.textLength ?? 77;
      return undefined;
    };
    shapes[input.name] = dims.map((d, i) => {
      const want = wanted(i);
      if (typeof d === 'number') {
        if (want !== undefined && want !== d && !(i === 0 && d === 1 && input.name === 'timestep')) {
          throw new OnnxGraphError(
            `input "${input.name}" has a fixed size ${d} in dim ${i} but ${want} was asked (${describeSizes(sizes)}): this export only runs at its fixed size`,
            'bad_spec',
          );
        }
        return d;
      }
      if (want === undefined) {
        throw new OnnxGraphError(`input "${input.name}" dim ${i} is symbolic ("${d ?? '?'}") and not one of batch/height/width/textLength: pass options.inputShapes`, 'bad_spec');
      }
      return want;
    });
  }
  return shapes;
}

function describeSizes(s: UNetSizes): string {
  return `batch ${s.batch}, ${s.width}x${s.height} px, text ${s.textLength ?? 77}`;
}

export function countMacs(model: ModelProto, sizes: UNetSizes, options: MacOptions = {}): MacReport {
  const shapeModel = options.shapesFrom ?? model;
  const inputShapes = { ...unetInputShapes(shapeModel, sizes), ...options.inputShapes };
  const shapes = inferShapes(shapeModel, inputShapes, { ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
  if (options.shapesFrom) {
    // Shapes of tensors only the derived graph has (If-gated variants): propagate through it too.
    for (const [k, v] of inferShapes(model, inputShapes, { known: shapes, ...(options.baseDir ? { baseDir: options.baseDir } : {}) })) shapes.set(k, v);
  }
  const prefix = detectPrefix(allNodes(model.graph!).map((n) => n.name)) ?? [];
  const report: MacReport = {
    total: 0,
    weightMacs: 0,
    activationMatMul: 0,
    byOp: {},
    byCategory: { attn1: 0, attn2: 0, ff: 0, transformer_other: 0, resnets: 0, samplers: 0, io: 0, time_embedding: 0, other: 0 },
    byModule: new Map(),
    nodes: [],
    inputShapes,
  };
  const weights = new Set(allGraphs(model.graph!).flatMap((g) => g.initializer.map((t) => t.name)));
  for (const node of allNodes(model.graph!)) {
    const macs = nodeMacs(node, shapes);
    if (macs === 0) continue;
    const module = modulePathOf(node.name, prefix);
    report.total += macs;
    if ((node.opType === 'MatMul' && !node.input.some((i) => weights.has(i))) || node.opType === 'MultiHeadAttention') report.activationMatMul += macs;
    else report.weightMacs += macs;
    report.byOp[node.opType] = (report.byOp[node.opType] ?? 0) + macs;
    report.byCategory[categoryOf(module)] += macs;
    report.nodes.push({ name: node.name, op: node.opType, ...(module ? { module } : {}), macs });
    if (module) {
      const parts = module.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const p = parts.slice(0, i).join('/');
        report.byModule.set(p, (report.byModule.get(p) ?? 0) + macs);
      }
    }
  }
  return report;
}

function allGraphs(graph: GraphProto): GraphProto[] {
  const out = [graph];
  for (const node of graph.node) for (const a of node.attribute) for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) out.push(...allGraphs(g));
  return out;
}

/** Nodes of the graph and of its If/Loop subgraphs (an If-gated model counts both branches: say so to callers). */
function allNodes(graph: GraphProto): NodeProto[] {
  const out: NodeProto[] = [];
  for (const node of graph.node) {
    out.push(node);
    for (const a of node.attribute) for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) out.push(...allNodes(g));
  }
  return out;
}

export function categoryOf(module: string | undefined): MacCategory {
  if (!module) return 'other';
  if (/\/attn1(\/|$)/.test(module)) return 'attn1';
  if (/\/attn2(\/|$)/.test(module)) return 'attn2';
  if (/\/ff(\/|$)/.test(module)) return 'ff';
  if (/\/attentions\.\d+(\/|$)/.test(module)) return 'transformer_other';
  if (/\/resnets\.\d+(\/|$)/.test(module)) return 'resnets';
  if (/\/(downsamplers|upsamplers)\.\d+(\/|$)/.test(module)) return 'samplers';
  if (/^(conv_in|conv_out|conv_norm_out)(\/|$)/.test(module)) return 'io';
  if (/^(time_embedding|time_proj)(\/|$)/.test(module)) return 'time_embedding';
  return 'other';
}

function shapeOf(shapes: Map<string, TensorInfo>, name: string | undefined, node: NodeProto): number[] {
  const info = name ? shapes.get(name) : undefined;
  if (!info) throw new OnnxGraphError(`countMacs: no shape for "${name}" (input of ${node.name || node.opType})`, 'shape_inference');
  return info.shape;
}

function prod(a: number[]): number {
  return a.reduce((x, y) => x * y, 1);
}

export function nodeMacs(node: NodeProto, shapes: Map<string, TensorInfo>): number {
  switch (node.opType) {
    case 'MatMul': {
      const a = shapeOf(shapes, node.input[0], node);
      const b = shapeOf(shapes, node.input[1], node);
      const out = matmulShape(a, b);
      const k = a[a.length - 1]!;
      return prod(out) * k;
    }
    case 'Gemm': {
      const a = shapeOf(shapes, node.input[0], node);
      const b = shapeOf(shapes, node.input[1], node);
      const m = attrInt(node, 'transA', 0) ? a[1]! : a[0]!;
      const k = attrInt(node, 'transA', 0) ? a[0]! : a[1]!;
      const n = attrInt(node, 'transB', 0) ? b[0]! : b[1]!;
      return m * k * n;
    }
    case 'Conv': {
      const w = shapeOf(shapes, node.input[1], node);
      const y = shapeOf(shapes, node.output[0], node);
      // Each output element: (C_in / group) * kernel MACs; w = [M, C_in/group, k...].
      return prod(y) * prod(w.slice(1));
    }
    case 'ConvTranspose': {
      const x = shapeOf(shapes, node.input[0], node);
      const w = shapeOf(shapes, node.input[1], node);
      // Each input element scatters into (M / group) * kernel outputs; w = [C_in, M/group, k...].
      return prod(x) * prod(w.slice(1));
    }
    case 'MultiHeadAttention': {
      // Q·Kᵀ (B·S·L·C) and P·V (B·S·L·Cv), as the unfused products count them.
      const q = shapeOf(shapes, node.input[0], node);
      const k = shapeOf(shapes, node.input[1], node);
      const v = shapeOf(shapes, node.input[2], node);
      return q[0]! * q[1]! * k[1]! * (q[2]! + v[2]!);
    }
    default:
      return 0;
  }
}
