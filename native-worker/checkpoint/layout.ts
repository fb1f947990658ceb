// Checkpoint layouts: which naming a tensor map uses (timm or the official ConvNeXt / ConvNeXt-V2 repos),
// where its model weights sit (a {'model': ...} wrapper, a DDP `module.` prefix, an FCMAE `encoder.`), which
// variant it holds, and the conversion to canonical timm names and shapes and back. All renaming goes
// through the one table RULES.
//
// Canonical form: timm names and shapes (fc1/fc2 weights (out, in, 1, 1) for atto..nano, (out, in) from
// tiny up; GRN weight/bias (4C,)). An FCMAE model with its decoder keeps the encoder under `encoder.` and the
// decoder under its official names and shapes; FCMAE encoder-only files become plain encoder weights with
// no `head.*`.
//
// Public API:
//   type Naming = 'timm' | 'official'
//   interface LayoutReport { naming, prefix, arch, notes }
//   detectLayout(tensors, file, options?): LayoutReport      options.entry picks 'model' | 'model_ema' | ...
//   toCanonical(tensors, report, file): { tensors: TensorMap; origins: Map<canonical, source name> }
//   toOfficial(canonical, arch): TensorMap                   official names and shapes (shares the data)
import { type ConvNeXtVersion, FCMAE_DECODER_DIM, VARIANTS, variantByName } from '../../common/variants.ts';
import type { DetectedArch } from './validate.ts';
import { type LazyTensor, type Tensor, type TensorMap, CheckpointError, formatShape, numel } from './tensor.ts';

export type Naming = 'timm' | 'official';

export interface LayoutReport {
  /** How the model keys are named. */
  readonly naming: Naming;
  /** The key prefix in front of the model (encoder) weights, e.g. '', 'model.', 'state_dict.module.', 'model.encoder.'. */
  readonly prefix: string;
  /** What the weights are: variant, version, head (numClasses), decoder. All fields filled in. */
  readonly arch: DetectedArch;
  /** Things a user should know: wrappers used, parts missing, entries ignored. */
  readonly notes: readonly string[];
}

type ShapeKind = 'mlp' | 'grn' | 'decoderGrn' | 'decoderLinear';

interface Rule {
  readonly official: string;
  readonly timm: string;
  readonly shape?: ShapeKind;
}

// Placeholders: {i} stage, {j} block, {k} layer in a Sequential, {n} 1|2, {p} weight|bias, {g} gamma|beta.
// First match wins, so the stem comes before the other downsamplers. Decoder keys keep their names.
const RULES: readonly Rule[] = [
  { official: 'downsample_layers.0.{k}.{p}', timm: 'stem.{k}.{p}' },
  { official: 'downsample_layers.{i}.{k}.{p}', timm: 'stages.{i}.downsample.{k}.{p}' },
  { official: 'stages.{i}.{j}.gamma', timm: 'stages.{i}.blocks.{j}.gamma' },
  { official: 'stages.{i}.{j}.dwconv.{p}', timm: 'stages.{i}.blocks.{j}.conv_dw.{p}' },
  { official: 'stages.{i}.{j}.norm.{p}', timm: 'stages.{i}.blocks.{j}.norm.{p}' },
  { official: 'stages.{i}.{j}.pwconv{n}.weight', timm: 'stages.{i}.blocks.{j}.mlp.fc{n}.weight', shape: 'mlp' },
  { official: 'stages.{i}.{j}.pwconv{n}.bias', timm: 'stages.{i}.blocks.{j}.mlp.fc{n}.bias' },
  { official: 'stages.{i}.{j}.grn.gamma', timm: 'stages.{i}.blocks.{j}.mlp.grn.weight', shape: 'grn' },
  { official: 'stages.{i}.{j}.grn.beta', timm: 'stages.{i}.blocks.{j}.mlp.grn.bias', shape: 'grn' },
  { official: 'norm.{p}', timm: 'head.norm.{p}' },
  { official: 'head.{p}', timm: 'head.fc.{p}' },
  { official: 'decoder.{j}.grn.{g}', timm: 'decoder.{j}.grn.{g}', shape: 'decoderGrn' },
  { official: 'decoder.{j}.pwconv{n}.weight', timm: 'decoder.{j}.pwconv{n}.weight', shape: 'decoderLinear' },
];

const PLACEHOLDER: Record<string, string> = { i: '\\d+', j: '\\d+', k: '\\d+', n: '[12]', p: 'weight|bias', g: 'gamma|beta' };
const compile = (template: string) =>
  new RegExp(`^${template.replace(/\./g, '\\.').replace(/\{(\w)\}/g, (_, x: string) => `(?<${x}>${PLACEHOLDER[x]!})`)}$`);
const COMPILED = RULES.map((r) => ({ rule: r, official: compile(r.official), timm: compile(r.timm) }));
const DECODER_KEY = /^(mask_token$|proj\.|decoder\.|pred\.)/;

