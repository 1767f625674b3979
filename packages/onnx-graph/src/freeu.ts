// FreeU (Si et al. 2023, "FreeU: Free Lunch in Diffusion U-Net") as graph surgery, with ComfyUI's semantics
// (comfy_extras/nodes_freelunch.py): in front of every up-block concatenation cat([h, skip]) whose hidden state h
// has 4 x or 2 x model_channels channels, the first half of h's channels is scaled by b (FreeU) or by
// (b - 1) * m + 1 with m the channel mean of h normalised to 0..1 per image (FreeU_V2), and the skip goes through
// a Fourier filter that multiplies its lowest frequencies by s. ComfyUI patches every output block whose h has
// such a width (for SD-1.5: the first 7 with 1280 channels take b1/s1, the next 3 with 640 take b2/s2), not only
// the first layer of the first two stages as the paper's code does; this follows ComfyUI.
//
// The Fourier filter without DFT. ComfyUI computes real(ifft2(ifftshift(mask * fftshift(fft2(skip))))) where the
// mask is 1 except s on the centre 2 x 2 of the shifted spectrum, i.e. on the frequencies {0, -1} x {0, -1}. The
// filter is linear: skip + (s - 1) * low, with low = real(P_H skip P_W^T) and P_N the projection of length-N
// signals onto frequencies {0, -1}: P_N[a, b] = (1 + e^{-2 pi i (a - b) / N}) / N (one term when N = 1, where
// -1 = 0). With R = Re P and I = Im P (R symmetric, I antisymmetric): low = R_H skip R_W + I_H skip I_W, four
// MatMuls by N x N matrices built in the graph from the skip's shape (any latent size), all standard ops of
// opset 13+, so onnxruntime runs it on every provider and the graph stays one TGATE / DeepCache can derive from.
import { upLayers, type UpLayer } from './deepcache.ts';
import { OnnxGraphError } from './errors.ts';
import { discoverUNet } from './modules.ts';
import { cloneModel, makeValueInfo, newGraph, newModel, newNode, newTensor, TensorProto_DataType as DT, type ModelProto, type NodeProto, type TensorProto } from './proto.ts';
import { inferShapes } from './shapes.ts';
import { defaultInputShapes } from './attention-fusion.ts';

export interface FreeUSpec {
  /** 1: ComfyUI's FreeU (h scaled by b); 2: FreeU_V2 (scaled by (b - 1) * normalised channel mean + 1). */
  version: 1 | 2;
  /** Backbone factor and skip factor at the 4 x model_channels level. */
  b1: number;
  s1: number;
  /** The same at the 2 x model_channels level. */
  b2: number;
  s2: number;
}

export interface FreeUSite {
  /** Position in the up path (0 = the first layer after the mid block). */
  layer: number;
  /** The Concat output whose inputs were changed. */
  concat: string;
  /** Channels of the hidden state h. */
  channels: number;
  b: number;
  s: number;
}

export interface FreeUReport {
  /** ComfyUI's model_channels: the width of the UNet's first level. */
  modelChannels: number;
  /** The concatenations patched (those whose factors are not all 1 are changed). */
  sites: FreeUSite[];
}

export interface FreeUOptions {
  /** Folder of the model's external data (shape inference reads small constants). */
  baseDir?: string;
}

