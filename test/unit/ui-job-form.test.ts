// The training form: the recipe numbers it resolves to (the same rules as `cnx pretrain|finetune`), the
// problems it reports and on which field, and the runs.create request it builds, which the service's own
// job config parser must accept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SystemInfo } from '../../common/api.ts';
import { parseJobConfig } from '../../common/job.ts';
import { PRETRAIN_RECIPE, finetuneRecipe } from '../../common/recipes.ts';
import { type DatasetFacts, type TrainForm, buildConfig, buildRunCreate, checkForm, defaultForm, formFieldOf, resolve } from '../../renderer/lib/job-form.ts';

const facts: DatasetFacts = { name: 'fmnist', classes: 10, trainImages: 1000, labeledTrain: 1000, val: 200, test: 0 };
const form = (over: Partial<TrainForm> = {}): TrainForm => ({ ...defaultForm('pretrain'), dataset: 'fmnist', ...over });
const errorsOf = (f: TrainForm, fx: DatasetFacts | null = facts, sys: SystemInfo | null = null) => checkForm(f, fx, sys).filter((p) => p.severity === 'error');

test('pretraining resolves to the paper: lr = 1.5e-4 x batch / 256, 40 warmup epochs capped at a tenth of the run', () => {
  const r = resolve(form({ batchSize: 64, lengthUnit: 'epochs', length: 800 }), facts);
  assert.equal(r.arch, 'convnextv2_atto');
  assert.equal(r.stepsPerEpoch, 15);
  assert.equal(r.steps, 12_000);
  assert.equal(r.lr, (PRETRAIN_RECIPE.baseLr * 64) / 256);
  assert.equal(r.warmupSteps, 600);
  assert.equal(r.checkpointEvery, 1200);
  // A short run: warmup is capped at a tenth of it.
  assert.equal(resolve(form({ lengthUnit: 'steps', length: 50 }), facts).warmupSteps, 5);
});

test('fine-tuning a paper-length run takes the variant recipe (tiny: 8e-4 base lr, layer decay 0.9, mixup 0.8, cutmix 1.0)', () => {
  const f = { ...defaultForm('finetune', 'tiny'), dataset: 'fmnist' };
  const r = finetuneRecipe('convnextv2_tiny');
  const res = resolve({ ...f, batchSize: 128 }, facts);
  assert.equal(res.recipe, 'paper');
  const v = (k: string) => res.values[k]!.value;
  assert.deepEqual([v('layerDecay'), v('mixup'), v('cutmix'), v('dropPath'), v('labelSmoothing')], [r.layerDecay, r.mixup, r.cutmix, r.dropPath, r.labelSmoothing]);
  assert.equal(res.lr, (8e-4 * 128) / 256);
  assert.equal(f.length, 300);
});

test('a short fine-tune gets the short-run recipe, says why, and a value set by hand wins', () => {
  const f = { ...defaultForm('finetune'), dataset: 'fmnist', batchSize: 64, length: 4, weightDecay: 0.1 };
  const r = resolve(f, facts);
  assert.equal(r.recipe, 'short');
  assert.match(r.reason, /4 epochs is under a tenth of the ConvNeXt V2 paper's fine-tuning recipe's 600/);
  assert.deepEqual(r.values.weightDecay, { value: 0.1, source: 'user' });
  assert.deepEqual(r.values.labelSmoothing, { value: 0, source: 'recipe' });
  assert.deepEqual(r.values['augment.randAugment'], { value: null, source: 'recipe' });
  const cfg = buildConfig(f, facts);
  assert.deepEqual(cfg.data.augment, { randAugment: null, reprob: 0, scale: [0.35, 1] });
  assert.equal(resolve({ ...f, recipe: 'paper' }, facts).values['augment.randAugment']!.value, 'rand-m9-mstd0.5-inc1');
});

test('evaluating every N steps without the eval split is an error that offers the fixes', () => {
  const f = { ...defaultForm('finetune'), dataset: 'fmnist', evalEvery: 10 };
  const on = Object.fromEntries(errorsOf(f, { ...facts, val: 0, test: 100 }).map((p) => [p.field, p.message]));
  assert.match(on.evalEvery!, /no val images to evaluate on: split some off \(cnx dataset split fmnist --val 0\.1\), or evaluate on the test split/);
  assert.deepEqual(errorsOf({ ...f, evalSplit: 'test' }, { ...facts, val: 0, test: 100 }), []);
});

