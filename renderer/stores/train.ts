// The training form: its values (recipe defaults that follow the chosen kind and variant until the user
// edits them), the facts of the chosen dataset, the problems that block or deserve a warning, and the start.
// A refusal from the service lands on the field it names.
import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef } from 'vue';
import type { RunSummary } from '../../common/api.ts';
import { type VariantName, variantByName } from '../../common/variants.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';
import { type DatasetFacts, type InitSource, type Problem, type TrainForm, type TrainKind, buildRunCreate, checkForm, defaultForm, formFieldOf, recipeDefaults, resolve } from '../lib/job-form.ts';
import { useRunsStore } from './runs.ts';
import { useSystemStore } from './system.ts';

export const useTrainStore = defineStore('train', () => {
  const form = reactive<TrainForm>(defaultForm());
  /** Fields the user changed (recipe fields left empty follow the recipe the resolver picks). */
  const touched = reactive(new Set<keyof TrainForm>());
  const facts = shallowRef<DatasetFacts | null>(null);
  const factsError = ref<ShownError | null>(null);
  const submitting = ref(false);
  const submitError = ref<(ShownError & { formField: string }) | null>(null);
  const showAll = ref(false);

  const problems = computed<Problem[]>(() => checkForm(form, facts.value, useSystemStore().info));
  const errors = computed(() => problems.value.filter((p) => p.severity === 'error'));
  const resolved = computed(() => resolve(form, facts.value));

  function problemsFor(field: string): Problem[] {
    const list = problems.value.filter((p) => p.field === field);
    if (submitError.value?.formField === field) list.push({ field, severity: 'error', message: submitError.value.message });
    return list;
  }

  function set<K extends keyof TrainForm>(field: K, value: TrainForm[K]): void {
    form[field] = value;
    touched.add(field);
    if (submitError.value?.formField === field) submitError.value = null;
  }

  /** Every recipe value back to the recipe's (the form's inputs empty). */
  function applyRecipe(): void {
    Object.assign(form, recipeDefaults());
    for (const k of Object.keys(recipeDefaults())) touched.delete(k as keyof TrainForm);
  }

  function setKind(kind: TrainKind): void {
    if (form.kind === kind) return;
    form.kind = kind;
    if (!touched.has('length')) {
      const d = defaultForm(kind, form.variant);
      form.length = d.length;
      form.lengthUnit = d.lengthUnit;
    }
    if (kind === 'pretrain' && form.init.source === 'run') form.init = { source: 'scratch' };
    submitError.value = null;
  }

  function setVariant(variant: VariantName): void {
    form.variant = variant;
    // A size that exists in one version only (huge: V2; small, xlarge: V1) switches to it.
    const { versions } = variantByName(variant);
    if (!versions.includes(form.version)) form.version = versions[0]!;
  }

  function setInit(init: InitSource): void {
    form.init = init;
    touched.add('init');
  }

  async function setDataset(name: string): Promise<void> {
    form.dataset = name;
    facts.value = null;
    factsError.value = null;
    if (name) await loadFacts(name);
  }

  async function loadFacts(name: string): Promise<void> {
    try {
      const s = await api().datasets.stats({ name });
      if (form.dataset !== name) return;
      facts.value = {
        name,
        classes: s.classes.length,
        trainImages: s.splits.train,
        labeledTrain: s.classes.reduce((a, c) => a + c.train, 0),
        val: s.classes.reduce((a, c) => a + c.val, 0),
        test: s.classes.reduce((a, c) => a + c.test, 0),
      };
    } catch (e) {
      factsError.value = shownError(e);
    }
  }

  /** The fix the form offers when evaluations have no val split: a tenth of each class's images to val. */
  async function createValSplit(): Promise<void> {
    const name = form.dataset;
    try {
      await api().datasets.split({ name, val: 0.1, test: 0, seed: 0 });
      form.evalSplit = 'val';
      await loadFacts(name);
    } catch (e) {
      factsError.value = shownError(e);
    }
  }

  function reset(kind: TrainKind = form.kind): void {
    Object.assign(form, defaultForm(kind, form.variant), { dataset: form.dataset });
    touched.clear();
    submitError.value = null;
  }

  /** Starts the run; null when the form has errors or the service refused (the error is on its field). */
  async function submit(): Promise<RunSummary | null> {
    if (errors.value.length) {
      showAll.value = true;
      return null;
    }
    submitting.value = true;
    try {
      const run = await useRunsStore().create(buildRunCreate(form, facts.value));
      submitError.value = null;
      return run;
    } catch (e) {
      const err = shownError(e);
      submitError.value = { ...err, formField: err.field ? formFieldOf(err.field) : '' };
      return null;
    } finally {
      submitting.value = false;
    }
  }

  return { form, touched, facts, factsError, submitting, submitError, showAll, problems, errors, resolved, problemsFor, set, setKind, setVariant, setInit, setDataset, createValSplit, applyRecipe, reset, submit };
});
