import { Embedder, loadEncoder } from '../native-worker/curation/embedder.ts';
const enc = await loadEncoder('/tmp/h15/run/checkpoints/step-10.safetensors');
for (const [n, size] of [[128, 32], [256, 32]]) {
  const emb = await Embedder.create(enc, n, size, { threads: 2 });
  const x = new Float32Array(n * 3 * size * size).map(() => Math.random());
  await emb.run(x);
  const t = performance.now();
  for (let i = 0; i < 3; i++) await emb.run(x);
  console.log(n, size, ((performance.now() - t) / 3 / n).toFixed(3), 'ms/img');
}
