// One recipe resolver: `cnx pretrain|finetune|eval` and the Train form give the same job config for the same
// choices (kinds, V1/V2, epochs and steps, recipes, values set by hand), and the resolver's rules hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJobConfig } from '../../common/job.ts';
import { SHORT_RECIPE, finetuneRecipe } from '../../common/recipes.ts';
import { resolveJob } from '../../common/resolve-job.ts';
import { type TrainValues, cliJobRequest } from '../../native-worker/cli/train-options.ts';
import { type DatasetFacts, type TrainForm, defaultForm, formRequest } from '../../renderer/lib/job-form.ts';

const facts: DatasetFacts = { name: 'fmnist', classes: 10, trainImages: 54_000, labeledTrain: 54_000, val: 6000, test: 10_000 };
const manifestFacts = { classes: 10, splits: { train: 54_000, val: 6000, test: 10_000 } };
const paths = { runDir: '/workspace/runs/new', manifest: '/workspace/runs/new/manifest.json' };

interface Case {
  kind: TrainForm['kind'];
  version: 1 | 2;
  variant: TrainForm['variant'];
  unit: 'steps' | 'epochs';
  length: number;
  recipe?: TrainForm['recipe'];
  set?: { lr?: number; weightDecay?: number; mixup?: number; randAugment?: string; padCrop?: number; evalEvery?: number; emaDecay?: number };
}

const CASES: Case[] = [
  { kind: 'pretrain', version: 2, variant: 'atto', unit: 'epochs', length: 800 },
  { kind: 'pretrain', version: 1, variant: 'tiny', unit: 'steps', length: 500, set: { lr: 1e-3 } },
  { kind: 'finetune', version: 2, variant: 'atto', unit: 'epochs', length: 2 },
  { kind: 'finetune', version: 2, variant: 'atto', unit: 'epochs', length: 600 },
  { kind: 'finetune', version: 1, variant: 'tiny', unit: 'epochs', length: 300 },
  { kind: 'finetune', version: 1, variant: 'atto', unit: 'steps', length: 1000, set: { weightDecay: 0.1, mixup: 0.2, evalEvery: 100, emaDecay: 0.999 } },
  { kind: 'finetune', version: 2, variant: 'base', unit: 'steps', length: 50_000, recipe: 'short', set: { randAugment: 'rand-m7-mstd0.5' } },
  { kind: 'finetune', version: 1, variant: 'small', unit: 'epochs', length: 2, set: { padCrop: 4, randAugment: 'none' } },
  { kind: 'finetune', version: 2, variant: 'nano', unit: 'epochs', length: 3, recipe: 'paper' },
  { kind: 'eval', version: 2, variant: 'atto', unit: 'epochs', length: 1 },
];

const WEIGHTS = '/ckpt/w.safetensors';

function viaForm(c: Case) {
  const f: TrainForm = { ...defaultForm(c.kind, c.variant), version: c.version, dataset: 'fmnist', inputSize: 64, batchSize: 64, lengthUnit: c.unit, length: c.length, recipe: c.recipe ?? 'auto', ...c.set };
  if (c.kind === 'eval') f.init = { source: 'file', path: WEIGHTS };
  return resolveJob(formRequest(f, facts)).config;
}

function viaCli(c: Case) {
  const v: TrainValues = {
    arch: `${c.version === 2 ? 'convnextv2' : 'convnext'}_${c.variant}`, size: '64', batch: '64', seed: '0', workers: '2', split: 'val', device: 'auto', recipe: c.recipe ?? 'auto',
    [c.unit]: String(c.length),
    ...(c.set?.lr !== undefined ? { lr: String(c.set.lr) } : {}),
    ...(c.set?.weightDecay !== undefined ? { 'weight-decay': String(c.set.weightDecay) } : {}),
    ...(c.set?.mixup !== undefined ? { mixup: String(c.set.mixup) } : {}),
    ...(c.set?.randAugment !== undefined ? { aa: c.set.randAugment } : {}),
    ...(c.set?.padCrop !== undefined ? { 'pad-crop': String(c.set.padCrop) } : {}),
    ...(c.set?.evalEvery !== undefined ? { 'eval-every': String(c.set.evalEvery) } : {}),
    ...(c.set?.emaDecay !== undefined ? { ema: String(c.set.emaDecay) } : {}),
    ...(c.kind === 'eval' ? { weights: WEIGHTS } : {}),
  };
  return resolveJob(cliJobRequest(c.kind, v, manifestFacts, paths)).config;
}

test('the CLI and the Train form resolve the same choices to the same job config', () => {
  for (const c of CASES) {
    const form = viaForm(c);
    assert.deepEqual(viaCli(c), form, JSON.stringify(c));
    parseJobConfig(form);
  }
});

test('the short-run recipe is chosen under a tenth of the paper schedule, and for V1 models the V1 recipe', () => {
  const at = (arch: string, epochs: number) => resolveJob({ ...formRequest({ ...defaultForm('finetune'), length: epochs }, facts), arch });
  // atto's paper schedule is 600 epochs: under 60 is short.
  assert.equal(at('convnextv2_atto', 59).recipe, 'short');
  assert.equal(at('convnextv2_atto', 60).recipe, 'paper');
  // base's is 100: 10 epochs already gets its recipe.
  assert.equal(at('convnextv2_base', 10).recipe, 'paper');
  const v1 = at('convnext_tiny', 300);
  assert.equal(v1.recipe, 'paper');
  assert.match(v1.reason, /V1 paper's supervised recipe/);
  assert.equal(v1.config.optim!.lr, (finetuneRecipe('convnext_tiny').baseLr * 32) / 256);
  assert.equal(v1.config.optim!.layerDecay, 1);
  const short = at('convnextv2_atto', 2);
  const o = short.config.optim!;
  assert.deepEqual([o.lr, o.weightDecay, o.labelSmoothing, o.mixup, o.cutmix, o.emaDecay], [(SHORT_RECIPE.baseLr * 32) / 256, 0.05, 0, 0, 0, null]);
  // 2 epochs of 1687 steps: warmup is the recipe's 1 epoch, capped at a tenth of the run.
  assert.equal(o.warmupSteps, Math.floor(o.totalSteps / 10));
  assert.equal(short.config.model.dropPathRate, 0);
  assert.deepEqual(short.config.data.augment, { randAugment: null, reprob: 0, scale: [0.35, 1] });
  assert.deepEqual(parseJobConfig(short.config).data.augment.hflip, 0.5, 'what the recipe leaves out takes the kind\'s default');
  assert.throws(() => at('convnextv2_small', 2), /no small model|small/);
  assert.equal(short.values.lr!.source, 'recipe');
});
