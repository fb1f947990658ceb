// Reads torch.save files (the zip format of PyTorch >= 1.6): `<prefix>/data.pkl` is a pickle whose tensors
// point, through persistent ids, at raw storages `<prefix>/data/<key>`; `<prefix>/byteorder` (when present)
// gives their byte order. The pickle is read by our safe unpickler with the allowlist below: containers,
// argparse.Namespace, torch's tensor/parameter rebuild functions and storage/dtype names. Anything else
// (os.system, builtins.eval, any class with behaviour) stops the load where the pickle names it; the
// allowed globals are our own functions, so nothing from the file is ever executed.
//
// Public API:
//   interface TorchFile { root: unknown; tensors: Map<string, LazyTensor>; metadata: Record<string, string> }
//   parseTorchZip(bytes, file): TorchFile
//       `tensors` holds every tensor in the file under its dotted path ('model.stem.0.weight',
//       'optimizer.state.0.exp_avg'); data is decoded on read(). `metadata` holds the top-level scalars
//       (epoch, ...) and argparse namespaces as JSON.
import { type StoredDType, ITEM_SIZE, decodeElements } from './dtypes.ts';
import { type PyGlobal, PyObject, unpickle } from './pickle.ts';
import { type LazyTensor, type Tensor, CheckpointError, makeTensor, numel } from './tensor.ts';
import { openZip } from './zip.ts';

export interface TorchFile {
  root: unknown;
  tensors: Map<string, LazyTensor>;
  metadata: Record<string, string>;
}

/** A global standing for an element type: a storage class (torch.FloatStorage) or a dtype (torch.float32). */
class ElementTypeName implements PyGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly dtype: StoredDType,
  ) {}
}

/** One tensor storage of the file: `numel` elements of `dtype`, read from the zip entry on first use. */
class Storage {
  private readonly decoded = new Map<StoredDType, Tensor['data']>();
  constructor(
    readonly key: string,
    readonly dtype: StoredDType,
    readonly numel: number,
    private readonly loadBytes: () => Uint8Array,
    private readonly littleEndian: boolean,
  ) {}

  /** The storage's bytes as elements of `dtype` (torch's v3 rebuild may view a storage as another type). */
  elements(dtype: StoredDType): Tensor['data'] {
    let data = this.decoded.get(dtype);
    if (!data) {
      const bytes = this.loadBytes();
      const used = bytes.byteLength - (bytes.byteLength % ITEM_SIZE[dtype]);
      data = decodeElements(bytes.subarray(0, used), dtype, this.littleEndian);
      this.decoded.set(dtype, data);
    }
    return data;
  }
}

/** A tensor of the file: a strided view of a storage, copied out contiguously by read(). */
class TorchTensor implements LazyTensor {
  /** The first dotted path it was found under, for error messages. */
  path = '';
  constructor(
    private readonly file: string,
    readonly storage: Storage,
    readonly dtype: StoredDType,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}

  get storedAs(): string {
    return this.dtype;
  }

  read(): Tensor {
    const src = this.storage.elements(this.dtype);
    const n = numel(this.shape);
    const shape = [...this.shape];
    if (n === 0) return makeTensor(shape, src instanceof Float32Array ? new Float32Array(0) : new BigInt64Array(0));
    // Stride-0 views can claim far more elements than the storage holds; typed arrays stop at 2^32.
    if (n >= 2 ** 32) throw new CheckpointError(`${this.file}: tensor '${this.path}' has ${n} elements, too many to load`);
    let last = this.offset;
    for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * this.stride[d]!;
    if (last >= src.length) {
      throw new CheckpointError(
        `${this.file}: tensor '${this.path}' reaches element ${last} of storage '${this.storage.key}', which holds ${src.length}`,
      );
    }
    return makeTensor(shape, gather(src, this.offset, shape, this.stride));
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** Copies the strided view (offset, shape, stride) of `src` into a new row-major array. */
function gather<T extends Float32Array | BigInt64Array>(src: T, offset: number, shape: readonly number[], stride: readonly number[]): T {
  const n = numel(shape);
  if (isContiguous(shape, stride)) return src.slice(offset, offset + n) as T;
  const out = (src instanceof Float32Array ? new Float32Array(n) : new BigInt64Array(n)) as T;
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]!;
  const index = new Array<number>(rank).fill(0);
  let base = offset;
  for (let o = 0; o < n; ) {
    for (let k = 0; k < inner; k++) out[o++] = src[base + k * innerStride]!;
    // Odometer over the outer dimensions.
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      base += stride[d]!;
      if (index[d]! < shape[d]!) break;
      base -= index[d]! * stride[d]!;
      index[d] = 0;
    }
  }
  return out;
}

