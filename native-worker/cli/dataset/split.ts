// cnx dataset split: a seeded, stratified train/val(/test) split, logged as one undoable edit.
import { stratifiedSplit } from '../../data/curate/edits.ts';
import { type Command, CliError, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, numberOption, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset split <name> --val F [--test F] [--seed N] [options]

Re-splits usable images per class: a fraction F of each class goes to val (and to test with --test),
the rest to train. Without --test, images already in test stay there. The same seed gives the same split.
Undo with 'cnx dataset undo <name>'.
  --val F           fraction for val, in [0, 1)
  --test F          fraction for test, in [0, 1) (default 0: leave test alone)
  --seed N          non-negative integer (default 0)
${WORKSPACE_HELP}
${JSON_HELP}`;

const fraction = (n: number) => n >= 0 && n < 1;

export const splitCommand: Command = {
  summary: 'stratified, seeded train/val(/test) split',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption, val: { type: 'string' }, test: { type: 'string' }, seed: { type: 'string' } }, help);
    if (!parsed) return 0;
    const name = positional(parsed.positionals, 0, 'the dataset name', help);
    noExtraPositionals(parsed.positionals, 1, help);
    if (parsed.values.val === undefined) throw new CliError(`missing --val F\n\n${help}`);
    const val = numberOption(parsed.values.val, 'val', 0, fraction);
    const test = numberOption(parsed.values.test, 'test', 0, fraction);
    const seed = numberOption(parsed.values.seed, 'seed', 0, (n) => Number.isSafeInteger(n) && n >= 0);
    const result = await withCatalog(parsed.values.workspace, (catalog) => stratifiedSplit(catalog, name, { val, test, seed }));
    const out = { dataset: name, val, test, seed, counts: result.counts, changed: result.edit?.changes ?? 0, edit: result.edit?.id ?? null };
    if (parsed.values.json) printJson(out);
    else console.log(`split '${name}' (seed ${seed}): train ${out.counts.train}, val ${out.counts.val}, test ${out.counts.test}; ${out.changed} image(s) moved`);
    return 0;
  },
};
