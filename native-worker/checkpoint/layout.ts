// Checkpoint layouts: which naming a tensor map uses (timm or the official ConvNeXt / ConvNeXt-V2 repos),
// where its model weights sit (a {'model': ...} wrapper, a DDP `module.` prefix, an FCMAE `encoder.`), which
// variant it holds, and the conversion to canonical timm names and shapes and back. All renaming goes
// through the one table RULES, which also names the official FCMAE's sparse (MinkowskiEngine) encoder
// weights, as main_pretrain.py saves them; those are converted to dense tensors as the official
// fine-tuning script does (utils.remap_checkpoint_keys).
//
// Canonical form: timm names and shapes (fc1/fc2 weights (out, in, 1, 1) for atto..nano, (out, in) from
// tiny up; GRN weight/bias (4C,)). An FCMAE model with its decoder keeps the encoder under `encoder.` and the
// decoder under its official names and shapes; FCMAE encoder-only files become plain encoder weights with
// no `head.*`.
//
// Public API:
//   type Naming = 'timm' | 'official' | 'sparse'
//   interface LayoutReport { naming, prefix, arch, notes }
//   detectLayout(tensors, file, options?): LayoutReport      options.entry picks 'model' | 'model_ema' | ...
//   toCanonical(tensors, report, file): { tensors: TensorMap; origins: Map<canonical, source name> }
//   toOfficial(canonical, arch): TensorMap                   official names and shapes (shares the data)
import { type ConvNeXtVersion, FCMAE_DECODER_DIM, VARIANTS, variantByName } from '../../common/variants.ts';
import type { DetectedArch } from './validate.ts';
import { type LazyTensor, type Tensor, type TensorMap, CheckpointError, formatShape, numel } from './tensor.ts';

/** 'sparse': the official FCMAE encoder as MinkowskiEngine stores it (main_pretrain.py checkpoints). */
export type Naming = 'timm' | 'official' | 'sparse';

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
/** MinkowskiEngine's storage of a dense tensor: conv kernels as (k*k, Cin, Cout), depthwise as (k*k, C), biases (1, C). */
type SparseKind = 'convKernel' | 'dwKernel' | 'bias';

interface Rule {
  readonly official: string;
  readonly timm: string;
  readonly shape?: ShapeKind;
  /** The name in the official sparse FCMAE encoder (models/convnextv2_sparse.py), where it has one. */
  readonly sparse?: string;
  readonly sparseShape?: SparseKind;
}

// Placeholders: {i} stage, {j} block, {k} layer in a Sequential, {n} 1|2, {p} weight|bias, {g} gamma|beta.
// First match wins, so the stem comes before the other downsamplers. Decoder keys keep their names.
// Sparse names: MinkowskiLayerNorm and MinkowskiLinear wrap the torch module as `.ln` / `.linear`, sparse
// convs call their weight `kernel`; the stem and the decoder are dense in the official FCMAE too.
const RULES: readonly Rule[] = [
  { official: 'downsample_layers.0.{k}.{p}', timm: 'stem.{k}.{p}', sparse: 'downsample_layers.0.{k}.{p}' },
  { official: 'downsample_layers.{i}.0.{p}', timm: 'stages.{i}.downsample.0.{p}', sparse: 'downsample_layers.{i}.0.ln.{p}' },
  { official: 'downsample_layers.{i}.1.weight', timm: 'stages.{i}.downsample.1.weight', sparse: 'downsample_layers.{i}.1.kernel', sparseShape: 'convKernel' },
  { official: 'downsample_layers.{i}.1.bias', timm: 'stages.{i}.downsample.1.bias', sparse: 'downsample_layers.{i}.1.bias', sparseShape: 'bias' },
  { official: 'stages.{i}.{j}.gamma', timm: 'stages.{i}.blocks.{j}.gamma' },
  { official: 'stages.{i}.{j}.dwconv.weight', timm: 'stages.{i}.blocks.{j}.conv_dw.weight', sparse: 'stages.{i}.{j}.dwconv.kernel', sparseShape: 'dwKernel' },
  { official: 'stages.{i}.{j}.dwconv.bias', timm: 'stages.{i}.blocks.{j}.conv_dw.bias', sparse: 'stages.{i}.{j}.dwconv.bias', sparseShape: 'bias' },
  { official: 'stages.{i}.{j}.norm.{p}', timm: 'stages.{i}.blocks.{j}.norm.{p}', sparse: 'stages.{i}.{j}.norm.ln.{p}' },
  { official: 'stages.{i}.{j}.pwconv{n}.weight', timm: 'stages.{i}.blocks.{j}.mlp.fc{n}.weight', shape: 'mlp', sparse: 'stages.{i}.{j}.pwconv{n}.linear.weight' },
  { official: 'stages.{i}.{j}.pwconv{n}.bias', timm: 'stages.{i}.blocks.{j}.mlp.fc{n}.bias', sparse: 'stages.{i}.{j}.pwconv{n}.linear.bias' },
  { official: 'stages.{i}.{j}.grn.gamma', timm: 'stages.{i}.blocks.{j}.mlp.grn.weight', shape: 'grn', sparse: 'stages.{i}.{j}.grn.gamma' },
  { official: 'stages.{i}.{j}.grn.beta', timm: 'stages.{i}.blocks.{j}.mlp.grn.bias', shape: 'grn', sparse: 'stages.{i}.{j}.grn.beta' },
  { official: 'norm.{p}', timm: 'head.norm.{p}' },
  { official: 'head.{p}', timm: 'head.fc.{p}' },
  { official: 'decoder.{j}.grn.{g}', timm: 'decoder.{j}.grn.{g}', shape: 'decoderGrn' },
  { official: 'decoder.{j}.pwconv{n}.weight', timm: 'decoder.{j}.pwconv{n}.weight', shape: 'decoderLinear' },
];

