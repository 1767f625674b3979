/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the Random123
 * reference): a counter-based generator, output = bijection(counter, key) after 10 rounds, only 32-bit
 * integer arithmetic. Round: (hi0, lo0) = mulhilo(0xD2511F53, c0), (hi1, lo1) = mulhilo(0xCD9E8D57, c2),
 * c' = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]; between rounds the key is bumped by
 * (0x9E3779B9, 0xBB67AE85) mod 2^32.
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 (the low half is Math.imul). */
function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff, aHi = a >>> 16;
  const bLo = b & 0xffff, bHi = b >>> 16;
  const lolo = aLo * bLo;
  const mid1 = aHi * bLo;
  const mid2 = aLo * bHi;
  const carry = ((lolo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aHi * bHi + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/** Philox4x32-10 of counter (c0..c3) under key (k0, k1); writes 4 uint32 words into `out`. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

const TWO_26 = 67108864;
const INV_2_53 = 1 / 9007199254740992;

/**
 * Standard normals from Philox4x32-10, keyed by the 64-bit seed (k0 = low word, k1 = high word).
 * Block n (n = 0, 1, 2, ... over the generator's life) is Philox(counter = [n mod 2^32, n / 2^32, 0, 0]) =
 * words w0..w3. Two 53-bit uniforms: u1 = ((w0 >>> 5) * 2^26 + (w1 >>> 6) + 1) / 2^53 in (0, 1] and
 * u2 = ((w2 >>> 5) * 2^26 + (w3 >>> 6)) / 2^53 in [0, 1). Box-Muller in float64: r = sqrt(-2 ln u1),
 * z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), each rounded to float32; z0 then z1 are the next two values of the
 * stream. Successive draws continue the stream (an unused z1 is kept), so draws of a and b elements equal one
 * draw of a + b. float64 log/cos/sin are those of the JS engine (V8's fdlibm port, the same on every platform).
 */
export class PhiloxNormal {
  private readonly k0: number;
  private readonly k1: number;
  private block = 0;
  private pending: number | undefined;
  private readonly words = new Uint32Array(4);

  constructor(seed: bigint) {
    const s = BigInt.asUintN(64, seed);
    this.k0 = Number(s & 0xffffffffn);
    this.k1 = Number(s >> 32n);
  }

  fill(out: Float32Array): void {
    let i = 0;
    const n = out.length;
    if (n > 0 && this.pending !== undefined) {
      out[i++] = this.pending;
      this.pending = undefined;
    }
    const w = this.words;
    while (i < n) {
      const b = this.block++;
      philox4x32(b >>> 0, Math.floor(b / 4294967296) >>> 0, 0, 0, this.k0, this.k1, w);
      const u1 = ((w[0]! >>> 5) * TWO_26 + (w[1]! >>> 6) + 1) * INV_2_53;
      const u2 = ((w[2]! >>> 5) * TWO_26 + (w[3]! >>> 6)) * INV_2_53;
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[i++] = r * Math.cos(theta);
      const z1 = Math.fround(r * Math.sin(theta));
      if (i < n) out[i++] = z1;
      else this.pending = z1;
    }
  }
}
