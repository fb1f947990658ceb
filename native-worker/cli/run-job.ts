// `cnx run-job CONFIG.json`: the ONNX engine's worker entry. Runs a job config and writes its events as
// JSON lines on stdout, exactly as `python3 native-worker/torch/run_job.py CONFIG.json` does for the
// PyTorch engine. SIGTERM/SIGINT checkpoint and stop (done: cancelled).
import { readFileSync } from 'node:fs';
import { EventSink } from '../jobs/events.ts';
import { runJob } from '../jobs/run-job.ts';
import { type Command, CliError, parseOptions } from './command.ts';

const HELP = `usage: cnx run-job <config.json | -> [--threads N]

Runs a job config (common/job.ts) on the ONNX engine; events (common/protocol.ts) go to stdout, one JSON
object per line. Exit code 0 when the job completed or was cancelled, 1 when it failed.`;

export const runJobCommand: Command = {
  summary: 'run a job config on the ONNX engine, events as JSON lines (worker entry)',
  async run(args) {
    const o = parseOptions(args, { threads: { type: 'string', default: '0' } }, HELP);
    if (!o) return 0;
    const file = o.positionals[0];
    if (!file) throw new CliError(`missing the config file\n\n${HELP}`);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (e) {
      throw new CliError(`${file}: not a readable JSON job config (${(e as Error).message})`);
    }
    const status = await runWithSignals(raw, new EventSink(process.stdout), Number(o.values.threads) || 0);
    return status === 'failed' ? 1 : 0;
  },
};

/** Runs a job in this process; SIGTERM and SIGINT abort it (it checkpoints first). */
export async function runWithSignals(raw: unknown, sink: EventSink, threads: number) {
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    return await runJob(raw, { sink, signal: abort.signal, threads });
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}
