// Checkpoints of runs, for the Models view and for the training form's "start from" choice: which runs
// have checkpoints, each run's list (with last/best pointers and sizes), and a run's config to inspect.
import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import type { Checkpoint, RunDetail } from '../../common/api.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export const useModelsStore = defineStore('models', () => {
  const checkpoints = shallowRef<ReadonlyMap<string, Checkpoint[]>>(new Map());
  const errors = shallowRef<ReadonlyMap<string, ShownError>>(new Map());
  const inspected = shallowRef<RunDetail | null>(null);
  const inspectError = ref<ShownError | null>(null);

  async function loadCheckpoints(runId: string): Promise<Checkpoint[]> {
    try {
      const list = await api().checkpoints.list({ runId });
      checkpoints.value = new Map(checkpoints.value).set(runId, list);
      const e = new Map(errors.value);
      e.delete(runId);
      errors.value = e;
      return list;
    } catch (err) {
      errors.value = new Map(errors.value).set(runId, shownError(err));
      return [];
    }
  }

  async function inspect(runId: string | null): Promise<void> {
    if (!runId) {
      inspected.value = null;
      return;
    }
    try {
      inspected.value = await api().runs.get({ runId });
      inspectError.value = null;
      await loadCheckpoints(runId);
    } catch (e) {
      inspectError.value = shownError(e);
    }
  }

  return { checkpoints, errors, inspected, inspectError, loadCheckpoints, inspect };
});
