// Job events as JSON lines on a stream (stdout for a worker): the protocol both engines speak
// (common/protocol.ts). Logs written before `started` are held until it, so `started` is always first;
// non-finite numbers travel as null so every line is strict JSON.
import type { Writable } from 'node:stream';
import type { JobEvent } from '../../common/protocol.ts';

type Payload<T extends JobEvent['type']> = Omit<Extract<JobEvent, { type: T }>, 'v' | 'type'>;

export class EventSink {
  private started = false;
  private held: string[] = [];

  constructor(private readonly out: Pick<Writable, 'write'>) {}

  emit<T extends JobEvent['type']>(type: T, fields: Payload<T>): void {
    const line = JSON.stringify({ v: 1, type, ...fields }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
    if (type === 'log' && !this.started) {
      this.held.push(line);
      return;
    }
    const lines = type === 'started' ? [line, ...this.held] : [...this.held, line];
    this.held = [];
    this.started ||= type === 'started';
    this.out.write(lines.map((l) => `${l}\n`).join(''));
  }

  log(message: string, level: 'debug' | 'info' | 'warning' | 'error' = 'info'): void {
    this.emit('log', { level, message });
  }
}
