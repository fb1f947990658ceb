// The event hub: services publish stream events here; transports (WebSocket clients, Electron windows)
// subscribe and receive them in batches, at most one per tick, serialised once for all subscribers.
// Thousands of metric events a second become a few dozen messages, each a single JSON string.
import { type ApiStream, type StreamPayload, apiStreams } from '../../common/api.ts';

export interface HubItem {
  stream: ApiStream;
  data: unknown;
  /** The item's JSON ({"stream":..,"data":..}); computed once, shared by every transport. */
  json: string;
}

export interface HubBatch {
  items: readonly HubItem[];
  /** The batch as the wire format { "events": [...] }, serialised on first use. */
  json(): string;
}

export type HubListener = (batch: HubBatch) => void;

export class EventHub {
  private queue: HubItem[] = [];
  private scheduled = false;
  private readonly listeners = new Set<HubListener>();
  private readonly validate: boolean;

  /** `validate`: check each payload against the contract as it is published (off only for hot streams). */
  constructor(opts: { validate?: boolean } = {}) {
    this.validate = opts.validate ?? true;
  }

  /**
   * Publishes one event. `dataJson` may carry the payload's JSON when the caller already has it (worker
   * events keep the worker's own text), sparing a serialisation on the hot path.
   */
  publish<S extends ApiStream>(stream: S, data: StreamPayload<S>, dataJson?: string): void {
    if (this.validate && dataJson === undefined) {
      const r = apiStreams[stream].safeParse(data);
      if (!r.success) throw new Error(`event on '${stream}' breaks the contract: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`);
    }
    if (!this.listeners.size) return;
    this.queue.push({ stream, data, json: `{"stream":"${stream}","data":${dataJson ?? JSON.stringify(data)}}` });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.deliver());
    }
  }

  subscribe(listener: HubListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  private deliver(): void {
    this.scheduled = false;
    const items = this.queue;
    this.queue = [];
    if (!items.length) return;
    let json: string | null = null;
    const batch: HubBatch = { items, json: () => (json ??= `{"events":[${items.map((i) => i.json).join(',')}]}`) };
    for (const l of this.listeners) {
      try {
        l(batch);
      } catch {
        // A broken subscriber (a closed socket) must not stop delivery to the others.
      }
    }
  }
}
