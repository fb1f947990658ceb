// The renderer's entry: installs the API client (in Electron the one the preload exposes over IPC, else one
// over HTTP + WebSocket to the server that served this page) and mounts the app.
import { createPinia } from 'pinia';
import { createApp } from 'vue';
import { PRELOAD_GLOBAL, type WorkbenchApi } from '../common/api.ts';
import { createApiClient } from '../common/api-client.ts';
import App from './App.vue';
import { setApi } from './api/client.ts';
import { type SocketLike, createHttpTransport } from './api/transport-http.ts';
import { useUiStore } from './stores/ui.ts';
import './styles/app.css';

/** The browser's WebSocket behind the transport's small socket interface. */
function browserSocket(url: string): SocketLike {
  const ws = new WebSocket(url);
  const s: SocketLike = { onopen: null, onclose: null, onerror: null, onmessage: null, close: () => ws.close() };
  ws.onopen = (e) => s.onopen?.(e);
  ws.onclose = (e) => s.onclose?.(e);
  ws.onerror = (e) => s.onerror?.(e);
  ws.onmessage = (e) => s.onmessage?.({ data: e.data });
  return s;
}

const pinia = createPinia();
const ui = useUiStore(pinia);
// Electron's preload validates both ways itself; its errors cross the context bridge as plain Errors (message only).
const preloaded = (window as unknown as Partial<Record<typeof PRELOAD_GLOBAL, WorkbenchApi>>)[PRELOAD_GLOBAL];
setApi(
  preloaded ??
    createApiClient(createHttpTransport({ origin: location.origin, openSocket: browserSocket, onConnection: (state) => ui.setConnection(state) }), {
      onInvalidEvent: (stream, message) => console.warn(`dropped an event on '${stream}' that breaks the API contract: ${message}`),
    }),
);

createApp(App).use(pinia).mount('#app');
