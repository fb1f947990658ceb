// The one seeded PRNG of the worker (xoshiro128**): initialization, masks, mixing and augmentation are
// reproducible, and its state can be saved in a checkpoint.
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | Uint32Array) {
    if (typeof seed !== 'number') {
      this.s = Uint32Array.from(seed);
      return;
    }
    // splitmix32 spreads a small seed over the 128-bit state.
    this.s = new Uint32Array(4);
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x21f0aaad);
      t = Math.imul(t ^ (t >>> 15), 0x735a2d97);
      this.s[i] = (t ^ (t >>> 15)) >>> 0;
    }
  }

  /** The state, to save and later restore with `new Rng(state)`. */
  state(): Uint32Array {
    return Uint32Array.from(this.s);
  }

  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi); [0, 1) by default. */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.float();
  }

  /** Integer in [0, a), or in [a, b) when b is given. */
  int(a: number, b?: number): number {
    const [lo, hi] = b === undefined ? [0, a] : [a, b];
    return lo + Math.floor(this.float() * (hi - lo));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** Standard normal (Box-Muller; one value per call, so the state alone says what comes next). */
  normal(): number {
    const u = 1 - this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }

  /** Normal(0, std) truncated to [-2, 2] (absolute bounds, as timm's trunc_normal_ with its defaults). */
  truncNormal(std: number): number {
    for (;;) {
      const x = this.normal() * std;
      if (x >= -2 && x <= 2) return x;
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
