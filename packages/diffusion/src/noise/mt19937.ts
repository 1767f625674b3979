/**
 * MT19937, the 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), as seeded by PyTorch's CPU generator
 * and by C++'s std::mt19937: state[0] = seed (low 32 bits), state[i] = 1812433253 * (state[i-1] ^
 * (state[i-1] >>> 30)) + i. `torch.manual_seed(s)` keeps only `s mod 2^32` for this engine.
 */
const N = 624;
const M = 397;

export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed32: number) {
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1]! ^ (s[i - 1]! >>> 30);
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** Next 32-bit output as an unsigned integer. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let k = 0; k < N; k++) {
      const y = (s[k]! & 0x80000000) | (s[(k + 1) % N]! & 0x7fffffff);
      s[k] = s[(k + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }
}
