// Prints what TGATE and DeepCache remove from a UNet export: attention modules found, MACs per forward and per
// module category, the derived graphs' MACs and kept/dropped weights, and the 25-step totals the TGATE paper
// tabulates. Numbers for the README come from here.
//   node --import tsx packages/onnx-graph/scripts/unet-report.ts <unet/model.onnx> [--px 512] [--steps 25] [--gate 10]
import { countMacs, deepFeature, deriveModel, discoverUNet, loadModel } from '../src/index.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const path = args.find((a) => a.endsWith('.onnx'));
if (!path) throw new Error('usage: unet-report.ts <unet/model.onnx> [--px 512] [--steps 25] [--gate 10]');
const px = flag('--px', 512);
const steps = flag('--steps', 25);
const gate = flag('--gate', 10);

const file = loadModel(path);
const unet = discoverUNet(file.proto);
const attn2 = unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output);
const G = (n: number) => `${(n / 1e9).toFixed(2)}G`;
const T = (n: number) => `${(n / 1e12).toFixed(3)}T`;
const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const sizes = (batch: number) => ({ batch, height: px, width: px });
const base = { baseDir: file.baseDir };

const full1 = countMacs(file.proto, sizes(1), base);
console.log(`${path}: ${unet.attention.length / 2} transformer blocks (attn1 + attn2 each), prefix "${unet.prefix.join('/')}"`);
console.log(`one forward, batch 1, ${px}x${px}: total ${G(full1.total)} = conv/linear ${G(full1.weightMacs)} + attention products ${G(full1.activationMatMul)}`);
console.log('by category:', Object.fromEntries(Object.entries(full1.byCategory).map(([k, v]) => [k, G(v)])));

const reuse = deriveModel(file.proto, { reuse: attn2 }, base);
const reuse1 = countMacs(reuse.model, sizes(1), { ...base, shapesFrom: file.proto });
console.log(`attn2 reuse graph: ${G(reuse1.total)} (conv/linear ${G(reuse1.weightMacs)}), drops ${reuse.report.removed.nodes} nodes, ${reuse.report.removed.initializers} weights = ${MB(reuse.report.removed.initializerBytes)} (${(reuse.report.removed.initializerBytes / 4 / 1e6).toFixed(1)}M fp32 params), keeps ${MB(reuse.report.kept.initializerBytes)}; inputs no longer read: ${reuse.report.droppedInputs.join(', ')}`);
for (const k of [0, 1, 2]) {
  const deep = deepFeature(unet, k);
  const shallow = deriveModel(file.proto, { reuse: [deep.tensor] }, base);
  const m = countMacs(shallow.model, sizes(1), { ...base, shapesFrom: file.proto });
  console.log(`DeepCache branch ${k}: cuts ${deep.tensor} (enters ${deep.enters.resnet}); shallow graph ${G(m.total)} (conv/linear ${G(m.weightMacs)}), keeps ${MB(shallow.report.kept.initializerBytes)} of weights`);
}
const cfgStep = 2 * full1.weightMacs;
const gated = (steps - gate) * reuse1.weightMacs;
console.log(`${steps} steps with CFG (batch 2), conv/linear MACs as the papers count: ${T(steps * cfgStep)}`);
console.log(`TGATE gate ${gate}: ${gate} CFG steps + ${steps - gate} batch-1 steps without attn2: ${T(gate * cfgStep + gated)} (conv/linear), ${T(gate * 2 * full1.total + (steps - gate) * reuse1.total)} all MACs`);
