// What every `cnx` command module exports.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../../common/errors.ts';

export interface Command {
  readonly summary: string;
  /** Runs the command with its own arguments; returns the exit code (0 when undefined). */
  run(args: readonly string[]): Promise<number | void>;
}

/** A user mistake (bad option, missing file): printed without a stack trace, exit code 2. */
export class CliError extends UserError {
  override name = 'CliError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with errors turned into CliError and `--help` answered from `help`. */
export function parseOptions<O extends Options>(args: readonly string[], options: O, help: string) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${help}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(help);
    return null;
  }
  return parsed as { values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K]['multiple'] extends true ? string[] : string }; positionals: string[] };
}
