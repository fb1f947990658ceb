// The result a task wrote, fetched when the shown task completes (and again if another task is shown);
// a failure to read it is kept for the view to show where the result would be.
import { type Ref, ref, shallowRef, watch } from 'vue';
import type { Task } from '../../common/api.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export function useTaskResult<T>(task: Ref<Task | null>, read: (taskId: string) => Promise<T>): { result: Ref<T | null>; error: Ref<ShownError | null> } {
  const result = shallowRef<T | null>(null);
  const error = ref<ShownError | null>(null);
  const key = () => (task.value ? `${task.value.id}:${task.value.state}` : '');
  watch(
    key,
    async (k) => {
      result.value = null;
      error.value = null;
      const t = task.value;
      if (t?.state !== 'completed') return;
      try {
        const r = await read(t.id);
        if (key() === k) result.value = r; // another task may have been shown meanwhile
      } catch (e) {
        if (key() === k) error.value = shownError(e);
      }
    },
    { immediate: true },
  );
  return { result, error };
}
