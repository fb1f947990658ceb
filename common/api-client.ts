// The renderer's side of the WorkbenchApi over any transport (Electron IPC or HTTP + WebSocket): builds
// api.<group>.<method>() and api.on<Stream>() from the contract, validating every request before it
// leaves and every response and event when it arrives.
import {
  ApiError,
  ApiResult,
  type ApiMethod,
  type ApiStream,
  type StreamPayload,
  type Unsubscribe,
  type WorkbenchApi,
  API_METHOD_NAMES,
  API_STREAM_NAMES,
  StreamBatch,
  apiMethods,
  apiStreams,
  invalidRequest,
  streamHook,
} from './api.ts';

/** How requests and event batches travel; implemented once per transport. */
export interface ApiTransport {
  /** Sends one request; resolves with the raw ApiResult envelope. */
  invoke(method: ApiMethod, request: unknown): Promise<unknown>;
  /** Starts delivering event batches ({ events: [{ stream, data }] }); returns how to stop. */
  listen(onBatch: (batch: unknown) => void): Unsubscribe;
}

export interface ApiClientOptions {
  /** Called for an event that does not match the contract (it is dropped). */
  onInvalidEvent?: (stream: string, message: string) => void;
}

/** Calls a method: validates the request, unwraps the envelope, validates the response. */
export async function callApi<M extends ApiMethod>(transport: ApiTransport, method: M, request: unknown) {
  const spec = apiMethods[method];
  const req = spec.request.safeParse(request);
  if (!req.success) throw invalidRequest(req.error);
  const envelope = ApiResult.safeParse(await transport.invoke(method, req.data));
  if (!envelope.success) throw new ApiError('internal', `${method}: the answer is not an API result envelope`);
  if (!envelope.data.ok) {
    const e = envelope.data.error;
    throw new ApiError(e.code, e.message, e.field);
  }
  const res = spec.response.safeParse(envelope.data.value);
  if (!res.success) throw new ApiError('internal', `${method}: the response does not match the contract (${res.error.issues[0]?.path.join('.')}: ${res.error.issues[0]?.message})`);
  return res.data;
}

export function createApiClient(transport: ApiTransport, options: ApiClientOptions = {}): WorkbenchApi {
  const api: Record<string, unknown> = {};
  for (const name of API_METHOD_NAMES) {
    const [group, fn] = name.split('.') as [string, string];
    const target = (api[group] ??= {}) as Record<string, unknown>;
    target[fn] = (request: unknown) => callApi(transport, name, request);
  }

  const listeners = new Map<ApiStream, Set<(payload: never) => void>>();
  let stop: Unsubscribe | null = null;
  const deliver = (raw: unknown) => {
    const batch = StreamBatch.safeParse(raw);
    if (!batch.success) {
      options.onInvalidEvent?.('(batch)', batch.error.issues[0]?.message ?? 'invalid batch');
      return;
    }
    for (const item of batch.data.events) {
      const set = listeners.get(item.stream);
      if (!set?.size) continue;
      const payload = apiStreams[item.stream].safeParse(item.data);
      if (!payload.success) {
        options.onInvalidEvent?.(item.stream, `${payload.error.issues[0]?.path.join('.')}: ${payload.error.issues[0]?.message}`);
        continue;
      }
      for (const l of set) l(payload.data as never);
    }
  };
  // The transport listens only while someone does, so an idle window costs no event traffic.
  const subscribe = <S extends ApiStream>(stream: S, listener: (payload: StreamPayload<S>) => void): Unsubscribe => {
    let set = listeners.get(stream);
    if (!set) listeners.set(stream, (set = new Set()));
    set.add(listener as (payload: never) => void);
    stop ??= transport.listen(deliver);
    return () => {
      set.delete(listener as (payload: never) => void);
      if (![...listeners.values()].some((s) => s.size) && stop) {
        stop();
        stop = null;
      }
    };
  };
  for (const stream of API_STREAM_NAMES) api[streamHook(stream)] = (listener: (payload: StreamPayload<typeof stream>) => void) => subscribe(stream, listener);
  return api as WorkbenchApi;
}
