// The renderer's entry: picks the transport (Electron's preload bridge when present, else HTTP + WebSocket
// to the server that served this page), installs the API client, and mounts the app.
import { createPinia } from 'pinia';
import { createApp } from 'vue';
import { createApiClient } from '../common/api-client.ts';
import { HOST_BRIDGE_KEY, type HostBridge } from '../common/host-bridge.ts';
import App from './App.vue';
import { setApi } from './api/client.ts';
import { type SocketLike, createHttpTransport } from './api/transport-http.ts';
import { createIpcTransport } from './api/transport-ipc.ts';
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
const bridge = (window as unknown as Partial<Record<typeof HOST_BRIDGE_KEY, HostBridge>>)[HOST_BRIDGE_KEY];
const transport = bridge
  ? createIpcTransport(bridge)
  : createHttpTransport({ origin: location.origin, openSocket: browserSocket, onConnection: (state) => ui.setConnection(state) });
setApi(createApiClient(transport, { onInvalidEvent: (stream, message) => console.warn(`dropped an event on '${stream}' that breaks the API contract: ${message}`) }));

createApp(App).use(pinia).mount('#app');
