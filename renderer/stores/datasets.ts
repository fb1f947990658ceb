// The dataset catalog as the Datasets view shows it: the list, imports running in the background (followed
// on the datasetProgress stream), the open dataset's detail, statistics and duplicate groups, and the
// curation edits (relabel, move between splits, exclude, re-split) with undo. Every change, ours or from
// another window, arrives as datasetChanged and refreshes what is on screen.
import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import type { ApiRequest, DatasetDetail, DatasetDupes, DatasetStats, DatasetSummary, ImportTask, ManifestExport } from '../../common/api.ts';
import type { Split } from '../../common/manifest.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export const useDatasetsStore = defineStore('datasets', () => {
  const list = ref<DatasetSummary[]>([]);
  const listLoaded = ref(false);
  const listError = ref<ShownError | null>(null);
  const tasks = ref<ImportTask[]>([]);
  const importError = ref<ShownError | null>(null);

  const current = ref<string | null>(null);
  const detail = shallowRef<DatasetDetail | null>(null);
  const stats = shallowRef<DatasetStats | null>(null);
  const detailError = ref<ShownError | null>(null);
  /** Bumped whenever the open dataset's images may have changed (the grid refetches). */
  const revision = ref(0);

  const dupes = shallowRef<DatasetDupes | null>(null);
  const dupesThreshold = ref(8);
  const dupesLoading = ref(false);
  const dupesError = ref<ShownError | null>(null);

  const editing = ref(false);
  const editError = ref<ShownError | null>(null);
  const lastExport = shallowRef<ManifestExport | null>(null);

  const stops: (() => void)[] = [];

  async function loadList(): Promise<void> {
    try {
      const [datasets, running] = await Promise.all([api().datasets.list({}), api().datasets.importTasks({})]);
      list.value = datasets;
      for (const t of running) upsertTask(t);
      listError.value = null;
    } catch (e) {
      listError.value = shownError(e);
    } finally {
      listLoaded.value = true;
    }
  }

  /** Finished imports the user put away: the service still lists them, the panel does not. */
  const dismissed = new Set<string>();

  function upsertTask(t: ImportTask): void {
    if (dismissed.has(t.taskId)) return;
    const i = tasks.value.findIndex((x) => x.taskId === t.taskId);
    if (i >= 0) tasks.value[i] = t;
    else tasks.value.unshift(t);
  }

  /** Starts an import (or a rescan of a known source); progress arrives on the stream. */
  async function startImport(req: ApiRequest<'datasets.import'>): Promise<ImportTask | null> {
    try {
      const task = await api().datasets.import(req);
      upsertTask(task);
      importError.value = null;
      return task;
    } catch (e) {
      importError.value = shownError(e);
      return null;
    }
  }

  async function cancelImport(taskId: string): Promise<void> {
    try {
      upsertTask(await api().datasets.cancelImport({ taskId }));
    } catch (e) {
      importError.value = shownError(e);
    }
  }

  function dismissTask(taskId: string): void {
    dismissed.add(taskId);
    tasks.value = tasks.value.filter((t) => t.taskId !== taskId);
  }

  async function loadDetail(): Promise<void> {
    const name = current.value;
    if (!name) return;
    try {
      const [d, s] = await Promise.all([api().datasets.get({ name }), api().datasets.stats({ name })]);
      if (current.value !== name) return;
      detail.value = d;
      stats.value = s;
      detailError.value = null;
    } catch (e) {
      if (current.value === name) detailError.value = shownError(e);
    }
  }

  async function open(name: string | null): Promise<void> {
    if (current.value === name && detail.value) return;
    current.value = name;
    detail.value = null;
    stats.value = null;
    dupes.value = null;
    dupesError.value = null;
    editError.value = null;
    detailError.value = null;
    lastExport.value = null;
    if (name) await loadDetail();
  }

  async function loadDupes(threshold = dupesThreshold.value): Promise<void> {
    const name = current.value;
    if (!name) return;
    dupesThreshold.value = threshold;
    dupesLoading.value = true;
    try {
      const d = await api().datasets.dupes({ name, threshold });
      if (current.value === name) {
        dupes.value = d;
        dupesError.value = null;
      }
    } catch (e) {
      dupesError.value = shownError(e);
    } finally {
      dupesLoading.value = false;
    }
  }

  /** Runs one edit of the open dataset; the edit list, stats and grid refresh after it. */
  async function edit(run: (name: string) => Promise<unknown>): Promise<boolean> {
    const name = current.value;
    if (!name) return false;
    editing.value = true;
    try {
      await run(name);
      editError.value = null;
      await afterChange();
      return true;
    } catch (e) {
      editError.value = shownError(e);
      return false;
    } finally {
      editing.value = false;
    }
  }

  const relabel = (paths: string[], label: string | null) => edit((name) => api().datasets.relabel({ name, paths, label }));
  const move = (paths: string[], split: Split) => edit((name) => api().datasets.move({ name, paths, split }));
  const exclude = (paths: string[], excluded: boolean) => edit((name) => api().datasets.exclude({ name, paths, excluded }));
  const resplit = (val: number, test: number, seed: number) => edit((name) => api().datasets.split({ name, val, test, seed }));
  const undo = () => edit((name) => api().datasets.undo({ name }));
  /** A reviewed suspect label judged right: logged in the edit history, nothing changes. */
  const keep = (paths: string[]) => edit((name) => api().curation.keep({ name, paths }));

  async function exportManifest(): Promise<void> {
    const name = current.value;
    if (!name) return;
    try {
      lastExport.value = await api().datasets.exportManifest({ name });
      editError.value = null;
      await loadDetail();
    } catch (e) {
      editError.value = shownError(e);
    }
  }

  async function remove(name: string): Promise<boolean> {
    try {
      await api().datasets.delete({ name });
      if (current.value === name) await open(null);
      await loadList();
      return true;
    } catch (e) {
      detailError.value = shownError(e);
      return false;
    }
  }

  async function afterChange(): Promise<void> {
    revision.value++;
    await loadDetail();
    if (dupes.value) await loadDupes();
  }

  function connect(): void {
    if (stops.length) return;
    stops.push(
      api().onDatasetProgress((t) => {
        upsertTask(t);
        if (t.state !== 'running') void loadList();
        if (t.state === 'completed' && t.summary?.dataset === current.value) void afterChange();
      }),
      api().onDatasetChanged((c) => {
        void loadList();
        if (c.dataset !== current.value) return;
        if (c.reason === 'deleted') void open(null);
        else if (!editing.value) void afterChange();
      }),
    );
  }

  function disconnect(): void {
    for (const s of stops.splice(0)) s();
  }

  return {
    list, listLoaded, listError, tasks, importError, current, detail, stats, detailError, revision,
    dupes, dupesThreshold, dupesLoading, dupesError, editing, editError, lastExport,
    loadList, startImport, cancelImport, dismissTask, open, loadDetail, loadDupes,
    relabel, move, exclude, keep, resplit, undo, exportManifest, remove, connect, disconnect,
  };
});
