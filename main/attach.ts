// `cnx attach RUN_DIR`: follows a run folder that no local service supervises (a cluster run written by
// `cnx launch`, a run of another workbench on a shared disk) live from its events.jsonl. Read-only: it never
// writes into the folder. Dispatched from bin/cnx.mjs (the CLI in native-worker may not import main/).
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command, CliError, parseOptions } from '../native-worker/cli/command.ts';
import { EVENTS_FILE, type RunLine, parseRunLine, readRunMeta } from './services/run-log.ts';

const HELP = `usage: cnx attach RUN_DIR [--json] [--once] [--poll-ms N]

Follows a run folder live from its events.jsonl, read-only (marked remote): progress, metrics, checkpoints,
evaluations and each attempt's outcome. It ends when the run completes, fails or is cancelled; an interrupted
attempt (a SLURM time limit) is followed into the requeued one.
  --json        print the log's lines as they are (JSON)
  --once        print what is there now and exit
  --poll-ms N   how often to look for new lines (default 1000)`;

const FINAL = new Set(['completed', 'failed', 'cancelled']);

export const attachCommand: Command = {
  summary: 'follow a run folder (e.g. a cluster run) live from its events.jsonl, read-only',
  async run(args) {
    const o = parseOptions(args, { json: { type: 'boolean' }, once: { type: 'boolean' }, 'poll-ms': { type: 'string', default: '1000' } }, HELP);
    if (!o) return 0;
    const dir = o.positionals[0];
    if (!dir || o.positionals.length > 1) throw new CliError(`give one run folder\n\n${HELP}`);
    const meta = await readRunMeta(dir);
    if (!meta && !existsSync(join(dir, EVENTS_FILE))) throw new CliError(`${dir}: not a run folder (no run.json/config.json, no ${EVENTS_FILE})`);
    const poll = Number(o.values['poll-ms']);
    if (!(poll > 0)) throw new CliError(`--poll-ms must be a positive number, got '${o.values['poll-ms']}'`);
    if (!o.values.json) console.log(`remote run ${meta?.meta.name ?? dir} (read-only): ${dir}`);
    let outcome: string | null = null;
    await follow(join(dir, EVENTS_FILE), poll, !!o.values.once, (line, raw) => {
      if (o.values.json) console.log(raw);
      else {
        const text = describe(line);
        if (text) console.log(text);
      }
      if ('svc' in line && line.svc.type === 'exit' && FINAL.has(line.svc.outcome)) outcome = line.svc.outcome;
      return outcome !== null;
    });
    return outcome === 'failed' ? 1 : 0;
  },
};

/** Calls `onLine` for every complete line, now and as they are appended, until it returns true. */
async function follow(file: string, pollMs: number, once: boolean, onLine: (line: RunLine, raw: string) => boolean): Promise<void> {
  let offset = 0;
  let partial = '';
  for (;;) {
    const handle = await open(file, 'r').catch(() => null);
    if (handle) {
      try {
        const { size } = await handle.stat();
        if (size > offset) {
          const buf = Buffer.alloc(size - offset);
          const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          partial = lines.pop()!; // a line still being written
          for (const raw of lines) {
            const line = raw.trim() ? parseRunLine(raw) : null;
            if (line && onLine(line, raw)) return;
          }
        }
      } finally {
        await handle.close();
      }
    }
    if (once) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function describe(line: RunLine): string | null {
  if ('svc' in line) {
    const s = line.svc;
    if (s.type === 'attempt') return `attempt ${s.attempt} started (${s.engine}${s.resumedFromStep !== null ? `, resumed from step ${s.resumedFromStep}` : ''})`;
    if (s.type === 'exit') return `attempt ${s.attempt} ended: ${s.outcome}${s.error ? ` (${s.error.message})` : ''}`;
    return null;
  }
  const e = line.event;
  if (e.type === 'progress') return `step ${e.step}/${e.totalSteps}  epoch ${e.epoch.toFixed(2)}  ${(e.imagesPerSec ?? 0).toFixed(1)} img/s`;
  if (e.type === 'metrics') return e.values.loss !== undefined ? `step ${e.step}  loss ${e.values.loss?.toFixed(4)}  lr ${e.values.lr?.toExponential(2)}` : null;
  if (e.type === 'checkpoint') return `checkpoint @${e.step}: ${e.path}`;
  if (e.type === 'eval') return `eval @${e.step} (${e.weights}): top-1 ${((e.top1 ?? 0) * 100).toFixed(2)}%  (${e.images} images)`;
  if (e.type === 'started') return `${e.kind} ${e.arch} on the ${e.engine} engine (${e.device})`;
  if (e.type === 'log' && e.level !== 'debug') return `${e.level}: ${e.message}`;
  if (e.type === 'error') return `error: ${e.message}`;
  if (e.type === 'done') return `done: ${e.status}`;
  return null;
}