const PLACEHOLDER: Record<string, string> = { i: '\\d+', j: '\\d+', k: '\\d+', n: '[12]', p: 'weight|bias', g: 'gamma|beta' };
const compile = (template: string) =>
  new RegExp(`^${template.replace(/\./g, '\\.').replace(/\{(\w)\}/g, (_, x: string) => `(?<${x}>${PLACEHOLDER[x]!})`)}$`);
const NEVER = /$^/;
const COMPILED = RULES.map((r) => ({ rule: r, official: compile(r.official), timm: compile(r.timm), sparse: r.sparse ? compile(r.sparse) : NEVER }));
const DECODER_KEY = /^(mask_token$|proj\.|decoder\.|pred\.)/;

/** Renames `name` from one naming to a dense one; undefined when no rule matches. */
function rename(name: string, from: Naming, to: Exclude<Naming, 'sparse'>): { name: string; shape?: ShapeKind; sparse?: SparseKind } | undefined {
  for (const c of COMPILED) {
    const m = c[from].exec(name);
    if (!m) continue;
    const renamed = c.rule[to].replace(/\{(\w)\}/g, (_, x: string) => m.groups![x]!);
    const sparse = from === 'sparse' ? c.rule.sparseShape : undefined;
    return { name: renamed, ...(c.rule.shape ? { shape: c.rule.shape } : {}), ...(sparse ? { sparse } : {}) };
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

/** A MinkowskiEngine tensor in dense form: kernel offset v = col * k + row (utils.remap_checkpoint_keys). */
function densify(t: Tensor, kind: SparseKind | undefined): Tensor {
  const s = t.shape;
  const k = Math.round(Math.sqrt(s[0] ?? 0));
  if (t.dtype !== 'float32' || !kind) return t;
  if (kind === 'bias') return s.length === 2 && s[0] === 1 ? { ...t, shape: [s[1]!] } : t;
  const [cin, cout] = kind === 'dwKernel' ? [1, s[1]!] : [s[1]!, s[2]!];
  if (k * k !== s[0] || s.length !== (kind === 'dwKernel' ? 2 : 3)) return t; // left for validation to report
  const out = new Float32Array(t.data.length);
  // Dense (Cout, Cin, k, k); depthwise: Cin = 1 and the channel is the sparse tensor's last dim.
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let r = 0; r < k; r++) {
        for (let c = 0; c < k; c++) out[((o * cin + i) * k + r) * k + c] = t.data[((c * k + r) * cin + i) * cout + o]!;
      }
    }
  }
  return { dtype: 'float32', shape: [cout, cin, k, k], data: out };
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
  const { prefix, naming: stemNaming } = candidates[0]!;
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

  const sparseKey = [...local.keys()].find((k) => k.endsWith('.kernel') || /\.(ln|linear)\./.test(k));
  if (sparseKey !== undefined && stemNaming === 'timm') fail(`'${prefix}${sparseKey}' is a MinkowskiEngine sparse weight among timm names`);
  const naming: Naming = sparseKey === undefined ? stemNaming : 'sparse';
  if (naming === 'sparse') notes.push('official FCMAE sparse encoder (MinkowskiEngine layout) converted to dense weights');

  // Variant, from the timm view of the names.
  const timm = new Map<string, readonly number[]>();
  for (const [name, shape] of local) timm.set(naming === 'timm' ? name : (rename(name, naming, 'timm')?.name ?? name), shape);
  const dims: number[] = [];
  const depths: number[] = [];
  for (let i = 0; i < 4; i++) {
    const blocks = new Set<string>();
    for (const name of timm.keys()) {
      const m = /^stages\.(\d+)\.blocks\.(\d+)\./.exec(name);
      if (m && Number(m[1]) === i) blocks.add(m[2]!);
    }
    depths.push(blocks.size);
    // The block's LayerNorm is (C,) in every layout (sparse kernels put C last).
    dims.push(timm.get(`stages.${i}.blocks.0.norm.weight`)?.[0] ?? 0);
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
  const put = (key: string, target: string, shape: ShapeKind | undefined, sparse?: SparseKind) => {
    if (out.has(target)) throw new CheckpointError(`${file}: '${origins.get(target)}' and '${key}' both map to '${target}'`);
    const t = densify(tensors.get(key)!.read(), sparse);
    out.set(target, { ...t, shape: adaptShape(t.shape, shape, 'timm', convMlp) } as Tensor);
    origins.set(target, key);
  };
  for (const key of tensors.keys()) {
    if (key.startsWith(prefix)) {
      const name = key.slice(prefix.length);
      // Names no rule knows are kept, so validation reports them under their own name.
      const r = rename(name, naming, 'timm');
      put(key, (arch.decoder ? 'encoder.' : '') + (r?.name ?? name), r?.shape, r?.sparse);
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