const STORAGE_TYPES: Record<string, StoredDType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UntypedStorage: 'U8',
};

const DTYPES: Record<string, StoredDType> = {
  float32: 'F32',
  float: 'F32',
  float64: 'F64',
  double: 'F64',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isIndexList = (v: unknown): v is number[] => Array.isArray(v) && v.every(isIndex);

/** The allowed globals of one file, by 'module.name'. */
function allowedGlobals(file: string): Map<string, PyGlobal> {
  const bad = (what: string): never => {
    throw new CheckpointError(`${file}: malformed ${what} in data.pkl`);
  };
  const globals = new Map<string, PyGlobal>();
  const allow = (qualifiedName: string, call?: (args: readonly unknown[]) => unknown) =>
    globals.set(qualifiedName, call ? { qualifiedName, call } : { qualifiedName });

  for (const [name, dtype] of Object.entries(STORAGE_TYPES)) globals.set(`torch.${name}`, new ElementTypeName(`torch.${name}`, dtype));
  for (const [name, dtype] of Object.entries(DTYPES)) globals.set(`torch.${name}`, new ElementTypeName(`torch.${name}`, dtype));

  const tensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown, dtype?: unknown): TorchTensor => {
    if (!(storage instanceof Storage)) return bad('tensor record (no storage)');
    if (!isIndex(offset) || !isIndexList(size) || !isIndexList(stride) || size.length !== stride.length) return bad('tensor record');
    const viewType = dtype === undefined ? storage.dtype : dtype instanceof ElementTypeName ? dtype.dtype : bad('tensor dtype');
    return new TorchTensor(file, storage, viewType, offset, [...size], [...stride]);
  };
  allow('torch._utils._rebuild_tensor', (a) => tensor(a[0], a[1], a[2], a[3]));
  allow('torch._utils._rebuild_tensor_v2', (a) => tensor(a[0], a[1], a[2], a[3]));
  allow('torch._utils._rebuild_tensor_v3', (a) => tensor(a[0], a[1], a[2], a[3], a[6]));
  // A Parameter is its data: requires_grad, hooks and extra state do not matter for weights.
  const parameter = (a: readonly unknown[]) => (a[0] instanceof TorchTensor ? a[0] : bad('parameter record'));
  allow('torch._utils._rebuild_parameter', parameter);
  allow('torch._utils._rebuild_parameter_with_state', parameter);
  allow('torch.Tensor');
  allow('torch.nn.parameter.Parameter');
  // Tensors carrying Python attributes: (rebuild function, class, its arguments, attributes).
  allow('torch._tensor._rebuild_from_type_v2', (a) => {
    const [fn, cls, args] = a;
    const ok = (cls as PyGlobal | undefined)?.qualifiedName;
    if (ok !== 'torch.Tensor' && ok !== 'torch.nn.parameter.Parameter') return bad('tensor subclass record');
    if (!fn || !(fn as PyGlobal).call || !Array.isArray(args)) return bad('tensor subclass record');
    const t = (fn as PyGlobal).call!(args);
    return t instanceof TorchTensor ? t : bad('tensor subclass record');
  });

  allow('collections.OrderedDict', (a) => {
    const d = new Map<unknown, unknown>();
    const items = a[0] ?? [];
    if (!Array.isArray(items)) return bad('OrderedDict arguments');
    for (const kv of items) {
      if (!Array.isArray(kv) || kv.length !== 2) return bad('OrderedDict item');
      d.set(kv[0], kv[1]);
    }
    return d;
  });
  const set = (a: readonly unknown[]) => new Set(Array.isArray(a[0]) ? a[0] : a.length ? bad('set arguments') : []);
  allow('builtins.set', set);
  allow('builtins.frozenset', set);
  // Protocol 2 writes bytes as _codecs.encode(text, 'latin1'): a pure conversion, implemented here.
  allow('_codecs.encode', (a) => {
    const [text, encoding] = a;
    if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) return bad('bytes record');
    return Uint8Array.from(text, (c) => (c.charCodeAt(0) < 256 ? c.charCodeAt(0) : bad('bytes record')));
  });
  allow('torch.Size', (a) => (isIndexList(a[0]) ? Object.freeze([...a[0]]) : bad('torch.Size')));
  allow('torch.device', (a) => (typeof a[0] === 'string' ? (isIndex(a[1]) ? `${a[0]}:${a[1]}` : a[0]) : bad('torch.device')));
  allow('argparse.Namespace', () => new PyObject('argparse.Namespace'));
  return globals;
}