test('a valid form has no errors and becomes a request the job config parser accepts', () => {
  const f = form({ inputSize: 64, batchSize: 16, lengthUnit: 'steps', length: 20, maskRatio: 0.6 });
  assert.deepEqual(errorsOf(f), []);
  const req = buildRunCreate(f, facts);
  assert.equal(req.dataset, 'fmnist');
  assert.equal(req.engine, 'auto');
  assert.equal('runDir' in req.config, false);
  const cfg = parseJobConfig({ ...req.config, data: { ...req.config.data, manifest: '/ws/runs/x/manifest.json' }, runDir: '/ws/runs/x' });
  assert.equal(cfg.kind, 'pretrain');
  assert.equal(cfg.optim!.totalSteps, 20);
  assert.deepEqual(cfg.optim!.betas, [0.9, 0.95]);
  assert.equal(cfg.fcmae.maskRatio, 0.6);

  const ft = { ...defaultForm('finetune'), dataset: 'fmnist', inputSize: 32, batchSize: 8, lengthUnit: 'steps' as const, length: 4, evalEvery: 2, init: { source: 'run' as const, runId: 'r1', step: 4, path: '/ws/runs/r1/checkpoints/step-4.safetensors' } };
  assert.deepEqual(errorsOf(ft), []);
  const ftReq = buildRunCreate(ft, facts);
  const ftCfg = parseJobConfig({ ...ftReq.config, data: { ...ftReq.config.data, manifest: '/m.json' }, runDir: '/r' });
  assert.equal(ftCfg.model.numClasses, 10);
  assert.equal(ftCfg.init.weights, '/ws/runs/r1/checkpoints/step-4.safetensors');
  assert.equal(ftCfg.evalEverySteps, 2);
  assert.equal(ftCfg.optim!.layerDecay, 1, 'a 4-step run gets the short recipe: no layer decay');
});

test('problems land on the field that fixes them and say why', () => {
  const on = (f: TrainForm, fx: DatasetFacts | null = facts) => Object.fromEntries(errorsOf(f, fx).map((p) => [p.field, p.message]));
  assert.match(on(form({ inputSize: 100 })).inputSize!, /multiple of 32.*downsamples by 32/);
  assert.match(on(form({ version: 1, variant: 'huge' })).variant!, /V1 has no huge/);
  assert.match(on(form({ batchSize: 4096 })).batchSize!, /1000 training images, fewer than one batch of 4096/);
  assert.match(on(form({ dataset: '' })).dataset!, /choose the dataset/);
  assert.match(on({ ...form(), kind: 'finetune' }, { ...facts, classes: 0, labeledTrain: 0 }).dataset!, /has no labels/);
  assert.match(on(form({ maskRatio: 1 })).maskRatio!, /between 0 and 1/);
  assert.match(on({ ...form(), kind: 'eval' }).init!, /needs the weights of a classifier/);
  assert.match(on(form({ init: { source: 'file', path: 'weights.pt' } })).init!, /absolute path/);
  assert.match(on(form({ warmupSteps: 500, lengthUnit: 'steps', length: 100 })).warmupSteps!, /exceeds totalSteps \(100\)/);
  // The job config's own rule, shown on the field: at 32 px FCMAE has one patch, all masked or all visible.
  assert.match(on(form({ inputSize: 32 })).inputSize!, /FCMAE at 32 px has 1 patches.*use 64 px or more/);
});

test('warnings explain choices that run but probably not as meant', () => {
  const warn = (f: TrainForm, fx = facts) => checkForm(f, fx, null).filter((p) => p.severity === 'warning').map((p) => p.field);
  assert.ok(warn(form({ version: 1 })).includes('version'));
  assert.ok(warn({ ...defaultForm('finetune'), dataset: 'fmnist' }).includes('init'));
  assert.ok(warn({ ...defaultForm('finetune'), dataset: 'fmnist' }, { ...facts, val: 0 }).includes('evalSplit'));
});

