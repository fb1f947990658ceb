// The contract and its plumbing: the client validates requests before they leave and responses and events
// when they arrive; the dispatcher validates both sides too and turns handler bugs into 'internal' errors;
// the store's schema lives beside the catalog's; metric downsampling matches a direct computation.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { API_METHOD_NAMES, ApiError, type ApiResult, fileUrlPath, streamHook } from '../../common/api.ts';
import { type ApiTransport, createApiClient } from '../../common/api-client.ts';
import { dispatch } from '../../main/api/dispatch.ts';
import { EventHub } from '../../main/services/hub.ts';
import { Store } from '../../main/services/store.ts';
import { SCHEMA_VERSION } from '../../native-worker/data/catalog/schema.ts';
import type { ApiHandlers } from '../../main/services/workbench.ts';
import { tempDir } from '../helpers/services.ts';

const settings = { workspace: '/w', pythonPath: 'python3', defaultEngine: 'auto', defaultDevice: 'auto', cpuJobSlots: 1, stallTimeoutSec: 600 };

/** A transport that answers from a table and records what was sent. */
function scripted(answer: (method: string, request: unknown) => unknown) {
  const sent: { method: string; request: unknown }[] = [];
  let deliver: ((batch: unknown) => void) | null = null;
  let listening = 0;
  const transport: ApiTransport = {
    invoke: async (method, request) => {
      sent.push({ method, request });
      return answer(method, request);
    },
    listen: (onBatch) => {
      listening++;
      deliver = onBatch;
      return () => {
        listening--;
        deliver = null;
      };
    },
  };
  return { transport, sent, push: (batch: unknown) => deliver?.(batch), listening: () => listening };
}

test('the client has every method of the contract and an on<Stream> hook for every stream', () => {
  const api = createApiClient(scripted(() => null).transport) as unknown as Record<string, Record<string, unknown>>;
  for (const name of API_METHOD_NAMES) {
    const [group, fn] = name.split('.') as [string, string];
    assert.equal(typeof api[group]?.[fn], 'function', name);
  }
  for (const hook of ['onJobEvent', 'onJobState', 'onDatasetProgress', 'onDatasetChanged', 'onSettings']) assert.equal(typeof api[hook], 'function', hook);
  assert.equal(streamHook('jobEvent'), 'onJobEvent');
});

test('the client refuses a bad request before sending it, and a response outside the contract', async () => {
  const s = scripted((method) => (method === 'settings.get' ? { ok: true, value: { ...settings, cpuJobSlots: 'one' } } : { ok: true, value: [] }));
  const api = createApiClient(s.transport);
  await assert.rejects(api.runs.list({ limit: 0 }), (e: ApiError) => e.code === 'invalid' && e.field === 'limit');
  await assert.rejects(api.runs.get({ runId: '../../etc' }), (e: ApiError) => e.code === 'invalid' && e.field === 'runId');
  assert.equal(s.sent.length, 0, 'nothing was sent');
  assert.deepEqual(await api.runs.list({}), []);
  assert.deepEqual(s.sent[0], { method: 'runs.list', request: { limit: 200, offset: 0 } }, 'defaults filled in before sending');
  await assert.rejects(api.settings.get({}), (e: ApiError) => e.code === 'internal' && /cpuJobSlots/.test(e.message));
});

test('error envelopes become ApiErrors with code, message and field', async () => {
  const s = scripted(() => ({ ok: false, error: { code: 'conflict', message: 'run x is running', field: 'runId' } }) satisfies ApiResult);
  await assert.rejects(createApiClient(s.transport).runs.delete({ runId: 'x' }), (e: ApiError) => e instanceof ApiError && e.code === 'conflict' && e.message === 'run x is running' && e.field === 'runId');
});

test('events are validated per stream; invalid ones are dropped and reported; listening stops with the last listener', () => {
  const s = scripted(() => null);
  const invalid: string[] = [];
  const api = createApiClient(s.transport, { onInvalidEvent: (stream) => invalid.push(stream) });
  const got: unknown[] = [];
  const stop = api.onJobEvent((e) => got.push(e.event.type));
  const stopSettings = api.onSettings((x) => got.push(x.cpuJobSlots));
  assert.equal(s.listening(), 1, 'one transport subscription for all listeners');
  s.push({
    events: [
      { stream: 'jobEvent', data: { runId: 'r1', attempt: 1, seq: 1, at: 1, event: { v: 1, type: 'metrics', step: 1, values: { loss: 0.5 } } } },
      { stream: 'jobEvent', data: { runId: 'r1', attempt: 1, seq: 2, at: 1, event: { v: 1, type: 'metrics', step: 'two', values: {} } } },
      { stream: 'settings', data: settings },
      { stream: 'jobState', data: { nonsense: true } },
    ],
  });
  assert.deepEqual(got, ['metrics', 1]);
  assert.deepEqual(invalid, ['jobEvent']);
  s.push({ events: 'nope' });
  assert.deepEqual(invalid, ['jobEvent', '(batch)']);
  stop();
  assert.equal(s.listening(), 1);
  stopSettings();
  assert.equal(s.listening(), 0);
});

