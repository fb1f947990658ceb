// Web mode over loopback: the token on every request and the WebSocket, 400s that say what is wrong,
// files only from registered datasets, the renderer (or a page saying it is not built), the typed client
// end to end with the PyTorch engine, and a load test of 10,000 metric events per second.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { type JobEventMessage, type WorkbenchApi, fileUrlPath } from '../../common/api.ts';
import { createApiClient } from '../../common/api-client.ts';
import { engineLauncher } from '../../main/services/engines.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { type WebServer, startWebServer } from '../../main/web/server.ts';
import { photo } from '../helpers/images.ts';
import { needTorch } from '../helpers/python.ts';
import { FAKE_WORKER, fixedResolver, tempDir, tinyJob, waitFor, waitForState } from '../helpers/services.ts';
import { socketsOpen, webTransport } from '../helpers/web-client.ts';

process.env.OMP_NUM_THREADS = '1';

/** A raw HTTP request (fetch normalises paths and forbids some headers; these tests need both raw). */
function raw(port: number, opts: { path: string; method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: opts.path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('web mode', () => {
  let dir: string;
  let wb: Workbench;
  let server: WebServer;
  let base: string;
  let auth: Record<string, string>;
  let api: WorkbenchApi;
  let transport: ReturnType<typeof webTransport>;
  let fakeEnv: NodeJS.ProcessEnv | null = null;

  before(async () => {
    dir = tempDir('web');
    // Class folders a/ b/ c/ with 4 images each.
    for (let i = 0; i < 12; i++) {
      mkdirSync(join(dir, 'data', 'abc'[i % 3]!), { recursive: true });
      await photo(i + 1, 40, 40).png().toFile(join(dir, 'data', 'abc'[i % 3]!, `${i}.png`));
    }
    writeFileSync(join(dir, 'secret.txt'), 'not for the browser');
    const real = engineLauncher();
    wb = await Workbench.open({
      workspace: join(dir, 'ws'),
      resolver: fixedResolver('cpu'),
      // The fake worker when a test sets fakeEnv, the real engines otherwise.
      launcher: { command: (engine, cfg, python) => (fakeEnv ? { command: process.execPath, args: [FAKE_WORKER, cfg], env: { ...process.env, ...fakeEnv } } : real.command(engine, cfg, python)) },
      store: { flushMs: 50 },
    });
    server = await startWebServer({ workbench: wb, rendererDir: join(dir, 'renderer') });
    base = `http://127.0.0.1:${server.port}`;
    auth = { authorization: `Bearer ${server.token}` };
    transport = webTransport(base, server.token);
    api = createApiClient(transport);
  });
  after(async () => {
    for (const ws of transport.sockets) ws.terminate();
    await server.close();
    await wb.close({ jobTimeoutMs: 10_000 });
  });

  test('binds 127.0.0.1 by default and prints a URL carrying the token', () => {
    const addr = server.server.address();
    assert.ok(addr && typeof addr === 'object');
    assert.equal(addr.address, '127.0.0.1');
    assert.equal(server.url, `http://127.0.0.1:${server.port}/?token=${server.token}`);
    assert.ok(server.token.length >= 40, 'a long random token');
  });

  test('requests without the token, or with a wrong one, get 401 everywhere', async () => {
    const call = (headers: Record<string, string>, path = '/api/settings.get') =>
      raw(server.port, { path, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    assert.equal((await call({})).status, 401);
    assert.equal((await call({ authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await call({ authorization: `Bearer ${server.token}x` })).status, 401);
    assert.equal((await call({ cookie: 'cnx_token=wrong' })).status, 401);
    assert.equal((await call({}, '/api/settings.get?token=wrong')).status, 401);
    const body = JSON.parse((await call({})).body);
    assert.deepEqual(body.ok, false);
    assert.equal(body.error.code, 'unauthorized');
    assert.equal((await raw(server.port, { path: '/' })).status, 401);
    assert.equal((await raw(server.port, { path: '/files/image/data/a/0.png' })).status, 401);
    // With the token, each way of passing it works.
    assert.equal((await call(auth)).status, 200);
    assert.equal((await call({}, `/api/settings.get?token=${server.token}`)).status, 200);
    const opened = await raw(server.port, { path: `/?token=${server.token}` });
    assert.equal(opened.status, 302);
    assert.equal(opened.headers.location, '/');
    const setCookie = String(opened.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.equal((await call({ cookie: setCookie.split(';')[0]! })).status, 200);

    const tryWs = (headers: Record<string, string>) =>
      new Promise<number | 'open'>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { headers });
        ws.on('open', () => {
          ws.close();
          resolve('open');
        });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
        ws.on('error', () => undefined);
      });
    assert.equal(await tryWs({}), 401);
    assert.equal(await tryWs({ authorization: 'Bearer wrong' }), 401);
    assert.equal(await tryWs({ ...auth, origin: 'http://evil.example' }), 401);
    assert.equal(await tryWs(auth), 'open');
  });

  test('a loopback server answers only to loopback host names (no DNS rebinding)', async () => {
    const r = await raw(server.port, { path: '/api/settings.get', method: 'POST', headers: { ...auth, 'content-type': 'application/json', host: `evil.example:${server.port}` }, body: '{}' });
    assert.equal(r.status, 401);
    const ok = await raw(server.port, { path: '/api/settings.get', method: 'POST', headers: { ...auth, 'content-type': 'application/json', host: `localhost:${server.port}` }, body: '{}' });
    assert.equal(ok.status, 200);
  });

  test('malformed payloads get 400 with a message saying what is wrong', async () => {
    const post = (path: string, body: string, type = 'application/json') => raw(server.port, { path, method: 'POST', headers: { ...auth, 'content-type': type }, body });
    const notJson = await post('/api/runs.list', '{"states": [');
    assert.equal(notJson.status, 400);
    assert.match(JSON.parse(notJson.body).error.message, /not valid JSON/);
    const wrongType = await post('/api/runs.list', '{}', 'text/plain');
    assert.equal(wrongType.status, 400);
    const badField = JSON.parse((await post('/api/runs.list', '{"limit": -3}')).body);
    assert.deepEqual([badField.error.code, badField.error.field], ['invalid', 'limit']);
    const unknownField = await post('/api/settings.update', '{"workspace": "/tmp"}');
    assert.equal(unknownField.status, 400);
    const badConfig = JSON.parse((await post('/api/runs.create', JSON.stringify({ config: { ...tinyJob('/x/m.json', { steps: 1, checkpointEvery: 1 }), model: { arch: 'resnet50', numClasses: 3 } } }))).body);
    assert.equal(badConfig.error.field, 'config.model.arch');
    assert.match(badConfig.error.message, /unknown architecture/);
    assert.deepEqual(await api.runs.list({}), [], 'a rejected run leaves nothing behind');
    assert.deepEqual(readdirSync(join(dir, 'ws', 'runs')), []);
    assert.equal((await post('/api/no.such', '{}')).status, 404);
    const big = await post('/api/runs.list', JSON.stringify({ pad: 'x'.repeat(2 << 20) }));
    assert.equal(big.status, 413);
    assert.equal((await raw(server.port, { path: '/api/runs.list', headers: auth })).status, 400, 'GET on an API method');
  });

  test('the typed client imports a dataset and trains on it with the PyTorch engine', async (t) => {
    const python = needTorch(t);
    if (!python) return;
    await api.settings.update({ pythonPath: python });
    const progress: string[] = [];
    const events: JobEventMessage[] = [];
    const stopProgress = api.onDatasetProgress((task) => progress.push(task.state));
    const stopEvents = api.onJobEvent((e) => events.push(e));
    await socketsOpen(transport);
    const task = await api.datasets.import({ source: join(dir, 'data') });
    assert.equal(task.state, 'running');
    await waitFor('the import to finish', () => progress.includes('completed') || progress.includes('failed'), 60_000);
    assert.equal(progress.at(-1), 'completed', JSON.stringify(await api.datasets.importTasks({})));
    const [ds] = await api.datasets.list({});
    assert.deepEqual([ds!.name, ds!.images, ds!.classes], ['data', 12, 3]);
    const page = await api.datasets.images({ name: 'data', label: 'b', limit: 2 });
    assert.equal(page.total, 4);
    assert.deepEqual(page.items.map((i) => i.path), ['b/1.png', 'b/10.png']);

    const run = await api.runs.create({ config: tinyJob('/unused', { steps: 3, checkpointEvery: 3 }), dataset: 'data', engine: 'torch' });
    const done = await waitForState(wb, run.id, ['completed', 'failed']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    const detail = await api.runs.get({ runId: run.id });
    assert.equal(detail.config.data.manifest, join(detail.runDir, 'manifest.json'));
    assert.equal(detail.attemptsList.length, 1);
    const series = await api.metrics.series({ runId: run.id, names: ['loss'], points: 2 });
    // Steps 1..3 in two buckets: floor((step - 1) * 2 / 3) puts steps 1 and 2 in the first.
    assert.deepEqual(series.series[0]!.count, [2, 1]);
    assert.deepEqual(series.series[0]!.toStep, [2, 3]);
    const ckpts = await api.checkpoints.list({ runId: run.id });
    assert.deepEqual(ckpts.map((c) => [c.step, c.last]), [[3, true]]);
    assert.ok(ckpts[0]!.bytes! > 1_000_000, 'atto weights are megabytes');
    await waitFor('the done event on the WebSocket', () => events.some((e) => e.runId === run.id && e.event.type === 'done'), 5000);
    const types = events.filter((e) => e.runId === run.id).map((e) => e.event.type);
    assert.equal(types[0], 'started');
    assert.deepEqual(types.filter((x) => x === 'metrics').length, 3);
    stopProgress();
    stopEvents();
  });

  test('images are served only for cataloged paths inside their dataset; .. is refused', async (t) => {
    if (!(await api.datasets.list({})).length) return t.skip('needs the dataset imported by the previous test');
    const get = (path: string) => raw(server.port, { path, headers: auth });
    const ok = await get(fileUrlPath({ kind: 'image', dataset: 'data', path: 'a/0.png' }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], 'image/png');
    assert.equal((await get(fileUrlPath({ kind: 'thumb', dataset: 'data', path: 'a/0.png', size: 32 }))).headers['content-type'], 'image/webp');
    // Augmentation previews: the loader's transform, one PNG per draw, the same draw for the same seed.
    const preview = (k: number, mode: 'pretrain' | 'finetune' | 'eval' = 'finetune') => get(fileUrlPath({ kind: 'preview', dataset: 'data', path: 'a/0.png', mode, size: 64, seed: 3, k }));
    const [p0, p0again, p1, evalView] = [await preview(0), await preview(0), await preview(1), await preview(0, 'eval')];
    assert.equal(p0.status, 200, p0.body);
    assert.equal(p0.headers['content-type'], 'image/png');
    assert.equal(p0again.body, p0.body);
    assert.notEqual(p1.body, p0.body, 'another draw');
    assert.equal(evalView.status, 200);
    assert.match((await get('/files/preview/data/a/0.png?mode=sideways')).body, /mode must be pretrain, finetune or eval/);
    assert.equal((await get('/files/preview/data/a/0.png?size=100')).status, 400);
    assert.equal((await get('/files/preview/data/a/nothere.png')).status, 404);
    for (const path of ['/files/image/data/../secret.txt', '/files/image/data/a/%2e%2e/%2e%2e/secret.txt', '/files/image/data/a/..%2f..%2fsecret.txt', '/files/image/..%2F..%2Fetc/passwd', '/../../etc/passwd']) {
      const r = await get(path);
      assert.equal(r.status, 400, `${path}: ${r.body}`);
    }
    assert.equal((await get('/files/image/data/a/not-there.png')).status, 404);
    assert.equal((await get('/files/image/nodataset/a/0.png')).status, 404);
    assert.equal((await get(`/files/image/data/${encodeURIComponent(join(dir, 'secret.txt'))}`)).status, 400, 'an absolute path');
    // A cataloged file replaced by a symlink to something outside the dataset is not followed out.
    rmSync(join(dir, 'data', 'a', '3.png'));
    symlinkSync(join(dir, 'secret.txt'), join(dir, 'data', 'a', '3.png'));
    const escaped = await get('/files/image/data/a/3.png');
    assert.equal(escaped.status, 404);
    assert.doesNotMatch(escaped.body, /not for the browser/);
  });

  test('run artifacts are served only when recorded for the run', async () => {
    fakeEnv = { FAKE_STEP_MS: '2', FAKE_SAMPLE: '1' };
    try {
      const run = await api.runs.create({ config: tinyJob('/unused/manifest.json', { steps: 2, checkpointEvery: 2 }), engine: 'torch' });
      await waitForState(wb, run.id, ['completed']);
      const [artifact] = await api.artifacts.list({ runId: run.id });
      assert.deepEqual([artifact!.kind, artifact!.path], ['reconstruction', 'samples/step-2.png']);
      const get = (path: string) => raw(server.port, { path, headers: auth });
      const ok = await get(fileUrlPath({ kind: 'artifact', runId: run.id, path: artifact!.path }));
      assert.deepEqual([ok.status, ok.headers['content-type']], [200, 'image/png']);
      assert.equal((await get(`/files/artifact/${run.id}/config.json`)).status, 404, 'a run file that is not an artifact');
      assert.equal((await get(`/files/artifact/${run.id}/samples/../config.json`)).status, 400);
      assert.equal((await get('/files/artifact/no-such-run/samples/step-2.png')).status, 404);
    } finally {
      fakeEnv = null;
    }
  });

  test('the renderer: a page saying it is not built, then its files and client-side routes', async () => {
    const missing = await raw(server.port, { path: '/', headers: auth });
    assert.equal(missing.status, 503);
    assert.match(missing.body, /UI is not built yet/);
    mkdirSync(join(dir, 'renderer', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'renderer', 'index.html'), '<!doctype html><title>wb</title>');
    writeFileSync(join(dir, 'renderer', 'assets', 'app.js'), 'console.log(1)');
    const index = await raw(server.port, { path: '/', headers: auth });
    assert.equal(index.status, 200);
    assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
    assert.equal((await raw(server.port, { path: '/runs/123', headers: auth })).body, '<!doctype html><title>wb</title>');
    const js = await raw(server.port, { path: '/assets/app.js', headers: auth });
    assert.deepEqual([js.status, js.headers['content-type'], js.body], [200, 'text/javascript; charset=utf-8', 'console.log(1)']);
  });

  test('load: 10,000 metric events/s reach the database and WebSocket clients without loss; other requests stay fast', async (t) => {
    // CNX_LOAD_RATE / CNX_LOAD_SECONDS explore other loads by hand; the suite runs 10,000/s for 3 s.
    const rate = Number(process.env.CNX_LOAD_RATE ?? 10_000);
    const seconds = Number(process.env.CNX_LOAD_SECONDS ?? 3);
    fakeEnv = { FAKE_RATE: String(rate), FAKE_SECONDS: String(seconds) };
    try {
      // Two WebSocket clients, each counting the metrics events of the run.
      const counts = [0, 0];
      let runId = '';
      const clients = counts.map((_, i) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { headers: auth });
        ws.on('message', (data) => {
          for (const e of (JSON.parse(String(data)) as { events: { stream: string; data: JobEventMessage }[] }).events) {
            if (e.stream === 'jobEvent' && e.data.runId === runId && e.data.event.type === 'metrics') counts[i]!++;
          }
        });
        return new Promise<WebSocket>((r) => ws.once('open', () => r(ws)));
      });
      const sockets = await Promise.all(clients);
      const lag = monitorEventLoopDelay({ resolution: 10 });
      lag.enable();
      const run = await api.runs.create({ config: tinyJob('/unused/manifest.json', { steps: 1, checkpointEvery: 1 }), engine: 'torch' });
      runId = run.id;
      // Meanwhile another client keeps asking for the run list; its latency is what a UI would feel.
      const latencies: number[] = [];
      const t0 = Date.now();
      let firstAll = 0;
      while (wb.store.summary(runId)?.state !== 'completed') {
        const s = performance.now();
        const r = await fetch(`${base}/api/runs.list`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
        await r.json();
        latencies.push(performance.now() - s);
        if (!firstAll && counts[0]! > 0) firstAll = Date.now();
        if (Date.now() - t0 > 60_000) throw new Error(`the run did not finish: ${JSON.stringify(wb.store.summary(runId))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const total = rate * seconds;
      await waitFor('every event on both sockets', () => counts.every((c) => c === total), 10_000).catch(() => undefined);
      const elapsed = (Date.now() - t0) / 1000;
      lag.disable();
      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
      const rows = wb.store.db.prepare("SELECT COUNT(*) FROM metrics WHERE run_id = ? AND name = 'loss'").pluck().get(runId) as number;
      const logLines = readFileSync(join(wb.store.runDir(runId), 'events.jsonl'), 'utf8').trim().split('\n').length;
      const report = {
        eventsSent: total,
        secondsUntilDone: +elapsed.toFixed(2),
        dbLossRows: rows,
        logLines,
        wsClientCounts: counts,
        runsListRequests: latencies.length,
        runsListMs: { p50: +pct(0.5).toFixed(1), p95: +pct(0.95).toFixed(1), max: +latencies.at(-1)!.toFixed(1) },
        eventLoopDelayMs: { p50: +(lag.percentile(50) / 1e6).toFixed(1), p99: +(lag.percentile(99) / 1e6).toFixed(1), max: +(lag.max / 1e6).toFixed(1) },
      };
      t.diagnostic(`load test: ${JSON.stringify(report)}`);
      console.log(`# load test: ${JSON.stringify(report)}`);
      for (const ws of sockets) ws.close();
      assert.equal(rows, total, 'every metrics event is in the database');
      assert.ok(logLines >= total + 5, 'and in events.jsonl (plus started, done and the service lines)');
      assert.deepEqual(counts, [total, total], 'every WebSocket client saw every event');
      const series = await api.metrics.series({ runId, names: ['loss'], points: 500 });
      assert.equal(series.series[0]!.count.reduce((a, b) => a + b, 0), total);
      assert.equal(series.series[0]!.count.length, 500);
      assert.equal(series.series[0]!.max[0], 1, 'the first bucket keeps its spike (loss 1 at step 1)');
      assert.ok(pct(0.95) < 250, `p95 latency of other requests under load: ${pct(0.95).toFixed(1)} ms`);
    } finally {
      fakeEnv = null;
    }
  });
});