test('the engine and device are checked against what the machine has', () => {
  const sys = {
    engines: { onnx: { available: true, version: '1', providers: ['cpu'], chosen: 'cpu', notes: [] }, torch: { available: false, interpreter: '/usr/bin/python3', how: 'set by CNX_PYTHON', python: null, version: null, error: 'No module named torch' } },
    gpus: [],
  } as unknown as SystemInfo;
  const on = Object.fromEntries(errorsOf(form({ engine: 'torch', device: 'cuda' }), facts, sys).map((p) => [p.field, p.message]));
  assert.match(on.engine!, /PyTorch engine is not available: No module named torch/);
  assert.match(on.device!, /no CUDA device/);
});

test("the service's field names map back to form fields", () => {
  assert.equal(formFieldOf('config.optim.lr'), 'lr');
  assert.equal(formFieldOf('config.model.inputSize'), 'inputSize');
  assert.equal(formFieldOf('checkpointEverySteps'), 'checkpointEvery');
  assert.equal(formFieldOf('config.data.manifest'), '');
});

test('GPUs and processes become devices and nproc, checked against the GPUs found and the global batch', () => {
  const sys = {
    engines: { onnx: { available: true, version: '1', providers: ['cpu'], chosen: 'cpu', notes: [] }, torch: { available: true, interpreter: 'python3', python: '3', version: '2', error: null } },
    gpus: [{ name: 'A', memoryGiB: 24, backend: 'cuda' }, { name: 'B', memoryGiB: 24, backend: 'cuda' }],
  } as unknown as SystemInfo;
  const two = form({ engine: 'torch', device: 'cuda', gpus: [0, 1], batchSize: 64 });
  assert.deepEqual(errorsOf(two, facts, sys), []);
  assert.deepEqual(buildRunCreate(two, facts).config.devices, [0, 1]);
  assert.equal(buildRunCreate(form({ processes: 2 }), facts).config.nproc, 2);
  assert.equal(buildRunCreate(form({}), facts).config.nproc, undefined);
  const on = (f: TrainForm) => Object.fromEntries(errorsOf(f, facts, sys).map((p) => [p.field, p.message]));
  assert.match(on(form({ engine: 'torch', gpus: [2] })).gpus!, /GPU 2 is not on this machine \(found 2 CUDA GPUs\)/);
  assert.match(on(form({ engine: 'onnx', processes: 2 })).engine!, /needs the PyTorch engine/);
  assert.match(on(form({ engine: 'torch', processes: 3, batchSize: 64 })).batchSize!, /split over 3 processes: use a multiple of 3/);
});

test('augmentation: the recipe\'s by default, edits reach data.augment, a bad policy lands on its field', () => {
  const ft = { ...defaultForm('finetune'), dataset: 'fmnist', inputSize: 32, batchSize: 8, lengthUnit: 'steps' as const, length: 4, recipe: 'paper' as const };
  const cfg = parseJobConfig({ ...buildRunCreate(ft, facts).config, data: { ...buildRunCreate(ft, facts).config.data, manifest: '/m.json' }, runDir: '/r' });
  assert.deepEqual(cfg.data.augment, { scale: [0.08, 1], ratio: [3 / 4, 4 / 3], hflip: 0.5, padCrop: null, randAugment: 'rand-m9-mstd0.5-inc1', reprob: 0.25, remode: 'pixel', recount: 1 });
  const pre = parseJobConfig({ ...buildRunCreate(form(), facts).config, data: { ...buildRunCreate(form(), facts).config.data, manifest: '/m.json' }, runDir: '/r' });
  assert.deepEqual([pre.data.augment.scale, pre.data.augment.randAugment, pre.data.augment.reprob], [[0.2, 1], null, 0]);
  const small = { ...ft, padCrop: 4, randAugment: '', reprob: 0.5, remode: 'rand' as const, recount: 2 };
  assert.deepEqual(buildRunCreate(small, facts).config.data.augment, { scale: [0.08, 1], padCrop: 4, randAugment: null, reprob: 0.5, remode: 'rand', recount: 2 });
  const bad = Object.fromEntries(errorsOf({ ...ft, randAugment: 'rand-m9-w0', reprob: 2 }).map((p) => [p.field, p.message]));
  assert.match(bad.randAugment!, /unknown section 'w0'/);
  assert.match(bad.reprob!, /probability/);
  assert.equal(formFieldOf('config.data.augment.randAugment'), 'randAugment');
});
