// The `cnx` command line: one module per command under cli/, each registered here.
import { type Command, CliError } from './cli/command.ts';
import { analyzeCommand } from './cli/analyze.ts';
import { reconstructImagesCommand } from './cli/reconstruct-images.ts';
import { datasetCommand } from './cli/dataset.ts';
import { demo } from './cli/demo.ts';
import { doctorCommand } from './cli/doctor.ts';
import { exportCommand } from './cli/export.ts';
import { explainCommand } from './cli/explain.ts';
import { gradCommand } from './cli/grad.ts';
import { inferCommand } from './cli/infer.ts';
import { inspectCommand } from './cli/inspect.ts';
import { launchCommand } from './cli/launch.ts';
import { reconstructCommand } from './cli/reconstruct.ts';
import { runJobCommand } from './cli/run-job.ts';
import { evalCommand, finetuneCommand, pretrainCommand } from './cli/train.ts';

const commands: Record<string, Command> = {
  demo,
  dataset: datasetCommand,
  pretrain: pretrainCommand,
  finetune: finetuneCommand,
  eval: evalCommand,
  'run-job': runJobCommand,
  infer: inferCommand,
  grad: gradCommand,
  reconstruct: reconstructCommand,
  'reconstruct-images': reconstructImagesCommand,
  export: exportCommand,
  inspect: inspectCommand,
  analyze: analyzeCommand,
  explain: explainCommand,
  doctor: doctorCommand,
  launch: launchCommand,
};

function usage(all: Record<string, Command>): string {
  const rows = Object.entries(all).map(([name, c]) => `  ${name.padEnd(20)}${c.summary}`);
  return ['usage: cnx <command> [options]', '', 'commands:', ...rows, '', "run 'cnx <command> --help' for its options"].join('\n');
}

/**
 * Runs `cnx <argv>`. `extra` adds commands registered by the entry point (bin/run-cnx.mjs adds `serve`, which
 * belongs to the main process and cannot be imported from here).
 */
export async function main(argv: readonly string[], extra: Record<string, Command> = {}): Promise<number> {
  const all = { ...commands, ...extra };
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage(all));
    return name ? 0 : 2;
  }
  const cmd = all[name];
  if (!cmd) {
    console.error(`cnx: unknown command '${name}'\n\n${usage(all)}`);
    return 2;
  }
  try {
    return (await cmd.run(rest)) ?? 0;
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`cnx ${name}: ${e.message}`);
      return 2;
    }
    console.error(`cnx ${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 1;
  }
}
