// cnx dataset <subcommand>: the catalog commands, one module each under cli/dataset/.
import { type Command, CliError } from './command.ts';
import { dupesCommand } from './dataset/dupes.ts';
import { embedCommand } from './dataset/embed.ts';
import { exportManifestCommand } from './dataset/export-manifest.ts';
import { importCommand } from './dataset/import.ts';
import { issuesCommand } from './dataset/issues.ts';
import { listCommand } from './dataset/list.ts';
import { splitCommand } from './dataset/split.ts';
import { statsCommand } from './dataset/stats.ts';
import { undoCommand } from './dataset/undo.ts';

const subcommands: Record<string, Command> = {
  import: importCommand,
  list: listCommand,
  stats: statsCommand,
  dupes: dupesCommand,
  embed: embedCommand,
  issues: issuesCommand,
  split: splitCommand,
  undo: undoCommand,
  'export-manifest': exportManifestCommand,
};

function usage(): string {
  const rows = Object.entries(subcommands).map(([name, c]) => `  ${name.padEnd(17)}${c.summary}`);
  return ['usage: cnx dataset <subcommand> [options]', '', 'subcommands:', ...rows, '', "run 'cnx dataset <subcommand> --help' for its options"].join('\n');
}

export const datasetCommand: Command = {
  summary: 'import, inspect, curate and export datasets',
  async run(args) {
    const [name, ...rest] = args;
    if (!name || name === '--help' || name === '-h') {
      console.log(usage());
      return name ? 0 : 2;
    }
    const sub = subcommands[name];
    if (!sub) throw new CliError(`unknown subcommand '${name}'\n\n${usage()}`);
    return sub.run(rest);
  },
};
