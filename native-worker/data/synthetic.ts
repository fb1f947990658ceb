// A synthetic image task that needs no files: four texture classes (horizontal, vertical and diagonal
// stripes, checkerboard) with random frequency, phase, colour and noise. Used by `cnx demo` and tests.
import type { Rng } from '../nn/random.ts';

export const TEXTURE_CLASSES = ['horizontal', 'vertical', 'diagonal', 'checkerboard'] as const;

/** A batch of normalized images (N, 3, S, S) and their labels. */
export function textureBatch(rng: Rng, n: number, size: number): { image: Float32Array; labels: number[] } {
  const image = new Float32Array(n * 3 * size * size);
  const labels: number[] = [];
  for (let s = 0; s < n; s++) {
    const label = rng.int(TEXTURE_CLASSES.length);
    labels.push(label);
    const freq = (2 * Math.PI) / (4 + rng.uniform() * 4);
    const phase = rng.uniform() * 2 * Math.PI;
    const colour = [0, 1, 2].map(() => 0.5 + rng.uniform());
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const u = label === 0 ? y : label === 1 ? x : label === 2 ? x + y : 0;
        const wave = label === 3 ? Math.sign(Math.sin(freq * x + phase) * Math.sin(freq * y + phase)) : Math.sin(freq * u + phase);
        for (let c = 0; c < 3; c++) image[((s * 3 + c) * size + y) * size + x] = wave * colour[c]! + 0.15 * rng.normal();
      }
    }
  }
  return { image, labels };
}
