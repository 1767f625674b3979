/**
 * `torch.randn(shape, generator=torch.manual_seed(seed))` on the CPU, float32, reproduced bit for bit as
 * PyTorch computes it on x86-64 with AVX2 (ComfyUI always draws its noise on the CPU). Verified against
 * PyTorch 1.13.1 (Linux, GCC build; test/fixtures/make_noise_refs.py); the kernel is unchanged in the 2.x
 * sources. Builds by another compiler (MSVC on Windows) may fuse multiply-adds differently: unverified.
 *
 * What torch does (aten/src/ATen/native/cpu/DistributionTemplates.h, normal_kernel):
 * - Engine: MT19937 seeded with `seed mod 2^32`.
 * - Tensors of >= 16 elements: first fill every element with a uniform u = (mt() & 0xFFFFFF) / 2^24
 *   (24 random bits, in [0, 1)). Then, for each whole block of 16, Box-Muller pairs element j with j + 8
 *   (j = 0..7): u1 = 1 - x[j] (in (0, 1]), u2 = x[j + 8], r = sqrt(-2 ln u1), theta = 2 pi u2,
 *   x[j] = r cos theta, x[j + 8] = r sin theta, all in float32. If the size is not a multiple of 16, the
 *   last 16 elements are refilled with 16 fresh uniforms and transformed again as one block (so they
 *   overlap the previous block, and 16 more engine outputs are consumed).
 *   On AVX2 the float32 log/sin/cos are Cephes polynomials (see float32-math.ts); other CPUs (ARM, no
 *   AVX2) use libm's logf/cosf/sinf and differ in the last bits of ~40% of the values (|diff| < 2e-6).
 * - Tensors of < 16 elements: each element is an independent double-precision Box-Muller draw
 *   (u = 53 bits from two engine outputs, hi word first: ((hi & 0x1FFFFF) * 2^32 + lo) / 2^53;
 *   u1 then u2; r = sqrt(-2 ln(1 - u2)), theta = 2 pi u1; returns r cos theta and caches r sin theta in the
 *   generator for the next small draw), cast to float32.
 */
import { Mt19937 } from './mt19937.ts';
import { logf32, sincosf32 } from './float32-math.ts';

const f = Math.fround;
const TWO_PI_F32 = f(2 * Math.PI);
const INV_2_24 = 1 / 16777216;
const INV_2_53 = 1 / 9007199254740992;

export class TorchCpuNormal {
  private readonly engine: Mt19937;
  /** torch's `next_double_normal_sample`: the sin half of the last small-tensor Box-Muller pair. */
  private cachedDoubleNormal: number | undefined;
  private readonly sc = new Float64Array(2);

  constructor(seed: bigint) {
    this.engine = new Mt19937(Number(BigInt.asUintN(32, seed)));
  }

  /** Fills `out` (length = the tensor's element count) the way torch.randn fills a float32 tensor. */
  fill(out: Float32Array): void {
    const n = out.length;
    if (n >= 16) this.fillLarge(out);
    else for (let i = 0; i < n; i++) out[i] = this.nextDoubleNormal();
  }

  private uniform24(): number {
    return (this.engine.nextUint32() & 0xffffff) * INV_2_24;
  }

  private fillLarge(d: Float32Array): void {
    const n = d.length;
    for (let i = 0; i < n; i++) d[i] = this.uniform24();
    for (let i = 0; i + 16 <= n; i += 16) this.boxMuller16(d, i);
    if (n % 16 !== 0) {
      const start = n - 16;
      for (let i = 0; i < 16; i++) d[start + i] = this.uniform24();
      this.boxMuller16(d, start);
    }
  }

  private boxMuller16(d: Float32Array, o: number): void {
    const sc = this.sc;
    for (let j = 0; j < 8; j++) {
      const u1 = f(1 - d[o + j]!);
      const u2 = d[o + j + 8]!;
      const radius = f(Math.sqrt(f(-2 * logf32(u1))));
      sincosf32(f(TWO_PI_F32 * u2), sc);
      d[o + j] = f(radius * sc[1]!);
      d[o + j + 8] = f(radius * sc[0]!);
    }
  }

  private uniform53(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    return ((hi & 0x1fffff) * 4294967296 + lo) * INV_2_53;
  }

  private nextDoubleNormal(): number {
    if (this.cachedDoubleNormal !== undefined) {
      const v = this.cachedDoubleNormal;
      this.cachedDoubleNormal = undefined;
      return v;
    }
    const u1 = this.uniform53();
    const u2 = this.uniform53();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.cachedDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}
