// Module discovery by export scope. A module is a scope path (wrapper prefix stripped); its outputs are the
// tensors produced inside its scope and consumed outside it (or graph outputs), its inputs the tensors consumed
// inside and produced outside. Only tensors that depend on a graph input count: a constant that torch happened
// to name inside a scope is not a module output. This finds attn1/attn2 outputs without matching op patterns,
// so it holds for torch 1.x bmm attention and torch 2.x SDPA exports alike.
import { OnnxGraphError } from './errors.ts';
import { indexGraph, nodeInputs, type GraphIndex } from './graph-index.ts';
import type { ModelProto, NodeProto } from './proto.ts';
import { detectPrefix, isInside, modulePathOf, parseScope } from './scope.ts';

export interface ModuleBoundary {
  /** Scope path without the wrapper prefix, e.g. "down_blocks.0/attentions.0/transformer_blocks.0/attn2". */
  path: string;
  nodeCount: number;
  /** Dynamic tensors consumed inside and produced outside (graph inputs included). */
  inputs: string[];
  /** Dynamic tensors produced inside and consumed outside, or graph outputs. */
  outputs: string[];
}

export interface AttentionModule extends ModuleBoundary {
  kind: 'attn1' | 'attn2';
  /** The BasicTransformerBlock holding it, e.g. "mid_block/attentions.0/transformer_blocks.0". */
  transformerBlock: string;
  /** The attention output (after to_out, before the residual add): what TGATE caches. */
  output: string;
}

export interface UNetBlock {
  path: string;
  resnets: string[];
  attentions: string[];
  /** down_blocks.i/downsamplers.0 or up_blocks.i/upsamplers.0 when present. */
  sampler?: string;
}

export interface UNetStructure {
  /** Wrapper prefix segments ([] for a plain UNet export, ["unet"] for "/unet/down_blocks.0/..."). */
  prefix: string[];
  attention: AttentionModule[];
  downBlocks: UNetBlock[];
  midBlock?: UNetBlock;
  upBlocks: UNetBlock[];
  /** Every scope path seen (prefix stripped), with its node count. */
  modules: Map<string, number>;
  index: GraphIndex;
  /** Boundary of any scope path (throws unknown_module if no node lies in it). */
  boundary(path: string): ModuleBoundary;
  /** The node's module path (prefix stripped), if it has one. */
  pathOf(node: NodeProto): string | undefined;
}

const FUSED_ATTENTION = new Set(['Attention', 'MultiHeadAttention', 'PackedAttention', 'PackedMultiHeadAttention', 'GroupQueryAttention']);
const FUSED_OTHER = new Set(['GroupNorm', 'NhwcConv', 'SkipGroupNorm', 'BiasSplitGelu', 'BiasAdd', 'SkipLayerNormalization', 'LayerNormalization']);

export function discoverUNet(model: ModelProto): UNetStructure {
  const graph = model.graph;
  if (!graph) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const names = graph.node.map((n) => n.name);
  const prefix = detectPrefix(names);
  if (prefix === undefined) throw noScopesError(model);
  const index = indexGraph(graph);
  const pathByNode = new Map<NodeProto, string>();
  const members = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    const path = modulePathOf(node.name, prefix);
    if (path === undefined || path === '') continue;
    pathByNode.set(node, path);
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      let list = members.get(p);
      if (!list) members.set(p, (list = []));
      list.push(node);
    }
  }
  const cache = new Map<string, ModuleBoundary>();
  const boundary = (path: string): ModuleBoundary => {
    const hit = cache.get(path);
    if (hit) return hit;
    const nodes = members.get(path);
    if (!nodes) {
      throw new OnnxGraphError(
        `no node of the graph lies in module "${path}" (wrapper prefix "${prefix.join('/')}"); top-level modules: ${topLevel(members).join(', ')}`,
        'unknown_module',
      );
    }
    const result = computeBoundary(path, nodes, index, (n) => {
      const p = pathByNode.get(n);
      return p !== undefined && isInside(p, path);
    });
    cache.set(path, result);
    return result;
  };

  const attention: AttentionModule[] = [];
  for (const path of members.keys()) {
    const m = /^(.*\/transformer_blocks\.\d+)\/(attn1|attn2)$/.exec(path);
    if (!m) continue;
    const b = boundary(path);
    if (b.outputs.length !== 1) {
      throw new OnnxGraphError(
        `attention module ${path} has ${b.outputs.length} outputs leaving its scope (${b.outputs.join(', ')}); expected exactly one (the to_out result). Was the graph edited after export?`,
        'unknown_module',
      );
    }
    attention.push({ ...b, kind: m[2] as 'attn1' | 'attn2', transformerBlock: m[1]!, output: b.outputs[0]! });
  }
  if (attention.length === 0) throw noAttentionError(model, members);
  const order = new Map(graph.node.map((n, i) => [n, i]));
  const firstNode = (p: string) => Math.min(...(members.get(p) ?? []).map((n) => order.get(n) ?? 0));
  attention.sort((a, b) => firstNode(a.path) - firstNode(b.path));

  const block = (path: string): UNetBlock => {
    const kids = (kind: string) =>
      [...members.keys()]
        .filter((p) => new RegExp(`^${escape(path)}/${kind}\\.\\d+$`).test(p))
        .sort((a, b) => lastIndex(a) - lastIndex(b));
    const samplers = [...kids('downsamplers'), ...kids('upsamplers')];
    return { path, resnets: kids('resnets'), attentions: kids('attentions'), ...(samplers[0] ? { sampler: samplers[0] } : {}) };
  };
  const blocks = (kind: string) =>
    [...members.keys()].filter((p) => new RegExp(`^${kind}\\.\\d+$`).test(p)).sort((a, b) => lastIndex(a) - lastIndex(b)).map(block);

  return {
    prefix,
    attention,
    downBlocks: blocks('down_blocks'),
    ...(members.has('mid_block') ? { midBlock: block('mid_block') } : {}),
    upBlocks: blocks('up_blocks'),
    modules: new Map([...members.entries()].map(([p, n]) => [p, n.length])),
    index,
    boundary,
    pathOf: (node) => pathByNode.get(node),
  };
}

