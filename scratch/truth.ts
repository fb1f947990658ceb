import { writeFileSync } from 'node:fs';
import { noisyFashion } from '../test/helpers/noisy-fashion.ts';
const t = performance.now();
const s = await noisyFashion('/tmp/h15/data', 10000, 0.05, 1);
writeFileSync('/tmp/h15/data/truth.json', JSON.stringify(s.items.map((x) => x.flipped)));
console.log('slice s', (performance.now() - t) / 1000);
