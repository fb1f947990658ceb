// `cnx inspect`: what a checkpoint holds: format, layout, model, parameters, notes.
import { type LoadedCheckpoint, loadCheckpoint } from '../checkpoint/load.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { writeJson } from './model-io.ts';

const HELP = `usage: cnx inspect <checkpoint> [--json] [--tensors] [--save FILE]

Reads safetensors (ours or timm), official .pt/.pth files (FCMAE training checkpoints too) and Hugging Face /
timm model folders (config.json + model.safetensors or pytorch_model.bin) without running any code from them.
--save writes the JSON summary to FILE as well (the workbench keeps it for an imported checkpoint).`;

/** Where the file comes from, as far as its layout and entries tell. */
function describeSource(c: LoadedCheckpoint): string {
  const training = ['model', 'optimizer', 'epoch', 'args'].every((k) => c.entries.includes(k));
  if (c.layout === 'sparse') {
    return training
      ? `official FCMAE training checkpoint (main_pretrain.py: ${c.entries.join(', ')}), sparse encoder${c.arch.decoder ? ' and decoder' : ''}`
      : `official FCMAE ${c.arch.decoder ? 'model' : 'encoder only'} (sparse MinkowskiEngine layout)`;
  }
  if (c.arch.decoder) return `FCMAE model (encoder and decoder, ${c.layout} names)`;
  if (c.folder) return `Hugging Face / timm model folder (${c.folder.architecture})`;
  if (!c.arch.head) return c.layout === 'official' ? 'encoder only, official names (the released FCMAE weights have this form)' : `encoder only (${c.layout} names)`;
  return training ? `official training checkpoint (${c.entries.join(', ')})` : `classifier (${c.layout} names)`;
}

/** The decoder line: what reconstruction can do with this file. */
function describeDecoder(c: LoadedCheckpoint): string {
  if (c.arch.decoder) return `present (${c.arch.decoderDim} wide, ${c.arch.decoderDepth} block${c.arch.decoderDepth === 1 ? '' : 's'}): cnx reconstruct uses it`;
  return 'absent: the file holds no FCMAE decoder, so it cannot reconstruct; fine-tune from it (--init), or pretrain a decoder here starting from it';
}

function parsedArgs(c: LoadedCheckpoint): unknown {
  try {
    return c.metadata.args === undefined ? undefined : JSON.parse(c.metadata.args);
  } catch {
    return c.metadata.args;
  }
}

export const inspectCommand: Command = {
  summary: 'show what a checkpoint holds (model, layout, parameters)',
  async run(args) {
    const o = parseOptions(args, { json: { type: 'boolean' }, tensors: { type: 'boolean' }, save: { type: 'string' } }, HELP);
    if (!o) return 0;
    const file = o.positionals[0];
    if (!file || o.positionals.length > 1) throw new CliError(`expected one checkpoint path\n\n${HELP}`);
    const c = await loadCheckpoint(file).catch((e: Error) => {
      throw new CliError(e.message);
    });
    const params = [...c.tensors.values()].reduce((s, t) => s + t.data.length, 0);
    const model = `${c.arch.version === 2 ? 'convnextv2' : 'convnext'}_${c.variant}`;
    const epoch = c.metadata.epoch !== undefined && /^-?\d+$/.test(c.metadata.epoch) ? Number(c.metadata.epoch) : undefined;
    const trainArgs = parsedArgs(c);
    const summary = {
      file, format: c.format, layout: c.layout, model, kind: c.arch.decoder ? 'fcmae' : c.arch.head ? 'classifier' : 'encoder',
      source: describeSource(c), decoder: c.arch.decoder, decoderNote: describeDecoder(c),
      numClasses: c.arch.numClasses, ...(c.arch.decoder ? { decoderDim: c.arch.decoderDim, decoderDepth: c.arch.decoderDepth } : {}),
      ...(epoch !== undefined ? { epoch } : {}), ...(trainArgs !== undefined ? { args: trainArgs } : {}),
      ...(c.folder ? { labels: c.folder.labels, preprocessing: { inputSize: c.folder.inputSize, mean: c.folder.mean, std: c.folder.std, cropPct: c.folder.cropPct, interpolation: c.folder.interpolation } } : {}),
      tensors: c.tensors.size, parameters: params, metadata: c.metadata, notes: c.notes,
      ...(o.values.tensors ? { shapes: Object.fromEntries([...c.tensors].map(([k, t]) => [k, t.shape])) } : {}),
    };
    if (o.values.save) writeJson(o.values.save, summary);
    if (o.values.json) {
      console.log(JSON.stringify(summary, null, 2));
      return 0;
    }
    console.log(`${file}\n  ${summary.kind} ${model} (${(params / 1e6).toFixed(2)}M parameters in ${c.tensors.size} tensors)`);
    console.log(`  ${summary.source}`);
    console.log(`  format ${c.format}, ${c.layout} names${c.arch.head ? `, ${c.arch.numClasses} classes` : ''}`);
    if (c.arch.head === false) console.log(`  decoder: ${summary.decoderNote}`);
    if (c.folder) {
      const f = c.folder;
      console.log(`  timm folder: labels ${f.labels ? f.labels.slice(0, 10).join(', ') + (f.labels.length > 10 ? ', ...' : '') : 'none'}`);
      console.log(`  preprocessing: input ${f.inputSize ?? '?'} px, crop ${f.cropPct ?? '?'}, ${f.interpolation ?? '?'}, mean ${JSON.stringify(f.mean)}, std ${JSON.stringify(f.std)}`);
    }
    for (const n of c.notes) console.log(`  note: ${n}`);
    for (const [k, val] of Object.entries(c.metadata)) console.log(`  ${k}: ${val.length > 400 ? `${val.slice(0, 400)}...` : val}`);
    if (o.values.tensors) for (const [k, t] of c.tensors) console.log(`  ${k.padEnd(48)} ${t.shape.join('x')}`);
    return 0;
  },
};
