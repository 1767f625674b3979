// Rewrites exported attention into onnxruntime's fused com.microsoft.MultiHeadAttention kernel.
//
// An export spells attention out: the projected q, k, v ([batch, tokens, channels]) are split into heads by
// Reshape/Transpose, scaled, multiplied (Q·Kᵀ), soft-maxed, multiplied by V and merged back. On the CPU that
// writes and reads a [batch, heads, tokens, tokens] score matrix (512 MB per layer at 4096 tokens); the fused
// kernel computes the same function in tiles without it, and is faster (bench/README.md, "sd15").
//
// The match does not trust names or op sequences: it follows every tensor from the three projections to the
// merged output, tracking what each axis holds (batch, tokens, heads, head channels) through each Reshape and
// Transpose with shapes inferred at concrete sizes, and accepts only when the result is exactly
// softmax(scale · Q_h·K_hᵀ)·V_h with heads merged head-major, the layout MultiHeadAttention computes. Anything
// else (a mask added to the scores, a softmax over another axis, an unusual head layout) is left as it is and
// reported. The fused node keeps the attention module's scope in its name, so module discovery (TGATE, DeepCache,
// MAC counts by module) sees it where the unfused nodes were; the replaced nodes are pruned.
import { OnnxGraphError } from './errors.ts';
import { indexGraph, type GraphIndex } from './graph-index.ts';
import { removeUnreachable } from './prune.ts';
import { attrInt, attrInts, cloneModel, newNode, type ModelProto, type NodeProto } from './proto.ts';
import { inferShapes, type TensorInfo } from './shapes.ts';

export const MS_DOMAIN = 'com.microsoft';

export interface FusedAttention {
  /** The fused node's name (the first MatMul's scope + "/MultiHeadAttention"). */
  node: string;
  query: string;
  key: string;
  value: string;
  output: string;
  heads: number;
  scale: number;
}

export interface AttentionFusionReport {
  fused: FusedAttention[];
  /** Softmax nodes that looked like attention but were left unfused, with the reason. */
  skipped: Array<{ node: string; reason: string }>;
  /** Nodes removed after the rewrite (the unfused attention and the shape arithmetic only it used). */
  removedNodes: number;
}

export interface AttentionFusionOptions {
  /** Concrete sizes for every graph input (name -> dims). Default: every symbolic dim at 2 x its position + 14. */
  inputShapes?: Record<string, number[]>;
  /** Folder the model's external data is relative to (small constants are read for shape folding). */
  baseDir?: string;
}

/** One atom of an axis: what the positions along it mean. `C` is heads x head channels, not yet split. */
interface Atom {
  kind: 'B' | 'S' | 'L' | 'C' | 'H' | 'D';
  /** Which projection it came from ('q', 'k', 'v'): atoms are compared by kind across projections. */
  from: 'q' | 'k' | 'v';
  size: number;
}

/** A tensor's layout: one list of atoms per axis (an axis of size 1 may hold none). */
type Layout = Atom[][];

class NoMatch extends Error {}

function fail(reason: string): never {
  throw new NoMatch(reason);
}

