import * as ort from 'onnxruntime-node';
import { readdirSync } from 'node:fs';
const dir = '/work/main/models/tiny-sd/unet/.gategraph-derived/';
const threads = Number(process.argv[2] ?? 2);
const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
const f = (b: number) => ({ sample: new ort.Tensor('float32', new Float32Array(b * 4 * 16 * 16).fill(0.1), [b, 4, 16, 16]), timestep: new ort.Tensor('float32', new Float32Array(b).fill(500), [b]), encoder_hidden_states: new ort.Tensor('float32', new Float32Array(b * 77 * 128).fill(0.01), [b, 77, 128]) });
const plain = await ort.InferenceSession.create('/work/main/models/tiny-sd/unet/model.onnx', opts);
let gated!: ort.InferenceSession;
for (const g of readdirSync(dir).filter((x) => x.startsWith('gated-') && x.endsWith('.onnx'))) {
  const s = await ort.InferenceSession.create(dir + g, opts);
  if (s.inputNames.filter((n) => n.startsWith('compute_')).join() === 'compute_attn2') { gated = s; break; }
}
const cached = gated.inputNames.filter((n) => n.startsWith('cached::'));
const gfeeds = (b: number, compute: boolean) => {
  const o: any = { ...f(b), compute_attn2: new ort.Tensor('bool', [compute], []) };
  for (const c of cached) {
    const meta = (gated as any).inputMetadata.find((m: any) => m.name === c);
    const dims = meta.shape.map((d: any) => (typeof d === 'number' ? d : compute ? 1 : b));
    o[c] = new ort.Tensor('float32', new Float32Array(dims.reduce((x: number, y: number) => x * y, 1)), dims);
  }
  return o;
};
const cases: Record<string, [ort.InferenceSession, any]> = {
  'plain b2': [plain, f(2)], 'gated compute b2': [gated, gfeeds(2, true)], 'plain b1': [plain, f(1)], 'gated reuse b1': [gated, gfeeds(1, false)],
};
const t: Record<string, number[]> = {};
for (const [k, [s, feeds]] of Object.entries(cases)) { t[k] = []; for (let i = 0; i < 10; i++) await s.run(feeds, ['out_sample']); }
for (let r = 0; r < 60; r++) for (const [k, [s, feeds]] of Object.entries(cases)) {
  for (let i = 0; i < 3; i++) { const a = performance.now(); await s.run(feeds, ['out_sample']); t[k]!.push(performance.now() - a); }
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
console.log(`threads ${threads}: ` + Object.entries(t).map(([k, v]) => `${k} ${med(v).toFixed(2)}`).join(' | '));
