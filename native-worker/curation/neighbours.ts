// Exact k-nearest neighbours by cosine similarity, in tiles: onnxruntime multiplies a block of unit
// vectors by the transpose of another (MLAS sgemm, far faster than JS loops) and each row keeps its k best
// in a small sorted list. Cost is n^2 * d multiply-adds: 10k x 320 dims is ~3e10 (seconds), 100k is ~3e12
// (minutes on a laptop CPU); past a few hundred thousand images an approximate index (HNSW, IVF-PQ) would
// have to replace it.
import { UnionFind } from '../data/curate/dupes.ts';
import { Graph } from '../engine/ir.ts';
import * as F from '../engine/functional.ts';
import { CompiledGraph, tensor } from '../engine/runtime.ts';

export interface Neighbours {
  k: number;
  /** (n, k) row indices of each row's nearest others, nearest first. */
  index: Int32Array;
  /** (n, k) their cosine similarities. */
  similarity: Float32Array;
}

/** Rows of x (n, d) scaled to unit length (zero rows stay zero). */
export function unitRows(x: Float32Array, d: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length / d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) out[i * d + j] = x[i * d + j]! * inv;
  }
  return out;
}

const TILE = 1024;

/** The k nearest other rows of every row of unit vectors u (n, d). */
export async function nearestNeighbours(u: Float32Array, d: number, k: number, progress?: (done: number, total: number) => void): Promise<Neighbours> {
  const n = u.length / d;
  k = Math.min(k, n - 1);
  const index = new Int32Array(n * k).fill(-1);
  const similarity = new Float32Array(n * k).fill(-Infinity);
  const g = new Graph('similarity');
  const a = g.input('a', 'float32', [TILE, d]);
  const b = g.input('b', 'float32', [TILE, d]);
  g.output(F.gemm(a, b, null, false, true), 'sim');
  const session = await CompiledGraph.create(g, { provider: 'cpu' });
  const tile = (from: number) => {
    const t = new Float32Array(TILE * d);
    t.set(u.subarray(from * d, Math.min(n, from + TILE) * d));
    return tensor('float32', t, [TILE, d]);
  };
  try {
    for (let r0 = 0; r0 < n; r0 += TILE) {
      const rows = tile(r0);
      for (let c0 = 0; c0 < n; c0 += TILE) {
        const sim = (await session.run({ a: rows, b: tile(c0) })).sim!.data as Float32Array;
        for (let r = r0; r < Math.min(n, r0 + TILE); r++) {
          const line = sim.subarray((r - r0) * TILE, (r - r0 + 1) * TILE);
          for (let c = c0; c < Math.min(n, c0 + TILE); c++) if (c !== r) keep(index, similarity, r * k, k, c, line[c - c0]!);
        }
      }
      progress?.(Math.min(n, r0 + TILE), n);
    }
  } finally {
    await session.release();
  }
  return { k, index, similarity };
}

/** Inserts (c, s) into the row's list (sorted by similarity, descending) when it beats the last. */
function keep(index: Int32Array, sim: Float32Array, at: number, k: number, c: number, s: number): void {
  if (s <= sim[at + k - 1]!) return;
  let p = at + k - 1;
  while (p > at && sim[p - 1]! < s) {
    sim[p] = sim[p - 1]!;
    index[p] = index[p - 1]!;
    p--;
  }
  sim[p] = s;
  index[p] = c;
}

/** Groups (connected components, size >= 2) of rows whose neighbour similarity is at least `threshold`. */
export function similarGroups(nb: Neighbours, threshold: number): number[][] {
  const n = nb.index.length / nb.k;
  const sets = new UnionFind(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < nb.k && nb.similarity[i * nb.k + j]! >= threshold; j++) sets.union(i, nb.index[i * nb.k + j]!);
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const root = sets.find(i);
    const g = groups.get(root);
    if (g) g.push(i);
    else groups.set(root, [i]);
  }
  return [...groups.values()].filter((g) => g.length > 1);
}
