// A balanced Fashion-MNIST slice for experiments (docs/experiments.md): the first N training and M test
// images of every class as PNGs under DIR with a manifest, for `cnx pretrain|finetune --manifest`.
// usage: node --import tsx test/bench/fashion-slice.ts DIR TRAIN_PER_CLASS TEST_PER_CLASS
import { resolve } from 'node:path';
import { FASHION, fashionManifest, haveFashion } from '../helpers/fashion.ts';

const [dir, train, test] = process.argv.slice(2);
if (!dir || !(Number(train) > 0) || !(Number(test) > 0)) {
  console.error('usage: fashion-slice.ts DIR TRAIN_PER_CLASS TEST_PER_CLASS');
  process.exit(2);
}
if (!haveFashion()) {
  console.error(`${FASHION} not found; apt-get install dataset-fashion-mnist`);
  process.exit(1);
}
console.log(await fashionManifest(resolve(dir), Number(train), Number(test)));
