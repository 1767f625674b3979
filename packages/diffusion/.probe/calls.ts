// Per-call timing of the tiny-sd UNet variants (plain / If-gated / shallow), threads 1 and 2, out_sample only.
import * as ort from 'onnxruntime-node';
import { readdirSync, readFileSync } from 'node:fs';
const dir = '/work/main/models/tiny-sd/unet/.gategraph-derived/';
const N = 80;
async function time(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>) {
  for (let i = 0; i < 8; i++) await s.run(feeds, ['out_sample']);
  const t: number[] = [];
  for (let i = 0; i < N; i++) { const a = performance.now(); await s.run(feeds, ['out_sample']); t.push(performance.now() - a); }
  t.sort((a, b) => a - b); return t[N >> 1]!.toFixed(2);
}
const f = (b: number) => ({ sample: new ort.Tensor('float32', new Float32Array(b * 4 * 16 * 16).fill(0.1), [b, 4, 16, 16]), timestep: new ort.Tensor('float32', new Float32Array(b).fill(500), [b]), encoder_hidden_states: new ort.Tensor('float32', new Float32Array(b * 77 * 128).fill(0.01), [b, 77, 128]) });
for (const threads of [1, 2]) {
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const plain = await ort.InferenceSession.create('/work/main/models/tiny-sd/unet/model.onnx', opts);
  const line = [`threads ${threads}: plain b1 ${await time(plain, f(1))} b2 ${await time(plain, f(2))}`];
  for (const g of readdirSync(dir).filter((x) => x.startsWith('gated-') && x.endsWith('.onnx'))) {
    const s = await ort.InferenceSession.create(dir + g, opts);
    const conds = s.inputNames.filter((n) => n.startsWith('compute_'));
    if (conds.join() !== 'compute_attn2') continue;
    const cached = s.inputNames.filter((n) => n.startsWith('cached::'));
    const feeds = (b: number, compute: boolean) => {
      const o: any = { ...f(b), compute_attn2: new ort.Tensor('bool', [compute], []) };
      for (const c of cached) {
        const meta = (s as any).inputMetadata.find((m: any) => m.name === c);
        const dims = meta.shape.map((d: any) => (typeof d === 'number' ? d : compute ? 1 : b));
        o[c] = new ort.Tensor('float32', new Float32Array(dims.reduce((x: number, y: number) => x * y, 1)), dims);
      }
      return o;
    };
    line.push(`gated compute b2 ${await time(s, feeds(2, true))} b1 ${await time(s, feeds(1, true))} reuse b1 ${await time(s, feeds(1, false))}`);
    break;
  }
  console.log(line.join(' | '));
}
