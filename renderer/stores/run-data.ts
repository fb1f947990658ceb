// What a run has said, for the runs it is open for: metric series (fetched downsampled, then extended by
// live metrics events), logs, evaluations and reconstruction samples. Views watch a run while they show it
// (the selected run and the runs overlaid on its charts) and release it after. Each run's data sits
// outside Vue's reactivity except a version counter, so a chart redraws on new points and nothing re-renders
// the history.
import { defineStore } from 'pinia';
import { type Ref, markRaw, ref } from 'vue';
import type { Artifact, JobEventMessage } from '../../common/api.ts';
import type { EventOf } from '../../common/protocol.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';
import { SeriesBuffer } from '../lib/series.ts';

/** Buckets per series on the first fetch: enough for a full-width chart on a 4k display. */
export const SERIES_POINTS = 2000;
const MAX_LOG_LINES = 5000;
const EVENT_PAGE = 1000;

export interface LogLine {
  seq: number;
  at: number;
  level: 'debug' | 'info' | 'warning' | 'error';
  message: string;
  detail: string;
}

export type EvalRecord = EventOf<'eval'> & { seq: number; at: number };

export interface RunData {
  readonly runId: string;
  readonly version: Ref<number>;
  state: 'loading' | 'ready' | 'error';
  error: ShownError | null;
  readonly series: Map<string, SeriesBuffer>;
  logs: LogLine[];
  evals: EvalRecord[];
  /** Reconstruction grids and other samples, oldest first. */
  artifacts: Artifact[];
  lastSeq: number;
}

/** The metric names an eval event stands for in the series (as the service's store names them). */
export function evalSeriesValues(e: EventOf<'eval'>): [string, number | null][] {
  const p = e.weights === 'ema' ? 'eval-ema' : 'eval';
  return [
    [`${p}/top1`, e.top1],
    [`${p}/top5`, e.top5],
  ];
}