/** A copy of `model` (a UNet export or build) with FreeU in front of its up-block concatenations. */
export function applyFreeU(model: ModelProto, spec: FreeUSpec, options: FreeUOptions = {}): { model: ModelProto; report: FreeUReport } {
  for (const [name, value] of Object.entries(spec)) {
    if (name !== 'version' && !(typeof value === 'number' && Number.isFinite(value))) throw new OnnxGraphError(`FreeU: ${name} must be a finite number (got ${value})`, 'bad_spec');
  }
  const out = cloneModel(model);
  const graph = out.graph;
  if (!graph) throw new OnnxGraphError('the model has no graph', 'decode_failed');
  const opset = Number(out.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0);
  if (opset < 13) throw new OnnxGraphError(`FreeU: the graph is opset ${opset}; the surgery writes opset 13+ operators (Unsqueeze with axes as an input). Re-export the UNet with opset 14 or later`, 'bad_spec');
  const unet = discoverUNet(out);
  const layers = upLayers(unet);
  if (layers.length === 0) throw new OnnxGraphError('FreeU: this UNet has no up blocks with skip concatenations', 'unknown_module');
  const shapes = inferShapes(out, defaultInputShapes(out), options.baseDir ? { baseDir: options.baseDir } : {});
  const channelsOf = (name: string): number => {
    const info = shapes.get(name);
    if (!info || info.shape.length !== 4) throw new OnnxGraphError(`FreeU: the shape of ${name} (an up layer's input) is not known as [B, C, H, W]`, 'shape_inference');
    if (info.dtype !== DT.FLOAT) throw new OnnxGraphError(`FreeU: ${name} is not float32 (element type ${info.dtype}); convert the UNet to float32 first`, 'bad_spec');
    return info.shape[1]!;
  };
  // model_channels is the first level's width, which the last up layer works at (its hidden state is the output
  // of the up block at level 0): the same number as conv_in's output, found without knowing conv_in's name.
  const modelChannels = channelsOf(layers[layers.length - 1]!.hidden);
  const levels = new Map([
    [modelChannels * 4, { b: spec.b1, s: spec.s1 }],
    [modelChannels * 2, { b: spec.b2, s: spec.s2 }],
  ]);

  const report: FreeUReport = { modelChannels, sites: [] };
  const inserts = new Map<NodeProto, NodeProto[]>();
  const concatByOutput = new Map(graph.node.filter((n) => n.opType === 'Concat').map((n) => [n.output[0]!, n]));
  const nodeNames = new Set(graph.node.map((n) => n.name));
  for (const layer of layers) {
    const channels = channelsOf(layer.hidden);
    const factors = levels.get(channels);
    if (!factors) continue;
    const concat = concatByOutput.get(layer.concat)!;
    const scope = freshScope(`/${[...unet.prefix, unet.pathOf(concat) ?? 'up_layers', `freeu.${layer.order}`].join('/')}`, nodeNames);
    const site = new SiteBuilder(scope, opset);
    if (factors.b !== 1) concat.input[0] = site.backbone(layer, channels, factors.b, spec.version);
    if (factors.s !== 1) concat.input[1] = site.fourierFilter(layer.skip, factors.s);
    graph.initializer.push(...site.initializers);
    inserts.set(concat, site.nodes);
    report.sites.push({ layer: layer.order, concat: layer.concat, channels, b: factors.b, s: factors.s });
  }
  // Each site's nodes go right before its Concat: they read tensors made earlier and feed only it, so the node
  // list stays topologically sorted.
  graph.node = graph.node.flatMap((n) => [...(inserts.get(n) ?? []), n]);
  return { model: out, report };
}

/**
 * A model of the Fourier filter alone: input `x` [B, C, H, W] float (any size), output `y`. What the surgery
 * inserts in front of a skip, for checking it against a DFT.
 */
export function fourierFilterModel(scale: number, opset = 14): ModelProto {
  const site = new SiteBuilder('/fourier_filter', opset);
  const y = site.fourierFilter('x', scale);
  return newModel(
    newGraph({
      name: 'fourier_filter',
      node: [...site.nodes, newNode({ name: '/Identity', opType: 'Identity', input: [y], output: ['y'] })],
      initializer: site.initializers,
      input: [makeValueInfo('x', DT.FLOAT, ['batch', 'channels', 'height', 'width'])],
      output: [makeValueInfo('y', DT.FLOAT, ['batch', 'channels', 'height', 'width'])],
    }),
    opset,
  );
}

/** `scope`, or `scope_1`, `scope_2`... when a node is named inside it already (FreeU applied to a FreeU graph). */
function freshScope(scope: string, names: ReadonlySet<string>): string {
  const taken = (s: string) => [...names].some((n) => n.startsWith(`${s}/`));
  let candidate = scope;
  for (let i = 1; taken(candidate); i++) candidate = `${scope}_${i}`;
  return candidate;
}

