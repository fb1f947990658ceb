// cnx dataset undo: reverts the dataset's newest curation edit (split, relabel, move, exclude).
import { undoLastEdit } from '../../data/curate/edits.ts';
import { type Command, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset undo <name> [options]

Undoes the newest edit that is not undone yet.
${WORKSPACE_HELP}
${JSON_HELP}`;

export const undoCommand: Command = {
  summary: 'undo the newest curation edit',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption }, help);
    if (!parsed) return 0;
    const name = positional(parsed.positionals, 0, 'the dataset name', help);
    noExtraPositionals(parsed.positionals, 1, help);
    const edit = await withCatalog(parsed.values.workspace, (catalog) => undoLastEdit(catalog, name));
    if (parsed.values.json) printJson({ dataset: name, undone: edit });
    else console.log(edit ? `undid edit ${edit.id}: ${edit.summary} (${edit.changes} change(s))` : `nothing to undo in '${name}'`);
    return 0;
  },
};