/** Returns a copy of `model` whose attention is fused where it provably can be, and what was done. */
export function fuseAttention(model: ModelProto, options: AttentionFusionOptions = {}): { model: ModelProto; report: AttentionFusionReport } {
  const out = cloneModel(model);
  const graph = out.graph;
  if (!graph) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const shapes = inferShapes(out, options.inputShapes ?? defaultInputShapes(out), { ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
  const index = indexGraph(graph);
  const report: AttentionFusionReport = { fused: [], skipped: [], removedNodes: 0 };
  const replacements = new Map<string, string>();
  const newNodes = new Map<NodeProto, NodeProto>();
  for (const softmax of graph.node.filter((n) => n.opType === 'Softmax' && (n.domain === '' || n.domain === 'ai.onnx'))) {
    try {
      const match = matchAttention(softmax, index, shapes);
      const name = `${scopeOf(match.firstMatMul.name)}MultiHeadAttention`;
      const output = `${name}_output_0`;
      const fused = newNode({
        opType: 'MultiHeadAttention',
        domain: MS_DOMAIN,
        name,
        input: [match.query, match.key, match.value],
        output: [output],
        attribute: [
          { name: 'num_heads', type: 2, i: BigInt(match.heads) },
          { name: 'scale', type: 1, f: match.scale },
        ],
      });
      // Insert right after the producer of the output it replaces: every input is computed before that.
      newNodes.set(index.producer.get(match.output)!, fused);
      replacements.set(match.output, output);
      report.fused.push({ node: name, query: match.query, key: match.key, value: match.value, output: match.output, heads: match.heads, scale: match.scale });
    } catch (err) {
      if (!(err instanceof NoMatch)) throw err;
      report.skipped.push({ node: softmax.name, reason: err.message });
    }
  }
  if (report.fused.length === 0) return { model: out, report };

  graph.node = graph.node.flatMap((n) => (newNodes.has(n) ? [n, newNodes.get(n)!] : [n]));
  for (const node of graph.node) node.input = node.input.map((i) => replacements.get(i) ?? i);
  for (const o of graph.output) {
    const to = replacements.get(o.name);
    if (to) {
      // A graph output keeps its name: an Identity from the fused result.
      graph.node.push(newNode({ opType: 'Identity', name: `${to}/Identity`, input: [to], output: [o.name] }));
    }
  }
  const before = graph.node.length;
  removeUnreachable(graph);
  report.removedNodes = before - graph.node.length;
  if (!out.opsetImport.some((o) => o.domain === MS_DOMAIN)) out.opsetImport.push({ ...out.opsetImport[0]!, domain: MS_DOMAIN, version: 1n });
  return { model: out, report };
}

/** "/a/b/MatMul_3" -> "/a/b/"; a name without scope -> "". */
function scopeOf(nodeName: string): string {
  const at = nodeName.lastIndexOf('/');
  return at < 0 ? '' : nodeName.slice(0, at + 1);
}

/** Sizes for symbolic input dims: distinct and above 1, so reshapes are read unambiguously. */
/** Every graph input at its declared size, symbolic dims at 16: shapes to infer a graph's structure with. */
export function defaultInputShapes(model: ModelProto): Record<string, number[]> {
  const graph = model.graph!;
  const inits = new Set(graph.initializer.map((t) => t.name));
  const shapes: Record<string, number[]> = {};
  for (const input of graph.input) {
    if (inits.has(input.name)) continue;
    const t = input.type?.value;
    const dims = t?.case === 'tensorType' ? (t.value.shape?.dim ?? []) : [];
    shapes[input.name] = dims.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : 16));
  }
  return shapes;
}

interface AttentionMatch {
  query: string;
  key: string;
  value: string;
  output: string;
  heads: number;
  scale: number;
  firstMatMul: NodeProto;
}

