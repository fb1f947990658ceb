// Background tasks (V1-vs-V2 analyses and model exports): every task's record, kept current by the
// taskState stream, the analyses' results once they complete, and the actions. Errors are kept per place
// they happened ('analysis', 'export', or a task id) so each view shows its own.
import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import type { AnalysisRequest, CurationRequest, ExportFileRequest, ExportRequest, FileReconstructionRequest, ImportedModel, Task, TaskKind } from '../../common/api.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export const useTasksStore = defineStore('tasks', () => {
  const tasks = ref<Task[]>([]);
  const loaded = ref(false);
  const errors = shallowRef<ReadonlyMap<string, ShownError>>(new Map());
  /** Checkpoint files imported (checked by a completed import task). */
  const imported = ref<ImportedModel[]>([]);
  let stop: (() => void) | null = null;

  const byId = computed(() => new Map(tasks.value.map((t) => [t.id, t])));
  const ofKind = (kind: TaskKind) => tasks.value.filter((t) => t.kind === kind);

  function setError(where: string, e: unknown | null): void {
    const m = new Map(errors.value);
    if (e === null) m.delete(where);
    else m.set(where, shownError(e));
    errors.value = m;
  }

  function upsert(t: Task): void {
    const i = tasks.value.findIndex((x) => x.id === t.id);
    const before = i >= 0 ? tasks.value[i]!.state : null;
    if (i >= 0) tasks.value[i] = t;
    else tasks.value.unshift(t);
    if (t.kind === 'import' && t.state === 'completed' && before !== 'completed') void loadImported();
  }

  async function loadImported(): Promise<void> {
    try {
      imported.value = await api().models.imported({});
      setError('imported', null);
    } catch (e) {
      setError('imported', e);
    }
  }

  async function load(): Promise<void> {
    try {
      tasks.value = await api().tasks.list({});
      setError('list', null);
      await loadImported();
    } catch (e) {
      setError('list', e);
    } finally {
      loaded.value = true;
    }
  }

  /** Starts a task; a refusal is kept under `where` for the form that asked. */
  async function started(where: 'analysis' | 'export' | 'import' | 'curation' | 'reconstruction', call: () => Promise<Task>): Promise<Task | null> {
    try {
      const t = await call();
      upsert(t);
      setError(where, null);
      return t;
    } catch (e) {
      setError(where, e);
      return null;
    }
  }
  const analyze = (req: AnalysisRequest) => started('analysis', () => api().analysis.start(req));
  const exportModel = (req: ExportRequest) => started('export', () => api().models.export(req));
  const exportFile = (req: ExportFileRequest) => started('export', () => api().models.exportFile(req));
  const curate = (req: CurationRequest) => started('curation', () => api().curation.start(req));
  const importModel = (file: string, name?: string) => started('import', () => api().models.import({ file, ...(name ? { name } : {}) }));
  const reconstructFile = (req: FileReconstructionRequest) => started('reconstruction', () => api().reconstructions.startFile(req));

  async function cancel(taskId: string): Promise<void> {
    try {
      upsert(await api().tasks.cancel({ taskId }));
    } catch (e) {
      setError(taskId, e);
    }
  }

  async function remove(taskId: string): Promise<void> {
    try {
      await api().tasks.delete({ taskId });
      const gone = tasks.value.find((t) => t.id === taskId);
      tasks.value = tasks.value.filter((t) => t.id !== taskId);
      if (gone?.kind === 'import') imported.value = imported.value.filter((m) => m.taskId !== taskId);
    } catch (e) {
      setError(taskId, e);
    }
  }

  function connect(): void {
    stop ??= api().onTaskState((t) => upsert(t));
  }

  function disconnect(): void {
    stop?.();
    stop = null;
  }

  return {
    tasks, loaded, errors, imported, byId, ofKind, clearError: (where: string) => setError(where, null),
    load, loadImported, analyze, curate, exportModel, exportFile, importModel, reconstructFile, cancel, remove, connect, disconnect,
  };
});