export const useRunDataStore = defineStore('runData', () => {
  const runs = new Map<string, RunData>();
  const users = new Map<string, number>();
  const pending = new Map<string, JobEventMessage[]>();
  /** Ticks when a run is added or released, for views listing what is loaded. */
  const loadedTick = ref(0);
  let stop: (() => void) | null = null;

  function bump(d: RunData): void {
    d.version.value++;
  }

  function seriesOf(d: RunData, name: string): SeriesBuffer {
    let s = d.series.get(name);
    if (!s) d.series.set(name, (s = markRaw(new SeriesBuffer())));
    return s;
  }

  function addEvent(d: RunData, m: JobEventMessage): void {
    const e = m.event;
    switch (e.type) {
      case 'metrics':
        for (const [name, v] of Object.entries(e.values)) seriesOf(d, name).append(e.step, v ?? NaN);
        break;
      case 'progress':
        if (e.imagesPerSec !== null) seriesOf(d, 'imagesPerSec').append(e.step, e.imagesPerSec);
        break;
      case 'eval':
        if (m.seq <= d.lastSeq) break;
        d.evals.push({ ...e, seq: m.seq, at: m.at });
        for (const [name, v] of evalSeriesValues(e)) seriesOf(d, name).append(e.step, v ?? NaN);
        break;
      case 'log':
      case 'error':
      case 'started':
      case 'done':
      case 'checkpoint':
        if (m.seq <= d.lastSeq) break;
        d.logs.push(logLine(m));
        if (d.logs.length > MAX_LOG_LINES) d.logs.splice(0, d.logs.length - MAX_LOG_LINES);
        break;
      case 'sample':
        if (m.seq > d.lastSeq) void loadArtifacts(d);
        break;
    }
    d.lastSeq = Math.max(d.lastSeq, m.seq);
  }

  async function loadArtifacts(d: RunData): Promise<void> {
    try {
      d.artifacts = await api().artifacts.list({ runId: d.runId });
      bump(d);
    } catch (e) {
      d.error = shownError(e);
      bump(d);
    }
  }

  async function load(d: RunData): Promise<void> {
    const runId = d.runId;
    try {
      const [series, artifacts] = await Promise.all([api().metrics.series({ runId, points: SERIES_POINTS }), api().artifacts.list({ runId })]);
      for (const s of series.series) d.series.set(s.name, markRaw(SeriesBuffer.fromMetricSeries(s)));
      d.artifacts = artifacts;
      let after = 0;
      for (;;) {
        const page = await api().runs.events({ runId, afterSeq: after, limit: EVENT_PAGE, types: ['log', 'error', 'started', 'done', 'checkpoint', 'eval'] });
        for (const m of page.items) {
          if (m.event.type === 'eval') d.evals.push({ ...m.event, seq: m.seq, at: m.at });
          else d.logs.push(logLine(m));
        }
        if (d.logs.length > MAX_LOG_LINES) d.logs.splice(0, d.logs.length - MAX_LOG_LINES);
        after = page.lastSeq;
        if (page.items.length < EVENT_PAGE) break;
      }
      d.lastSeq = after;
      d.state = 'ready';
      d.error = null;
      // Live events that arrived during the fetch: older ones are already in what was fetched.
      for (const m of pending.get(runId) ?? []) addEvent(d, m);
    } catch (e) {
      d.state = 'error';
      d.error = shownError(e);
    } finally {
      pending.delete(runId);
      bump(d);
    }
  }

  /** Starts showing a run: loads it once, then keeps it current until every user released it. */
  function use(runId: string): RunData {
    connect();
    users.set(runId, (users.get(runId) ?? 0) + 1);
    let d = runs.get(runId);
    if (!d) {
      d = markRaw<RunData>({ runId, version: ref(0), state: 'loading', error: null, series: new Map(), logs: [], evals: [], artifacts: [], lastSeq: 0 });
      runs.set(runId, d);
      pending.set(runId, []);
      loadedTick.value++;
      void load(d);
    }
    return d;
  }

  function release(runId: string): void {
    const n = (users.get(runId) ?? 0) - 1;
    if (n > 0) return void users.set(runId, n);
    users.delete(runId);
    runs.delete(runId);
    pending.delete(runId);
    loadedTick.value++;
  }

  /** Drops a run's data and loads it again (after the event stream was down for a while). */
  function reload(runId: string): void {
    const d = runs.get(runId);
    if (!d) return;
    const fresh = markRaw<RunData>({ runId, version: d.version, state: 'loading', error: null, series: new Map(), logs: [], evals: [], artifacts: [], lastSeq: 0 });
    runs.set(runId, fresh);
    pending.set(runId, []);
    bump(fresh);
    void load(fresh);
  }

  function get(runId: string): RunData | undefined {
    return runs.get(runId);
  }

  function connect(): void {
    stop ??= api().onJobEvent((m) => {
      const d = runs.get(m.runId);
      if (!d) return;
      if (d.state === 'loading') pending.get(m.runId)?.push(m);
      else {
        addEvent(d, m);
        bump(d);
      }
    });
  }

  function disconnect(): void {
    stop?.();
    stop = null;
  }

  return { loadedTick, use, release, reload, get, connect, disconnect, runIds: () => [...runs.keys()] };
});

function logLine(m: JobEventMessage): LogLine {
  const e = m.event;
  const line = (level: LogLine['level'], message: string, detail = ''): LogLine => ({ seq: m.seq, at: m.at, level, message, detail });
  switch (e.type) {
    case 'log':
      return line(e.level, e.message);
    case 'error':
      return line('error', e.message, e.detail);
    case 'started':
      return line('info', `started ${e.kind} ${e.arch} on the ${e.engine} engine (${e.device}), ${(e.params / 1e6).toFixed(2)}M parameters`);
    case 'done':
      return line(e.status === 'failed' ? 'error' : 'info', `done: ${e.status}`);
    case 'checkpoint':
      return line('info', `checkpoint at step ${e.step}: ${e.path}`);
    default:
      return line('debug', `${e.type} event`);
  }
}
