// Curation of the open dataset with a model: the curation tasks of that dataset, the report of the one
// shown (map, suspected labels, outliers), the map's selection, and the review's decisions so far.
import { defineStore } from 'pinia';
import { computed, ref, shallowRef, watch } from 'vue';
import type { CurationReport } from '../../common/curation.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';
import { useDatasetsStore } from './datasets.ts';
import { useTasksStore } from './tasks.ts';

export type Decision = 'accepted' | 'kept' | 'excluded';

export const useCurationStore = defineStore('curation', () => {
  const tasks = useTasksStore();
  const datasets = useDatasetsStore();
  const shownId = ref<string | null>(null);
  const report = shallowRef<CurationReport | null>(null);
  const error = ref<ShownError | null>(null);
  /** Point indices selected on the map. */
  const selection = shallowRef<number[]>([]);
  /** Review position among report.labelIssues, and what was decided per path. */
  const reviewIndex = ref(0);
  const decisions = ref(new Map<string, Decision>());

  const ofDataset = computed(() => tasks.ofKind('curation').filter((t) => t.request.dataset === datasets.current));
  const shown = computed(() => (shownId.value ? (tasks.byId.get(shownId.value) ?? null) : (ofDataset.value.find((t) => t.state === 'completed') ?? ofDataset.value[0] ?? null)));

  watch(
    () => (shown.value ? `${shown.value.id}:${shown.value.state}` : ''),
    async () => {
      report.value = null;
      selection.value = [];
      reviewIndex.value = 0;
      decisions.value = new Map();
      const t = shown.value;
      if (t?.state !== 'completed') return;
      try {
        report.value = await api().curation.result({ taskId: t.id });
        error.value = null;
      } catch (e) {
        error.value = shownError(e);
      }
    },
    { immediate: true },
  );

  /** Index of each image id in the report's points. */
  const indexOfId = computed(() => new Map((report.value?.points.ids ?? []).map((id, i) => [id, i])));

  /** Applies a review decision with the existing edits (undoable) and moves to the next suspect. */
  async function decide(decision: Decision): Promise<void> {
    const r = report.value;
    const issue = r?.labelIssues[reviewIndex.value];
    if (!r || !issue) return;
    const ok =
      decision === 'accepted' ? await datasets.relabel([issue.path], issue.suggested)
      : decision === 'kept' ? await datasets.keep([issue.path])
      : await datasets.exclude([issue.path], true);
    if (!ok) return;
    const m = new Map(decisions.value);
    m.set(issue.path, decision);
    decisions.value = m;
    // The map's colours follow the new label.
    const i = indexOfId.value.get(issue.imageId);
    if (decision === 'accepted' && i !== undefined) r.points.label[i] = r.classes.indexOf(issue.suggested);
    reviewIndex.value = Math.min(r.labelIssues.length - 1, reviewIndex.value + 1);
  }

  return { shownId, shown, ofDataset, report, error, selection, reviewIndex, decisions, indexOfId, decide };
});
