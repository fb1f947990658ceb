// Shared by the renderer's store tests: a fresh Pinia per test and the renderer's API client over either a
// real Workbench (its handlers and event hub, every message round-tripped through JSON as on a socket) or
// a few scripted handlers with streams the test pushes by hand.
import { createPinia, setActivePinia } from 'pinia';
import type { ApiMethod, ApiStream, StreamPayload } from '../../common/api.ts';
import { type ApiTransport, createApiClient } from '../../common/api-client.ts';
import { dispatch } from '../../main/api/dispatch.ts';
import type { ApiHandlers, Workbench } from '../../main/services/workbench.ts';
import { setApi } from '../../renderer/api/client.ts';

const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

export function freshPinia(): void {
  setActivePinia(createPinia());
}

/** The renderer's client over an in-process workbench; returns the transport's request log. */
export function apiOverWorkbench(wb: Workbench): { calls: { method: ApiMethod; request: unknown }[] } {
  const calls: { method: ApiMethod; request: unknown }[] = [];
  const transport: ApiTransport = {
    invoke: async (method, request) => {
      calls.push({ method, request });
      return wire(await dispatch(wb.handlers, method, wire(request), () => undefined));
    },
    listen: (onBatch) => wb.hub.subscribe((batch) => onBatch(JSON.parse(batch.json()))),
  };
  freshPinia();
  setApi(createApiClient(transport));
  return { calls };
}

export interface ScriptedApi {
  calls: { method: ApiMethod; request: unknown }[];
  /** Pushes one event to the client, as the server's hub would. */
  emit<S extends ApiStream>(stream: S, data: StreamPayload<S>): void;
  /** Requests answered so far and still pending. */
  pending(): number;
  /** Releases held requests (see hold). */
  release(): void;
  /** While true, requests wait until release(): to observe in-flight behaviour. */
  hold: boolean;
}

/** The renderer's client over hand-written handlers (responses still checked against the contract). */
export function scriptedApi(handlers: Partial<ApiHandlers>): ScriptedApi {
  const listeners = new Set<(batch: unknown) => void>();
  let held: (() => void)[] = [];
  let inFlight = 0;
  const api: ScriptedApi = {
    calls: [],
    hold: false,
    emit: (stream, data) => listeners.forEach((l) => l(wire({ events: [{ stream, data }] }))),
    pending: () => inFlight,
    release: () => {
      const h = held;
      held = [];
      h.forEach((r) => r());
    },
  };
  const transport: ApiTransport = {
    invoke: async (method, request) => {
      api.calls.push({ method, request });
      inFlight++;
      if (api.hold) await new Promise<void>((r) => held.push(r));
      try {
        return wire(await dispatch(handlers as ApiHandlers, method, wire(request), () => undefined));
      } finally {
        inFlight--;
      }
    },
    listen: (onBatch) => {
      listeners.add(onBatch);
      return () => listeners.delete(onBatch);
    },
  };
  freshPinia();
  setApi(createApiClient(transport));
  return api;
}

/** Lets pending promise callbacks and timers of 0 ms run. */
export const settle = (ms = 0) => new Promise((r) => setTimeout(r, ms));