test('the dispatcher validates requests and responses and contains handler failures', async () => {
  const logged: string[] = [];
  const log = (m: string) => logged.push(m);
  const handlers = {
    'settings.get': () => ({ ...settings, defaultEngine: 'tensorflow' }),
    'runs.list': () => {
      throw new Error('disk on fire');
    },
    'runs.cancel': () => {
      throw new ApiError('not-found', "no run 'x'");
    },
    'metrics.names': () => ['loss'],
  } as unknown as ApiHandlers;
  assert.deepEqual(await dispatch(handlers, 'nope.nothing', {}, log), { ok: false, error: { code: 'not-found', message: "no API method 'nope.nothing'" } });
  assert.deepEqual(await dispatch(handlers, 'metrics.names', { runId: 'r1' }, log), { ok: true, value: ['loss'] });
  const bad = await dispatch(handlers, 'metrics.names', { runId: 'r1', extra: 1 }, log);
  assert.equal(!bad.ok && bad.error.code, 'invalid');
  const broken = await dispatch(handlers, 'settings.get', {}, log);
  assert.deepEqual(broken, { ok: false, error: { code: 'internal', message: 'settings.get: the service produced an invalid response' } });
  assert.match(logged[0]!, /defaultEngine/);
  const threw = await dispatch(handlers, 'runs.list', {}, log);
  assert.deepEqual(threw, { ok: false, error: { code: 'internal', message: 'runs.list: disk on fire' } });
  assert.deepEqual(await dispatch(handlers, 'runs.cancel', { runId: 'x' }, log), { ok: false, error: { code: 'not-found', message: "no run 'x'" } });
});

test('file URLs encode every path segment', () => {
  assert.equal(fileUrlPath({ kind: 'image', dataset: 'my set', path: 'a b/c#1.png' }), '/files/image/my%20set/a%20b/c%231.png');
  assert.equal(fileUrlPath({ kind: 'thumb', dataset: 'd', path: 'x.png', size: 64 }), '/files/thumb/d/x.png?size=64');
  assert.equal(fileUrlPath({ kind: 'artifact', runId: 'r1', path: 'samples/s.png' }), '/files/artifact/r1/samples/s.png');
});

test('the hub delivers events published in one tick as one batch, serialised once', async () => {
  const hub = new EventHub();
  const batches: string[] = [];
  hub.subscribe((b) => batches.push(b.json()));
  hub.publish('datasetChanged', { dataset: 'a', reason: 'edited' });
  hub.publish('datasetChanged', { dataset: 'b', reason: 'undone' });
  assert.throws(() => hub.publish('datasetChanged', { dataset: 'c', reason: 'exploded' } as never), /breaks the contract/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches.map((b) => JSON.parse(b)), [
    {
      events: [
        { stream: 'datasetChanged', data: { dataset: 'a', reason: 'edited' } },
        { stream: 'datasetChanged', data: { dataset: 'b', reason: 'undone' } },
      ],
    },
  ]);
});

test("the services' tables live in the catalog's workbench.db with their own version counter", async () => {
  const ws = tempDir('schema');
  const store = Store.open(ws);
  await store.close();
  const db = new Database(join(ws, 'workbench.db'));
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, "the catalog's user_version is untouched");
  assert.deepEqual(db.prepare('SELECT component, version FROM schema_components').all(), [{ component: 'services', version: 2 }]);
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
  for (const t of ['datasets', 'images', 'runs', 'jobs', 'metrics', 'checkpoints', 'artifacts', 'run_events', 'settings']) assert.ok(tables.includes(t), t);
  db.prepare("UPDATE schema_components SET version = 99 WHERE component = 'services'").run();
  db.close();
  assert.throws(() => Store.open(ws), /services schema version 99 is newer/);
});

test('metric series: min, max and last per bucket match a direct computation, nulls skipped, on either thread', async () => {
  const ws = tempDir('series');
  const store = Store.open(ws);
  try {
    store.insertRun({ id: 'r1', name: 'r', createdAt: new Date().toISOString(), engineChoice: 'auto', priority: 0, dataset: null }, { kind: 'pretrain', model: { arch: 'convnextv2_atto' } }, join(ws, 'runs', 'r1'));
    const put = store.db.prepare('INSERT INTO metrics (run_id, name, step, value) VALUES (?, ?, ?, ?)');
    const values = new Map<number, number | null>();
    let x = 7;
    for (let step = 3; step <= 5000; step += step % 3 === 0 ? 2 : 1) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const v = x % 50 === 0 ? null : (x % 1000) / 10;
      values.set(step, v);
      put.run('r1', 'loss', step, v);
    }
    const points = 37;
    const q = store.metricSeries('r1', { names: ['loss'], points, fromStep: 100, toStep: 4321 });
    const s = q.series[0]!;
    const span = 4321 - 100 + 1;
    const expected = new Map<number, { steps: number[]; vals: (number | null)[] }>();
    for (const [step, v] of values) {
      if (step < 100 || step > 4321) continue;
      const b = Math.floor(((step - 100) * points) / span);
      const e = expected.get(b) ?? { steps: [], vals: [] };
      e.steps.push(step);
      e.vals.push(v);
      expected.set(b, e);
    }
    const buckets = [...expected.values()];
    assert.equal(s.count.length, buckets.length);
    assert.ok(buckets.length <= points);
    buckets.forEach((e, i) => {
      const finite = e.vals.filter((v): v is number => v !== null);
      assert.equal(s.fromStep[i], e.steps[0]);
      assert.equal(s.toStep[i], e.steps.at(-1));
      assert.equal(s.count[i], e.steps.length);
      assert.equal(s.min[i], finite.length ? Math.min(...finite) : null);
      assert.equal(s.max[i], finite.length ? Math.max(...finite) : null);
      assert.equal(s.last[i], e.vals.at(-1));
    });
    // The API answers from the query worker's own read-only connection: the same result.
    assert.deepEqual(await store.seriesAsync('r1', { names: ['loss'], points, fromStep: 100, toStep: 4321 }), q);
    assert.deepEqual(store.metricSeries('r1', { names: ['nothing'], points: 10 }).series, [{ name: 'nothing', fromStep: [], toStep: [], min: [], max: [], last: [], count: [] }]);
  } finally {
    await store.close();
  }
});
