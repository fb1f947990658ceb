// The renderer's web-mode transport against the real `cnx serve` server: requests and their errors as
// ApiError with the backend's message, a server that cannot be reached, and events over the WebSocket,
// including a dropped connection that comes back.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { ApiError, type Settings } from '../../common/api.ts';
import type { PreloadBridge } from '../../common/api/electron-transport.ts';
import { createApiClient } from '../../common/api-client.ts';
import { dispatch } from '../../main/api/dispatch.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { type WebServer, startWebServer } from '../../main/web/server.ts';
import { bridgeTransport } from '../../renderer/api/transport-bridge.ts';
import { type ConnectionState, type SocketLike, createHttpTransport } from '../../renderer/api/transport-http.ts';
import { tempDir, waitFor } from '../helpers/services.ts';

const TOKEN = 'test-token';
let dir: string;
let wb: Workbench;
let server: WebServer;

/** The ws package's socket behind the transport's interface, sending the token as a browser's cookie would. */
function nodeSocket(url: string): SocketLike {
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const s: SocketLike = { onopen: null, onclose: null, onerror: null, onmessage: null, close: () => ws.close() };
  ws.on('open', () => s.onopen?.(null));
  ws.on('close', () => s.onclose?.(null));
  ws.on('error', (e) => s.onerror?.(e));
  ws.on('message', (data) => s.onmessage?.({ data: data.toString() }));
  return s;
}

const start = (port = 0) => startWebServer({ workbench: wb, rendererDir: join(dir, 'renderer'), token: TOKEN, port });

before(async () => {
  dir = tempDir('ui-transport');
  mkdirSync(join(dir, 'renderer'));
  wb = await Workbench.open({ workspace: join(dir, 'ws') });
  server = await start();
});
after(async () => {
  await server.close();
  await wb.close();
  rmSync(dir, { recursive: true, force: true });
});

test('requests return values; refusals are ApiErrors with the backend message and code', async () => {
  const api = createApiClient(createHttpTransport({ origin: `http://127.0.0.1:${server.port}`, headers: { Authorization: `Bearer ${TOKEN}` }, openSocket: nodeSocket }));
  const s = await api.settings.get({});
  assert.equal(s.workspace, join(dir, 'ws'));
  await assert.rejects(api.datasets.get({ name: 'missing' }), (e: unknown) => e instanceof ApiError && e.code === 'not-found' && /missing/.test(e.message));
  const noToken = createApiClient(createHttpTransport({ origin: `http://127.0.0.1:${server.port}`, openSocket: nodeSocket }));
  await assert.rejects(noToken.settings.get({}), (e: unknown) => e instanceof ApiError && e.code === 'unauthorized' && /token/.test(e.message));
});

test('a server that cannot be reached is an error saying so, not a hang', async () => {
  const api = createApiClient(createHttpTransport({ origin: 'http://127.0.0.1:9', openSocket: nodeSocket }));
  await assert.rejects(api.settings.get({}), (e: unknown) => e instanceof ApiError && /cannot reach the workbench server/.test(e.message));
});

test('events arrive over the WebSocket, and again after the connection dropped and came back', async () => {
  const states: ConnectionState[] = [];
  const api = createApiClient(
    createHttpTransport({ origin: `http://127.0.0.1:${server.port}`, headers: { Authorization: `Bearer ${TOKEN}` }, openSocket: nodeSocket, onConnection: (s) => states.push(s), retryMs: { min: 50, max: 200 } }),
  );
  const seen: Settings[] = [];
  const stop = api.onSettings((s) => seen.push(s));
  await waitFor('the socket', () => server.clients === 1);
  await api.settings.update({ cpuJobSlots: 2 });
  await waitFor('the settings event', () => seen.some((s) => s.cpuJobSlots === 2));

  const port = server.port;
  await server.close();
  await waitFor('the drop to be noticed', () => states.includes('closed'));
  server = await start(port);
  await waitFor('the reconnect', () => server.clients === 1 && states.at(-1) === 'open', 10_000);
  await api.settings.update({ cpuJobSlots: 3 });
  await waitFor('an event after the reconnect', () => seen.some((s) => s.cpuJobSlots === 3));
  stop();
  await waitFor('the socket to close when nobody listens', () => server.clients === 0);
});

test("Electron's bridge transport: backend errors keep their code and field, events arrive as batches", async () => {
  // The preload's bridge as the main process answers it (dispatch), with the structured clone IPC applies.
  const bridge: PreloadBridge = {
    invoke: async (method, request) => structuredClone(await dispatch(wb.handlers, method, structuredClone(request))),
    listen: (onJson) => wb.hub.subscribe((batch) => onJson(batch.json())),
  };
  const api = createApiClient(bridgeTransport(bridge));
  await assert.rejects(api.runs.create({ config: { version: 1, kind: 'finetune', model: { arch: 'convnext_gigantic', numClasses: 3 }, data: { batchSize: 4 } } }), (e: unknown) => {
    assert.ok(e instanceof ApiError, 'an ApiError made on the page side');
    assert.equal(e.code, 'invalid');
    assert.match(e.field ?? '', /^config\./);
    return true;
  });
  await assert.rejects(api.tasks.get({ taskId: 'analysis-nothere' }), (e: unknown) => e instanceof ApiError && e.code === 'not-found' && /analysis-nothere/.test(e.message));
  const seen: Settings[] = [];
  const stop = api.onSettings((s) => seen.push(s));
  await api.settings.update({ cpuJobSlots: 4 });
  await waitFor('the settings event', () => seen.some((s) => s.cpuJobSlots === 4));
  stop();
});