/** Writes one site's nodes and constants, named inside `scope` as torch's exporter names nodes. */
class SiteBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly #counts = new Map<string, number>();

  constructor(
    readonly scope: string,
    readonly opset: number,
  ) {}

  /** ComfyUI's backbone scaling of h's first half of channels; returns the scaled h. */
  backbone(layer: UpLayer, channels: number, b: number, version: 1 | 2): string {
    const half = Math.floor(channels / 2);
    const h = layer.hidden;
    const first = this.op('Slice', [h, this.i64([0]), this.i64([half]), this.i64([1])]);
    const rest = this.op('Slice', [h, this.i64([half]), this.i64([channels]), this.i64([1])]);
    let factor: string;
    if (version === 1) {
      factor = this.f32(b);
    } else {
      // hidden_mean = h.mean(1) normalised by its min and max over the image, per batch item.
      const mean = this.reduce('ReduceMean', h, [1]);
      const max = this.reduce('ReduceMax', mean, [2, 3]);
      const min = this.reduce('ReduceMin', mean, [2, 3]);
      const normalised = this.op('Div', [this.op('Sub', [mean, min]), this.op('Sub', [max, min])]);
      factor = this.op('Add', [this.op('Mul', [normalised, this.f32(b - 1)]), this.f32(1)]);
    }
    return this.op('Concat', [this.op('Mul', [first, factor]), rest], [{ name: 'axis', type: 2, i: 1n }]);
  }

  /** ComfyUI's Fourier_filter(x, threshold 1, scale s) as x + (s - 1) * low (see the file comment). */
  fourierFilter(x: string, s: number): string {
    const shape = this.op('Shape', [x]);
    const [rh, ih] = this.projection(this.op('Gather', [shape, this.i64(2, [])], [{ name: 'axis', type: 2, i: 0n }]));
    const [rw, iw] = this.projection(this.op('Gather', [shape, this.i64(3, [])], [{ name: 'axis', type: 2, i: 0n }]));
    const real = this.op('MatMul', [this.op('MatMul', [rh, x]), rw]);
    const imaginary = this.op('MatMul', [this.op('MatMul', [ih, x]), iw]);
    const low = this.op('Add', [real, imaginary]);
    return this.op('Add', [x, this.op('Mul', [low, this.f32(s - 1)])]);
  }

  /**
   * Re and Im of P_N[a, b] = (1 + w e^{-2 pi i (a - b) / N}) / N for the length N (an int64 scalar), w = min(N - 1, 1):
   * R = (1 + w cos(phi)) / N, I = -w sin(phi) / N with phi = 2 pi (a - b) / N.
   */
  projection(length: string): [string, string] {
    const n = this.op('Cast', [length], [{ name: 'to', type: 2, i: BigInt(DT.FLOAT) }]);
    const positions = this.op('Cast', [this.op('Range', [this.i64(0, []), length, this.i64(1, [])])], [{ name: 'to', type: 2, i: BigInt(DT.FLOAT) }]);
    const difference = this.op('Sub', [this.op('Unsqueeze', [positions, this.i64([1])]), this.op('Unsqueeze', [positions, this.i64([0])])]);
    const phi = this.op('Div', [this.op('Mul', [difference, this.f32(2 * Math.PI)]), n]);
    const w = this.op('Min', [this.op('Sub', [n, this.f32(1)]), this.f32(1)]);
    const real = this.op('Div', [this.op('Add', [this.op('Mul', [this.op('Cos', [phi]), w]), this.f32(1)]), n]);
    const imaginary = this.op('Div', [this.op('Mul', [this.op('Sin', [phi]), this.op('Neg', [w])]), n]);
    return [real, imaginary];
  }

  /** A reduction over `axes` keeping them: the axes are an attribute before opset 18, an input from 18 on. */
  reduce(op: 'ReduceMean' | 'ReduceMax' | 'ReduceMin', x: string, axes: number[]): string {
    const keep = { name: 'keepdims', type: 2, i: 1n };
    if (this.opset >= 18) return this.op(op, [x, this.i64(axes)], [keep]);
    return this.op(op, [x], [{ name: 'axes', type: 7, ints: axes.map(BigInt) }, keep]);
  }

  op(opType: string, input: string[], attribute: Array<{ name: string; type: number; i?: bigint; ints?: bigint[] }> = []): string {
    const base = `${this.scope}/${opType}`;
    const seen = this.#counts.get(base) ?? 0;
    this.#counts.set(base, seen + 1);
    const name = seen === 0 ? base : `${base}_${seen}`;
    const output = `${name}_output_0`;
    this.nodes.push(newNode({ name, opType, input, output: [output], attribute }));
    return output;
  }

  f32(value: number): string {
    return this.constant(DT.FLOAT, [], new Uint8Array(Float32Array.of(value).buffer));
  }

  /** int64 constant: a list (1-D) or, with dims [], a scalar. */
  i64(values: number[] | number, dims?: number[]): string {
    const list = typeof values === 'number' ? [values] : values;
    return this.constant(DT.INT64, dims ?? [list.length], new Uint8Array(BigInt64Array.from(list.map(BigInt)).buffer));
  }

  constant(dataType: number, dims: number[], rawData: Uint8Array<ArrayBuffer>): string {
    const name = `${this.scope}/constant_${this.initializers.length}`;
    this.initializers.push(newTensor({ name, dataType, dims: dims.map(BigInt), rawData }));
    return name;
  }
}