/** Renames `name` from one naming to the other; undefined when no rule matches. */
function rename(name: string, from: Naming, to: Naming): { name: string; shape?: ShapeKind } | undefined {
  for (const c of COMPILED) {
    const m = c[from].exec(name);
    if (!m) continue;
    const renamed = c.rule[to].replace(/\{(\w)\}/g, (_, x: string) => m.groups![x]!);
    return c.rule.shape ? { name: renamed, shape: c.rule.shape } : { name: renamed };
  }
  return undefined;
}

/** The shape of a `kind` tensor in the target form, or the shape unchanged when it is not a known form. */
function adaptShape(shape: readonly number[], kind: ShapeKind | undefined, to: Naming, convMlp: boolean): number[] {
  const s = [...shape];
  switch (kind) {
    case 'mlp':
    case 'decoderLinear': {
      const isLinear = s.length === 2;
      const isConv1x1 = s.length === 4 && s[2] === 1 && s[3] === 1;
      if (!isLinear && !isConv1x1) return s;
      return kind === 'mlp' && to === 'timm' && convMlp ? [s[0]!, s[1]!, 1, 1] : [s[0]!, s[1]!];
    }
    case 'grn':
    case 'decoderGrn': {
      // GRN parameters come as (1, 1, 1, C), (1, C) (FCMAE files) or (C,): only the last dim counts.
      const c = s[s.length - 1];
      if (c === undefined || numel(s) !== c) return s;
      return kind === 'grn' && to === 'timm' ? [c] : [1, 1, 1, c];
    }
    case undefined:
      return s;
  }
}

const STEM = /^(.*?)(downsample_layers\.0\.0\.weight|stem\.0\.weight)$/;
// Wrappers in order of preference when a file holds several models (training checkpoints keep both).
const PREFERRED_ENTRIES = ['', 'model', 'state_dict', 'model_ema', 'module'];

export interface DetectOptions {
  /** The wrapper entry to read, e.g. 'model_ema', when the file holds several models. */
  readonly entry?: string;
}

