// Downsampled metric series: each series cut into at most `points` equal step ranges over
// [fromStep, toStep], with min, max and the last value of each, so a million-step run answers with
// `points` rows per metric and still shows its spikes. Pure SQL over a connection, so the same code runs
// on the main thread (tests, small reads) and in the query worker (the API).
import type Database from 'better-sqlite3';
import type { MetricSeries, MetricSeriesResult } from '../../common/api.ts';

export interface SeriesQuery {
  names?: readonly string[] | undefined;
  points: number;
  fromStep?: number | undefined;
  toStep?: number | undefined;
}

export function emptySeries(name: string): MetricSeries {
  return { name, fromStep: [], toStep: [], min: [], max: [], last: [], count: [] };
}

export function metricNames(db: Database.Database, runId: string): string[] {
  return db.prepare('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name').pluck().all(runId) as string[];
}

export function querySeries(db: Database.Database, runId: string, q: SeriesQuery): MetricSeriesResult {
  const names = q.names ?? metricNames(db, runId);
  if (!names.length) return { runId, fromStep: null, toStep: null, series: [] };
  const inNames = names.map(() => '?').join(', ');
  // Per-name MIN/MAX are index lookups; over an IN list SQLite would scan the rows instead.
  const perName = names.map(() => 'SELECT MIN(step) AS lo, MAX(step) AS hi FROM metrics WHERE run_id = ? AND name = ?').join(' UNION ALL ');
  const range = db.prepare(`SELECT MIN(lo) AS lo, MAX(hi) AS hi FROM (${perName})`).get(...names.flatMap((n) => [runId, n])) as { lo: number | null; hi: number | null };
  const lo = q.fromStep ?? range.lo;
  const hi = q.toStep ?? range.hi;
  if (lo === null || hi === null || hi < lo) return { runId, fromStep: lo, toStep: hi, series: names.map((name) => emptySeries(name)) };
  const span = hi - lo + 1;
  const rows = db
    .prepare(
      // bucket = floor((step - lo) * points / span), always within 0..points-1. The last value is one
      // primary-key lookup per bucket: a join lets SQLite scan every row of the run instead.
      `WITH agg AS MATERIALIZED (
         SELECT name, CAST((step - @lo) * @points / @span AS INTEGER) AS bucket, MIN(step) AS s0, MAX(step) AS s1,
                MIN(value) AS mn, MAX(value) AS mx, COUNT(*) AS n
         FROM metrics WHERE run_id = @run AND name IN (${inNames}) AND step BETWEEN @lo AND @hi
         GROUP BY name, bucket)
       SELECT name, s0, s1, mn, mx, n,
              (SELECT value FROM metrics m WHERE m.run_id = @run AND m.name = agg.name AND m.step = agg.s1) AS last
       FROM agg ORDER BY name, bucket`,
    )
    .all(...names, { run: runId, lo, hi, span, points: q.points }) as { name: string; s0: number; s1: number; mn: number | null; mx: number | null; n: number; last: number | null }[];
  const byName = new Map(names.map((n) => [n, emptySeries(n)]));
  for (const r of rows) {
    const s = byName.get(r.name)!;
    s.fromStep.push(r.s0);
    s.toStep.push(r.s1);
    s.min.push(r.mn);
    s.max.push(r.mx);
    s.last.push(r.last);
    s.count.push(r.n);
  }
  return { runId, fromStep: lo, toStep: hi, series: [...byName.values()] };
}
