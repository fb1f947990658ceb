// cnx dataset stats: per-class and per-split counts, balance, formats and size outliers.
import { DEFAULT_INPUT_SIZE, type DatasetStats, datasetStats } from '../../data/curate/stats.ts';
import { type Command, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, numberOption, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset stats <name> [options]

Counts per class and split (corrupt and excluded images are counted apart), class balance, formats, size
outliers (images whose area or shape is far from this dataset's typical one) and how many images are
smaller than the training input size (the loader upscales them).
  --input-size PX       the training input size to compare with (default ${DEFAULT_INPUT_SIZE})
${WORKSPACE_HELP}
${JSON_HELP}`;

function format(s: DatasetStats): string {
  const lines = [
    `dataset '${s.dataset}' (${s.kind}, ${s.root})${s.scanState === 'complete' ? '' : ' [scan incomplete]'}`,
    `  ${s.images} usable images: train ${s.splits.train}, val ${s.splits.val}, test ${s.splits.test}; ${s.corrupt} corrupt, ${s.excluded} excluded`,
  ];
  if (s.classes.length) {
    const w = Math.max(5, ...s.classes.map((c) => c.name.length));
    lines.push(`  ${'class'.padEnd(w)}  ${'train'.padStart(7)} ${'val'.padStart(7)} ${'test'.padStart(7)} ${'total'.padStart(7)}`);
    for (const c of s.classes) lines.push(`  ${c.name.padEnd(w)}  ${[c.train, c.val, c.test, c.total].map((n) => String(n).padStart(7)).join(' ')}`);
  }
  const unl = s.unlabeled.train + s.unlabeled.val + s.unlabeled.test;
  if (unl) lines.push(`  unlabeled: ${unl} (train ${s.unlabeled.train}, val ${s.unlabeled.val}, test ${s.unlabeled.test})`);
  if (s.imbalance) {
    lines.push(`  balance: largest '${s.imbalance.largest}' / smallest '${s.imbalance.smallest}' = ${s.imbalance.ratio === null ? 'inf (empty class)' : s.imbalance.ratio.toFixed(2)}`);
  }
  lines.push(`  formats: ${Object.entries(s.formats).map(([f, n]) => `${f} ${n}`).join(', ') || '-'}`);
  const o = s.outliers;
  if (s.size) lines.push(`  sizes: width ${s.size.minWidth}..${s.size.maxWidth}, height ${s.size.minHeight}..${s.size.maxHeight}; typical ${o.typical!.width}x${o.typical!.height}`);
  if (o.small + o.large + o.aspect) {
    lines.push(`  size outliers (far from the typical size or shape): ${o.small} small, ${o.large} large, ${o.aspect} extreme aspect ratio`);
    for (const e of o.examples) lines.push(`    ${e.path}: ${e.width}x${e.height} (${e.reason})`);
  } else if (s.size) lines.push('  size outliers: none');
  const b = s.belowInputSize;
  if (b.count) lines.push(`  warning: ${b.count === s.images ? 'all ' : ''}${b.count} images are smaller than the ${b.inputSize} px input size (shorter side) and will be upscaled`);
  return lines.join('\n');
}

export const statsCommand: Command = {
  summary: 'class balance, split counts, formats and size outliers',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption, 'input-size': { type: 'string' } }, help);
    if (!parsed) return 0;
    const name = positional(parsed.positionals, 0, 'the dataset name', help);
    noExtraPositionals(parsed.positionals, 1, help);
    const inputSize = numberOption(parsed.values['input-size'], 'input-size', DEFAULT_INPUT_SIZE, (n) => Number.isInteger(n) && n > 0);
    const stats = await withCatalog(parsed.values.workspace, (catalog) => datasetStats(catalog, name, { inputSize }));
    if (parsed.values.json) printJson(stats);
    else console.log(format(stats));
    return 0;
  },
};
