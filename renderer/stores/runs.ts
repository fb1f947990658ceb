// The run queue: every run's summary, kept current by the jobState stream, with a progress rate and ETA
// per running run; the selected run's detail (config, attempts); and the queue actions. A failed action
// leaves its backend message on that run, where the button was pressed.
import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import { ACTIVE_RUN_STATES, type RunCreate, type RunDetail, type RunSummary } from '../../common/api.ts';
import { api } from '../api/client.ts';
import { RateEstimator } from '../lib/eta.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export type RunAction = 'pause' | 'resume' | 'cancel' | 'delete' | 'priority';

export const useRunsStore = defineStore('runs', () => {
  const runs = ref<RunSummary[]>([]);
  const loaded = ref(false);
  const listError = ref<ShownError | null>(null);
  const selectedId = ref<string | null>(null);
  const detail = shallowRef<RunDetail | null>(null);
  const detailError = ref<ShownError | null>(null);
  const actionError = ref<{ runId: string; action: RunAction; error: ShownError } | null>(null);
  const busy = ref<{ runId: string; action: RunAction } | null>(null);
  /** Ticks with each progress update, for ETAs computed from the (non-reactive) estimators. */
  const progressTick = ref(0);
  const rates = new Map<string, RateEstimator>();
  let stop: (() => void) | null = null;

  const byId = computed(() => new Map(runs.value.map((r) => [r.id, r])));
  const selected = computed(() => (selectedId.value ? (byId.value.get(selectedId.value) ?? null) : null));
  const active = computed(() => runs.value.filter((r) => ACTIVE_RUN_STATES.includes(r.state) || r.state === 'queued'));

  function track(r: RunSummary): void {
    if (r.step === null || r.state !== 'running') return;
    let est = rates.get(r.id);
    if (!est) rates.set(r.id, (est = new RateEstimator()));
    est.add({ t: Date.parse(r.updatedAt), step: r.step });
    progressTick.value++;
  }

  function upsert(r: RunSummary): void {
    const i = runs.value.findIndex((x) => x.id === r.id);
    if (i >= 0) runs.value[i] = r;
    else runs.value.unshift(r);
    track(r);
  }

  async function load(): Promise<void> {
    try {
      const list = await api().runs.list({ limit: 1000 });
      runs.value = list;
      list.forEach(track);
      listError.value = null;
    } catch (e) {
      listError.value = shownError(e);
    } finally {
      loaded.value = true;
    }
  }

  async function loadDetail(): Promise<void> {
    const id = selectedId.value;
    if (!id) return;
    try {
      const d = await api().runs.get({ runId: id });
      if (selectedId.value !== id) return;
      detail.value = d;
      detailError.value = null;
    } catch (e) {
      if (selectedId.value === id) detailError.value = shownError(e);
    }
  }

  async function select(id: string | null): Promise<void> {
    if (selectedId.value === id && detail.value) return;
    selectedId.value = id;
    detail.value = null;
    detailError.value = null;
    if (id) await loadDetail();
  }

  /** Seconds left for a running run (null when unknown); reads progressTick so views update with it. */
  function secondsLeft(r: RunSummary): number | null {
    void progressTick.value;
    if (r.state !== 'running' || r.totalSteps === null) return null;
    return rates.get(r.id)?.secondsLeft(r.totalSteps) ?? null;
  }

  function stepsPerSecond(r: RunSummary): number | null {
    void progressTick.value;
    return rates.get(r.id)?.stepsPerSecond() ?? null;
  }

  async function act(runId: string, action: RunAction, call: () => Promise<RunSummary | object>): Promise<boolean> {
    busy.value = { runId, action };
    try {
      const r = await call();
      if ('id' in r) upsert(r as RunSummary);
      if (actionError.value?.runId === runId) actionError.value = null;
      return true;
    } catch (e) {
      actionError.value = { runId, action, error: shownError(e) };
      return false;
    } finally {
      busy.value = null;
    }
  }

  const pause = (runId: string) => act(runId, 'pause', () => api().runs.pause({ runId }));
  const resume = (runId: string) => act(runId, 'resume', () => api().runs.resume({ runId }));
  const cancel = (runId: string) => act(runId, 'cancel', () => api().runs.cancel({ runId }));
  const setPriority = (runId: string, priority: number) => act(runId, 'priority', () => api().runs.setPriority({ runId, priority }));

  async function remove(runId: string): Promise<boolean> {
    const ok = await act(runId, 'delete', () => api().runs.delete({ runId }));
    if (ok) {
      runs.value = runs.value.filter((r) => r.id !== runId);
      rates.delete(runId);
      if (selectedId.value === runId) await select(null);
    }
    return ok;
  }

  /** Follows a run folder (a cluster run) read-only; errors are thrown to the caller. */
  async function attach(path: string): Promise<RunSummary> {
    const r = await api().runs.attach({ path });
    upsert(r);
    return r;
  }

  /** Creates a run; errors are thrown to the caller (the training form shows them on its fields). */
  async function create(req: RunCreate): Promise<RunSummary> {
    const r = await api().runs.create(req);
    upsert(r);
    return r;
  }

  function connect(): void {
    stop ??= api().onJobState((r) => {
      const before = byId.value.get(r.id);
      upsert(r);
      // Attempts and errors live in the detail: refetch it when the selected run changes state.
      if (r.id === selectedId.value && before?.state !== r.state) void loadDetail();
    });
  }

  function disconnect(): void {
    stop?.();
    stop = null;
  }

  return {
    runs, loaded, listError, selectedId, selected, detail, detailError, actionError, busy, byId, active,
    load, loadDetail, select, secondsLeft, stepsPerSecond, pause, resume, cancel, setPriority, remove, create, attach, connect, disconnect,
  };
});
