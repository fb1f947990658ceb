// The renderer's entry: installs the API client (over the preload's IPC bridge in Electron, else over
// HTTP + WebSocket to the server that served this page) and mounts the app.
import { createPinia } from 'pinia';
import { createApp } from 'vue';
import { PRELOAD_GLOBAL, type PreloadBridge } from '../common/api/electron-transport.ts';
import { createApiClient } from '../common/api-client.ts';
import App from './App.vue';
import { setApi } from './api/client.ts';
import { bridgeTransport } from './api/transport-bridge.ts';
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
const bridge = (window as unknown as Partial<Record<typeof PRELOAD_GLOBAL, PreloadBridge>>)[PRELOAD_GLOBAL];
const transport = bridge
  ? bridgeTransport(bridge)
  : createHttpTransport({ origin: location.origin, openSocket: browserSocket, onConnection: (state) => ui.setConnection(state) });
setApi(createApiClient(transport, { onInvalidEvent: (stream, message) => console.warn(`dropped an event on '${stream}' that breaks the API contract: ${message}`) }));

createApp(App).use(pinia).mount('#app');