export function detectLayout(tensors: ReadonlyMap<string, { readonly shape: readonly number[] }>, file: string, options: DetectOptions = {}): LayoutReport {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${file}: ${msg}`);
  };
  const notes: string[] = [];

  let candidates: { prefix: string; naming: Naming }[] = [];
  for (const key of tensors.keys()) {
    const m = STEM.exec(key);
    if (m && (m[1] === '' || m[1]!.endsWith('.'))) candidates.push({ prefix: m[1]!, naming: m[2]!.startsWith('stem') ? 'timm' : 'official' });
  }
  if (!candidates.length) fail("no ConvNeXt weights found (looked for 'downsample_layers.0.0.weight' or 'stem.0.weight')");
  const entryOf = (prefix: string) => prefix.split('.')[0]!;
  if (options.entry !== undefined) {
    const wanted = options.entry;
    candidates = candidates.filter((c) => entryOf(c.prefix) === wanted);
    if (!candidates.length) fail(`no ConvNeXt weights under '${wanted}'`);
  }
  const rank = (prefix: string) => {
    const r = PREFERRED_ENTRIES.indexOf(entryOf(prefix));
    return r < 0 ? PREFERRED_ENTRIES.length : r;
  };
  candidates.sort((a, b) => rank(a.prefix) - rank(b.prefix) || a.prefix.length - b.prefix.length);
  const { prefix, naming } = candidates[0]!;
  if (candidates.length > 1) {
    notes.push(`the file holds several models (${candidates.map((c) => `'${c.prefix || '(top level)'}'`).join(', ')}); read '${prefix || '(top level)'}'`);
  } else if (prefix) {
    notes.push(`model weights read from under '${prefix}'`);
  }

  const fcmae = prefix === 'encoder.' || prefix.endsWith('.encoder.');
  const base = fcmae ? prefix.slice(0, -'encoder.'.length) : prefix;
  const local = new Map<string, readonly number[]>();
  let decoderKeys = 0;
  let decoderDim = FCMAE_DECODER_DIM;
  let decoderDepth = 0;
  let ignored = 0;
  let ignoredExample = '';
  for (const [key, t] of tensors) {
    if (key.startsWith(prefix)) local.set(key.slice(prefix.length), t.shape);
    else if (fcmae && key.startsWith(base) && DECODER_KEY.test(key.slice(base.length))) {
      // The decoder's width and depth are configurable: read them off proj and decoder.<j>.
      const k = key.slice(base.length);
      if (k === 'proj.weight') decoderDim = t.shape[0] ?? decoderDim;
      const block = /^decoder\.(\d+)\./.exec(k);
      if (block) decoderDepth = Math.max(decoderDepth, Number(block[1]) + 1);
      decoderKeys++;
    } else if (ignored++ === 0) ignoredExample = key;
  }
  if (ignored) notes.push(`ignored ${ignored} tensor${ignored > 1 ? 's' : ''} outside the model weights (e.g. '${ignoredExample}')`);

  const sparse = [...local.keys()].find((k) => k.endsWith('.kernel') || /\.(ln|linear)\./.test(k));
  if (sparse !== undefined) {
    fail(`'${prefix}${sparse}' is a MinkowskiEngine sparse-conv weight (an FCMAE training checkpoint); only dense layouts are supported`);
  }

  // Variant, from the timm view of the names.
  const timm = new Map<string, readonly number[]>();
  for (const [name, shape] of local) timm.set(naming === 'timm' ? name : (rename(name, 'official', 'timm')?.name ?? name), shape);
  const dims: number[] = [];
  const depths: number[] = [];
  for (let i = 0; i < 4; i++) {
    const blocks = new Set<string>();
    for (const name of timm.keys()) {
      const m = /^stages\.(\d+)\.blocks\.(\d+)\./.exec(name);
      if (m && Number(m[1]) === i) blocks.add(m[2]!);
    }
    depths.push(blocks.size);
    dims.push(timm.get(`stages.${i}.blocks.0.conv_dw.weight`)?.[0] ?? 0);
  }
  const variant = VARIANTS.find((v) => v.dims.every((d, i) => d === dims[i]) && v.depths.every((d, i) => d === depths[i]));
  if (!variant) fail(`dims ${formatShape(dims)} and depths ${formatShape(depths)} match no ConvNeXt variant`);
  const names = [...timm.keys()];
  const hasGrn = names.some((n) => /\.mlp\.grn\./.test(n));
  const hasLayerScale = names.some((n) => /\.blocks\.\d+\.gamma$/.test(n));
  if (hasGrn === hasLayerScale) fail(hasGrn ? 'blocks have both GRN (V2) and layer scale (V1)' : 'blocks have neither GRN (V2) nor layer scale (V1)');
  const version: ConvNeXtVersion = hasGrn ? 2 : 1;
  if (!variant!.versions.includes(version)) fail(`ConvNeXt V${version} has no '${variant!.name}' variant`);

  const decoder = decoderKeys > 0;
  const fc = timm.get('head.fc.weight');
  const head = !decoder && (fc !== undefined || timm.has('head.norm.weight'));
  const numClasses = fc?.[0] ?? 0;
  if (decoder) notes.push('FCMAE model: encoder and decoder');
  else if (!head) notes.push('no classifier head: encoder weights only (head.* is missing)');
  if (fcmae && !decoder) notes.push("encoder weights taken out of 'encoder.'; the file has no decoder");
  return { naming, prefix, arch: { variant: variant!.name, version, head, numClasses, decoder, ...(decoder ? { decoderDim, decoderDepth } : {}) }, notes };
}

export function toCanonical(tensors: ReadonlyMap<string, LazyTensor>, report: LayoutReport, file: string): { tensors: TensorMap; origins: Map<string, string> } {
  const { prefix, naming, arch } = report;
  const convMlp = variantByName(arch.variant).convMlp;
  const base = arch.decoder ? prefix.slice(0, -'encoder.'.length) : prefix;
  const out: TensorMap = new Map();
  const origins = new Map<string, string>();
  const put = (key: string, target: string, shape: ShapeKind | undefined) => {
    if (out.has(target)) throw new CheckpointError(`${file}: '${origins.get(target)}' and '${key}' both map to '${target}'`);
    const t = tensors.get(key)!.read();
    out.set(target, { ...t, shape: adaptShape(t.shape, shape, 'timm', convMlp) } as Tensor);
    origins.set(target, key);
  };
  for (const key of tensors.keys()) {
    if (key.startsWith(prefix)) {
      const name = key.slice(prefix.length);
      // Names no rule knows are kept, so validation reports them under their own name.
      const r = naming === 'official' ? rename(name, 'official', 'timm') : rename(name, 'timm', 'timm');
      put(key, (arch.decoder ? 'encoder.' : '') + (r?.name ?? name), r?.shape);
    } else if (arch.decoder && key.startsWith(base) && DECODER_KEY.test(key.slice(base.length))) {
      const name = key.slice(base.length);
      put(key, name, rename(name, 'official', 'official')?.shape);
    }
  }
  return { tensors: out, origins };
}

/** Canonical tensors renamed and reshaped to the official repositories' layout (for their tools). */
export function toOfficial(canonical: TensorMap, arch: DetectedArch): TensorMap {
  const convMlp = variantByName(arch.variant).convMlp;
  const out: TensorMap = new Map();
  for (const [key, t] of canonical) {
    let name: string;
    let kind: ShapeKind | undefined;
    if (arch.decoder && key.startsWith('encoder.')) {
      const r = rename(key.slice('encoder.'.length), 'timm', 'official');
      if (!r) throw new RangeError(`no official name for '${key}'`);
      name = `encoder.${r.name}`;
      kind = r.shape;
    } else if (arch.decoder && DECODER_KEY.test(key)) {
      name = key;
      kind = rename(key, 'official', 'official')?.shape;
    } else {
      const r = rename(key, 'timm', 'official');
      if (!r) throw new RangeError(`no official name for '${key}'`);
      name = r.name;
      kind = r.shape;
    }
    out.set(name, { ...t, shape: adaptShape(t.shape, kind, 'official', convMlp) } as Tensor);
  }
  return out;
}