/** Plain JSON-able form of a metadata value; tensors and other objects are described, not expanded. */
function plain(v: unknown, seen: Set<unknown>): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof TorchTensor) return `tensor ${JSON.stringify(v.shape)}`;
  if (typeof v !== 'object' || seen.has(v)) return null;
  seen.add(v);
  if (Array.isArray(v)) return v.map((x) => plain(x, seen));
  const entries = v instanceof PyObject ? [...v.attrs] : v instanceof Map ? [...v] : null;
  if (!entries) return null;
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries) Object.defineProperty(out, String(k), { value: plain(x, seen), enumerable: true });
  return out;
}

export function parseTorchZip(bytes: Uint8Array, file: string): TorchFile {
  const zip = openZip(bytes, file);
  const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    throw new CheckpointError(`${file}: not a torch.save archive (expected one '<name>/data.pkl' entry, found ${pickles.length})`);
  }
  const prefix = pickles[0]!.slice(0, -'data.pkl'.length);
  let littleEndian = true;
  if (zip.entries.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw new CheckpointError(`${file}: unknown byte order '${order}' in ${prefix}byteorder`);
    littleEndian = order === 'little';
  }

  const globals = allowedGlobals(file);
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    // ('storage', storage type, key, location, numel)
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new CheckpointError(`${file}: unknown persistent id in data.pkl`);
    const [, type, key, , count] = pid as unknown[];
    if (!(type instanceof ElementTypeName) || typeof key !== 'string' || !isIndex(count)) {
      throw new CheckpointError(`${file}: malformed storage record in data.pkl`);
    }
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== type.dtype || known.numel !== count) throw new CheckpointError(`${file}: storage '${key}' is described twice, differently`);
      return known;
    }
    const entry = `${prefix}data/${key}`;
    const loadBytes = () => {
      if (!zip.entries.has(entry)) throw new CheckpointError(`${file}: storage entry '${entry}' is missing`);
      const data = zip.read(entry);
      const expected = count * ITEM_SIZE[type.dtype];
      if (data.byteLength !== expected) {
        throw new CheckpointError(`${file}: storage entry '${entry}' holds ${data.byteLength} bytes, expected ${expected} (${count} x ${type.dtype})`);
      }
      return data;
    };
    const storage = new Storage(key, type.dtype, count, loadBytes, littleEndian);
    storages.set(key, storage);
    return storage;
  };
  const root = unpickle(zip.read(`${prefix}data.pkl`), {
    file: `${file} (${prefix}data.pkl)`,
    findGlobal: (module, name) => globals.get(`${module}.${name}`),
    persistentLoad,
  });

  const tensors = new Map<string, LazyTensor>();
  const visited = new Set<unknown>();
  const walk = (v: unknown, path: string) => {
    if (v instanceof TorchTensor) {
      if (tensors.has(path)) throw new CheckpointError(`${file}: two tensors are named '${path}'`);
      if (!v.path) v.path = path;
      tensors.set(path, v);
      return;
    }
    if (typeof v !== 'object' || v === null || visited.has(v)) return;
    visited.add(v);
    const join = (k: unknown) => (path ? `${path}.${String(k)}` : String(k));
    if (v instanceof Map) {
      for (const [k, x] of v) if (typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint') walk(x, join(k));
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, join(i)));
    }
  };
  walk(root, '');

  const metadata: Record<string, string> = {};
  if (root instanceof Map) {
    for (const [k, v] of root) {
      if (typeof k !== 'string') continue;
      const scalar = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint';
      const value = scalar ? String(v) : v instanceof PyObject ? JSON.stringify(plain(v, new Set())) : undefined;
      if (value !== undefined) Object.defineProperty(metadata, k, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  return { root, tensors, metadata };
}