/** The inputs and outputs of a module whose member nodes are `nodes` (`inside` tells members apart): see the file comment. */
export function computeBoundary(path: string, nodes: NodeProto[], index: GraphIndex, inside: (n: NodeProto) => boolean): ModuleBoundary {
  const inputs = new Set<string>();
  const outputs = new Set<string>();
  for (const node of nodes) {
    for (const i of nodeInputs(node)) {
      if (!index.dynamic.has(i)) continue;
      const p = index.producer.get(i);
      if (!p || !inside(p)) inputs.add(i);
    }
    for (const o of node.output) {
      if (!o || !index.dynamic.has(o)) continue;
      if (index.outputs.has(o) || (index.consumers.get(o) ?? []).some((c) => !inside(c))) outputs.add(o);
    }
  }
  return { path, nodeCount: nodes.length, inputs: [...inputs], outputs: [...outputs] };
}

function lastIndex(path: string): number {
  return Number(/\.(\d+)$/.exec(path)?.[1] ?? 0);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function topLevel(members: Map<string, NodeProto[]>): string[] {
  return [...members.keys()].filter((p) => !p.includes('/')).slice(0, 20);
}

const EXPORT_ADVICE =
  'Use an un-optimized export made by torch >= 1.13 (which names nodes after module paths): optimum-cli export onnx ' +
  '--model <repo> --task text-to-image <out> (without --optimize / -O1..O4), or diffusers\' ' +
  'scripts/convert_stable_diffusion_checkpoint_to_onnx.py; do not run onnxruntime.transformers.optimizer on it.';

function fusedOps(model: ModelProto): { attention: number; other: string[] } {
  let attention = 0;
  const other = new Set<string>();
  for (const n of model.graph?.node ?? []) {
    if (n.domain !== 'com.microsoft') continue;
    if (FUSED_ATTENTION.has(n.opType)) attention++;
    else if (FUSED_OTHER.has(n.opType)) other.add(n.opType);
  }
  return { attention, other: [...other] };
}

function noScopesError(model: ModelProto): OnnxGraphError {
  const fused = fusedOps(model);
  if (fused.attention > 0) return fusedError(fused);
  const scoped = (model.graph?.node ?? []).filter((n) => parseScope(n.name)).length;
  return new OnnxGraphError(
    scoped === 0
      ? `this graph's nodes carry no module scope names (e.g. "${model.graph?.node[0]?.name ?? ''}" instead of "/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul"): it was exported by torch < 1.13 or renamed by a tool, so attention modules cannot be found. ${EXPORT_ADVICE}`
      : `this graph has scoped node names but none of a diffusers UNet (conv_in, down_blocks.N, mid_block, up_blocks.N): is it a UNet? TGATE and DeepCache apply to the unet component. ${EXPORT_ADVICE}`,
    'no_attention_scopes',
  );
}

function fusedError(fused: { attention: number; other: string[] }): OnnxGraphError {
  return new OnnxGraphError(
    `this UNet was optimized by onnxruntime's transformer optimizer: it holds ${fused.attention} fused com.microsoft attention node(s)` +
      `${fused.other.length ? ` (and fused ${fused.other.join(', ')})` : ''}, so the attn1/attn2 scopes TGATE caches are gone (these fused graphs also often run only on GPU). ${EXPORT_ADVICE}`,
    'fused_attention',
  );
}

function noAttentionError(model: ModelProto, members: Map<string, NodeProto[]>): OnnxGraphError {
  const fused = fusedOps(model);
  if (fused.attention > 0) return fusedError(fused);
  return new OnnxGraphError(
    `no ".../transformer_blocks.N/attn1" or ".../attn2" scope in this graph (top-level modules: ${topLevel(members).join(', ')}): ` +
      `it has no cross-attention to gate (a UNet without transformer blocks?) or its attention scopes were renamed. ${EXPORT_ADVICE}`,
    'no_attention_scopes',
  );
}

/** Output tensor names of every attn1 or attn2 module, in graph order: a capture/reuse spec for TGATE. */
export function attentionOutputs(unet: UNetStructure, kind: 'attn1' | 'attn2'): string[] {
  return unet.attention.filter((a) => a.kind === kind).map((a) => a.output);
}
