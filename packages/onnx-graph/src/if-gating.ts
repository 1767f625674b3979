// The design kept for attention caching (README "Design measurement": separate capture + reuse sessions hold
// two copies of the weights under ORT's default options, this holds one at the same step times on SD-1.5):
// ONE graph in which every chosen attention module sits in an ONNX `If` node switched by a boolean graph
// input. then_branch = the module's own nodes (compute); else_branch = Identity of a cached-value graph input.
// One session, one copy of the weights; the If output is always a graph output, so the same call also
// captures. The cost: every cached input must be fed on every call (a dummy on compute steps), and ORT runs
// each branch as a subgraph (its own execution frame per call).
import { OnnxGraphError } from './errors.ts';
import { nodeInputs } from './graph-index.ts';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  cloneModel,
  create,
  makeValueInfo,
  newGraph,
  newNode,
  TensorProto_DataType,
  type ModelProto,
  type NodeProto,
} from './proto.ts';
import type { AttentionModule, UNetStructure } from './modules.ts';
import { signaturesOf, type TensorSignature } from './derive.ts';

export interface IfGatedModel {
  model: ModelProto;
  /** Boolean graph input: true = compute the modules, false = pass the cached inputs through. */
  condition: string;
  /** Per module: its output (always a graph output) and the graph input that feeds it when cached. */
  gates: Array<{ module: string; output: string; cachedInput: TensorSignature }>;
}

export function buildIfGated(model: ModelProto, unet: UNetStructure, modules: AttentionModule[], options: { baseDir?: string; condition?: string } = {}): IfGatedModel {
  const condition = options.condition ?? 'compute_attention';
  const out = cloneModel(model);
  const graph = out.graph!;
  const sigs = signaturesOf(model, modules.map((m) => m.output), options.baseDir ? { baseDir: options.baseDir } : {});
  const gates: IfGatedModel['gates'] = [];
  for (const module of modules) {
    const inside = (n: NodeProto) => {
      const p = unet.pathOf(n);
      return p !== undefined && (p === module.path || p.startsWith(`${module.path}/`));
    };
    // unet was discovered on the input model; match nodes by name in the clone.
    const names = new Set(model.graph!.node.filter(inside).map((n) => n.name));
    const positions = graph.node.map((n, i) => (names.has(n.name) ? i : -1)).filter((i) => i >= 0);
    const body = positions.map((i) => graph.node[i]!);
    const last = positions[positions.length - 1]!;
    const between = graph.node.slice(positions[0]!, last).filter((n) => !names.has(n.name));
    if (between.some((n) => nodeInputs(n).includes(module.output))) {
      throw new OnnxGraphError(`cannot gate ${module.path}: a node outside it reads its output before the module ends`, 'unknown_module');
    }
    const sig = sigs.get(module.output)!;
    const cachedName = `cached::${module.output}`;
    const elseOut = `${module.output}::else`;
    const thenOut = `${module.output}::then`;
    const producer = body.find((n) => n.output.includes(module.output))!;
    producer.output = producer.output.map((o) => (o === module.output ? thenOut : o));
    const thenBranch = newGraph({ name: `${module.path}/then`, node: body, output: [makeValueInfo(thenOut, sig.elemType)] });
    const elseBranch = newGraph({
      name: `${module.path}/else`,
      node: [newNode({ name: `${module.path}/cached/Identity`, opType: 'Identity', input: [cachedName], output: [elseOut] })],
      output: [makeValueInfo(elseOut, sig.elemType)],
    });
    const ifNode = newNode({
      name: `/${[...unet.prefix, module.path].join('/')}/If`,
      opType: 'If',
      input: [condition],
      output: [module.output],
      attribute: [
        create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: thenBranch }),
        create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: elseBranch }),
      ],
    });
    graph.node = [...graph.node.slice(0, last + 1).filter((n) => !names.has(n.name)), ifNode, ...graph.node.slice(last + 1)];
    const cachedInput = { ...sig, name: cachedName };
    graph.input.push(makeValueInfo(cachedName, sig.elemType, sig.dims));
    graph.output.push(makeValueInfo(module.output, sig.elemType, sig.dims));
    gates.push({ module: module.path, output: module.output, cachedInput });
  }
  graph.input.push(makeValueInfo(condition, TensorProto_DataType.BOOL, []));
  return { model: out, condition, gates };
}