function matchAttention(softmax: NodeProto, index: GraphIndex, shapes: Map<string, TensorInfo>): AttentionMatch {
  const shapeOf = (name: string): number[] => shapes.get(name)?.shape ?? fail(`no shape for ${name}`);
  let scale = 1;
  // Back from the softmax to Q·Kᵀ through scalar scalings.
  let scores = softmax.input[0]!;
  for (;;) {
    const producer = index.producer.get(scores) ?? fail('the scores come from outside the graph');
    if (producer.opType === 'MatMul') break;
    const factor = scalarFactor(producer, scores, index, shapes);
    if (factor === undefined) fail(`the scores pass through ${producer.opType} (${producer.name}), not a scalar scaling`);
    scale *= factor.factor;
    scores = factor.input;
  }
  const first = index.producer.get(scores)!;
  const q = traceToProjection(first.input[0]!, index, shapes);
  const k = traceToProjection(first.input[1]!, index, shapes);
  scale *= q.scale * k.scale;

  // The softmax must run over the last axis (opset < 13 flattens from `axis`: the same when it is the last).
  const rank = shapeOf(softmax.input[0]!).length;
  const axis = attrInt(softmax, 'axis', -1);
  if (axis !== -1 && axis !== rank - 1) fail(`softmax over axis ${axis} of ${rank}`);
  const probs = softmax.output[0]!;
  const consumers = index.consumers.get(probs) ?? [];
  if (consumers.length !== 1 || consumers[0]!.opType !== 'MatMul' || consumers[0]!.input[0] !== probs) fail('the probabilities do not feed one P·V product');
  const second = consumers[0]!;
  const v = traceToProjection(second.input[1]!, index, shapes);
  if (v.scale !== 1) fail('V is scaled: the fused kernel scales the scores only');

  // Replay the layouts forward from the three projections.
  const qLayout = replay(q, 'q', 'S', shapes);
  const kLayout = replay(k, 'k', 'L', shapes);
  const vLayout = replay(v, 'v', 'L', shapes);
  const scoreLayout = matmulLayout(qLayout, kLayout, 'Q·Kᵀ');
  if (!sameKinds(scoreLayout.at(-2)!, [['S']]) || !sameKinds(scoreLayout.at(-1)!, [['L']])) fail('Q·Kᵀ is not [.., query tokens, key tokens]');
  const contracted = qLayout.at(-1)!;
  if (!sameKinds(contracted, [['D']])) fail('Q·Kᵀ does not contract the head channels');
  let outLayout = matmulLayout(scoreLayout, vLayout, 'P·V');
  const prefix = outLayout.slice(0, -2).flat();
  const batch = shapeOf(q.root)[0]!;
  const kinds = prefix.map((a) => a.kind).sort().join();
  if (kinds !== (batch === 1 ? '' : 'B') && kinds !== (batch === 1 ? 'H' : 'B,H')) fail('the products are not batched over (batch, heads)');
  if (!sameKinds(outLayout.at(-1)!, [['D']])) fail('P·V does not end in the head channels');
  const heads = prefix.find((a) => a.kind === 'H')?.size ?? 1;
  const merged = [batch === 1 ? [] : ['B'], ['S'], heads === 1 ? ['D'] : ['H', 'D']];

  // Forward from P·V through the head merge to [batch, tokens, heads x channels].
  let tensor = second.output[0]!;
  for (;;) {
    if (outLayout.length === 3 && outLayout.every((axis, i) => sameKinds(axis, [merged[i]!]))) break;
    const next = index.consumers.get(tensor) ?? [];
    const users = next.filter((n) => n.opType !== 'Shape');
    if (users.length !== 1 || index.outputs.has(tensor)) fail('the head merge branches');
    const node = users[0]!;
    if (node.input[0] !== tensor || !LAYOUT_OPS.has(node.opType)) fail(`the head merge passes through ${node.opType} (${node.name})`);
    outLayout = step(node, outLayout, shapes);
    tensor = node.output[0]!;
  }
  return { query: q.root, key: k.root, value: v.root, output: tensor, heads, scale: Math.fround(scale), firstMatMul: first };
}

/** A path from a projection's output (3-D, [batch, tokens, channels]) to a product's operand. */
interface Projection {
  root: string;
  /** The nodes from the root to the operand, in execution order. */
  path: NodeProto[];
  scale: number;
}

const LAYOUT_OPS = new Set(['Reshape', 'Transpose']);

function traceToProjection(operand: string, index: GraphIndex, shapes: Map<string, TensorInfo>): Projection {
  const path: NodeProto[] = [];
  let scale = 1;
  let tensor = operand;
  for (let guard = 0; guard < 16; guard++) {
    const producer = index.producer.get(tensor);
    if (producer && LAYOUT_OPS.has(producer.opType)) {
      path.unshift(producer);
      tensor = producer.input[0]!;
      continue;
    }
    const factor = producer ? scalarFactor(producer, tensor, index, shapes) : undefined;
    if (producer && factor) {
      path.unshift(producer);
      scale *= factor.factor;
      tensor = factor.input;
      continue;
    }
    const shape = shapes.get(tensor)?.shape;
    if (!shape || shape.length !== 3) fail(`an operand does not start from a [batch, tokens, channels] projection (${tensor}: ${shape ? `[${shape}]` : 'no shape'})`);
    return { root: tensor, path, scale };
  }
  fail('the head split is longer than expected');
}

/** A Mul or Div of `output` by a constant scalar: the other input and the factor it applies. */
function scalarFactor(node: NodeProto, output: string, index: GraphIndex, shapes: Map<string, TensorInfo>): { input: string; factor: number } | undefined {
  if (node.output[0] !== output || (node.opType !== 'Mul' && node.opType !== 'Div')) return undefined;
  const constant = (name: string): number | undefined => {
    if (index.dynamic.has(name)) return undefined;
    const info = shapes.get(name);
    return info?.value && info.value.length === 1 ? info.value[0] : undefined;
  };
  const [a, b] = [node.input[0]!, node.input[1]!];
  const cb = constant(b);
  if (cb !== undefined && index.dynamic.has(a)) return { input: a, factor: node.opType === 'Mul' ? cb : 1 / cb };
  const ca = constant(a);
  if (node.opType === 'Mul' && ca !== undefined && index.dynamic.has(b)) return { input: b, factor: ca };
  return undefined;
}

