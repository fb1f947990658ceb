// Seeds for data work. Every random decision is derived from (seed, epoch, sample index, ...) through a
// hash, never from shared generator state, so results do not depend on thread timing.

/** Hashes integers to a 32-bit seed (murmur3's finaliser over a running mix). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Split numbers above 2^32 (e.g. large seeds) into two words so nothing is silently dropped.
    for (const w of [p >>> 0, Math.floor(p / 4294967296) >>> 0]) {
      h = Math.imul(h ^ w, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}