/** The layout of a projection's operand: its root labelled [batch, tokens, channels], then each node applied. */
function replay(p: Projection, from: Atom['from'], tokens: 'S' | 'L', shapes: Map<string, TensorInfo>): Layout {
  const [b, t, c] = shapes.get(p.root)!.shape as [number, number, number];
  // Axes of size 1 say nothing about memory layout: they hold no atom (a batch of 1, a single head).
  const atom = (kind: Atom['kind'], size: number): Atom[] => (size === 1 ? [] : [{ kind, from, size }]);
  let layout: Layout = [atom('B', b), atom(tokens, t), atom('C', c)];
  for (const node of p.path) layout = step(node, layout, shapes);
  // Channels never split into heads are one head's channels.
  return layout.map((axis) => axis.map((a) => (a.kind === 'C' ? { ...a, kind: 'D' } : a)));
}

/** The layout after one Reshape, Transpose or scalar scaling. */
function step(node: NodeProto, layout: Layout, shapes: Map<string, TensorInfo>): Layout {
  switch (node.opType) {
    case 'Mul':
    case 'Div':
      return layout;
    case 'Transpose': {
      const perm = attrInts(node, 'perm') ?? layout.map((_, i) => layout.length - 1 - i);
      if (perm.length !== layout.length) fail(`${node.name}: a transpose of rank ${perm.length} on rank ${layout.length}`);
      return perm.map((p) => layout[p]!);
    }
    case 'Reshape': {
      const target = shapes.get(node.output[0]!)?.shape ?? fail(`no shape for ${node.output[0]}`);
      return reshapeLayout(layout, target, node.name);
    }
    default:
      fail(`${node.opType} (${node.name}) in the head split or merge`);
  }
}

/**
 * Regroups atoms into the target dims in order, splitting a channel atom C into heads H (first) and head
 * channels D when a dim needs part of it. Fails on anything that is not a split or merge of neighbouring axes.
 */
function reshapeLayout(layout: Layout, target: number[], where: string): Layout {
  const queue = layout.flat();
  const result: Layout = [];
  for (const dim of target) {
    const group: Atom[] = [];
    let size = 1;
    while (size < dim) {
      const atom = queue.shift() ?? fail(`${where}: the reshape to [${target}] needs more than its input has`);
      if (dim % (size * atom.size) === 0) {
        group.push(atom);
        size *= atom.size;
      } else if (atom.kind === 'C' && dim % size === 0 && atom.size % (dim / size) === 0) {
        const heads = dim / size;
        group.push({ kind: 'H', from: atom.from, size: heads });
        queue.unshift({ kind: 'D', from: atom.from, size: atom.size / heads });
        size = dim;
      } else {
        fail(`${where}: the reshape to [${target}] does not split or merge whole axes`);
      }
    }
    if (size !== dim) fail(`${where}: the reshape to [${target}] does not split or merge whole axes`);
    result.push(group);
  }
  if (queue.length) fail(`${where}: the reshape to [${target}] leaves axes over`);
  return result;
}

/** Batched matmul of two layouts: batch axes must hold the same kinds with the same sizes. */
function matmulLayout(a: Layout, b: Layout, what: string): Layout {
  if (a.length !== b.length || a.length < 3) fail(`${what}: operands of rank ${a.length} and ${b.length}`);
  for (let i = 0; i < a.length - 2; i++) {
    if (!sameAtoms(a[i]!, b[i]!)) fail(`${what}: batch axis ${i} differs between the operands`);
  }
  if (!sameAtoms(a.at(-1)!, b.at(-2)!)) fail(`${what}: the contracted axes differ`);
  return [...a.slice(0, -1), b.at(-1)!];
}

function sameAtoms(x: Atom[], y: Atom[]): boolean {
  return x.length === y.length && x.every((a, i) => a.kind === y[i]!.kind && a.size === y[i]!.size);
}

/** True when `axis` holds exactly these kinds, in this order. */
function sameKinds(axis: Atom[], kinds: string[][]): boolean {
  return axis.map((a) => a.kind).join() === kinds.flat().join();
}
