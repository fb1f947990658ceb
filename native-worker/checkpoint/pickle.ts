// A safe unpickler: it reads the pickle opcodes that torch.save emits (protocols 2 to 5, binary forms only)
// and builds plain JS values. It never looks anything up by name: every GLOBAL goes through the caller's
// `findGlobal`, and a global it does not know stops the load. Nothing in the file can run code.
//
// Python values become: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
// str -> string, bytes -> Uint8Array, list -> array, tuple -> frozen array, dict -> Map, set -> Set, and
// whatever the allowed globals build (see PyGlobal).
//
// Public API:
//   interface PyGlobal { qualifiedName; call?(args) }     what findGlobal returns for an allowed global
//   class PyObject { className; attrs }                   an instance of an allowed plain-data class
//   interface UnpickleOptions { file, findGlobal(module, name), persistentLoad(pid) }
//   unpickle(bytes, options): unknown                     throws CheckpointError naming the file
import { CheckpointError } from './tensor.ts';

/** An allowed global. Without `call` it is a marker (a dtype, a storage type) usable only as data. */
export interface PyGlobal {
  readonly qualifiedName: string;
  /** REDUCE and NEWOBJ: build the object from its positional arguments. */
  call?(args: readonly unknown[]): unknown;
}

/** An instance of an allowed data class such as argparse.Namespace: its attributes, set by BUILD. */
export class PyObject {
  readonly attrs = new Map<string, unknown>();
  constructor(readonly className: string) {}
}

export interface UnpickleOptions {
  /** Named in every error. */
  readonly file: string;
  /** Returns undefined to refuse the global. */
  findGlobal(module: string, name: string): PyGlobal | undefined;
  /** Resolves BINPERSID references (torch: tensor storages). */
  persistentLoad(pid: unknown): unknown;
}

const MARK = 0x28; // (
const STOP = 0x2e; // .
const POP = 0x30; // 0
const POP_MARK = 0x31; // 1
const DUP = 0x32; // 2
const BINFLOAT = 0x47; // G
const BININT = 0x4a; // J
const BININT1 = 0x4b; // K
const BININT2 = 0x4d; // M
const NONE = 0x4e; // N
const BINPERSID = 0x51; // Q
const REDUCE = 0x52; // R
const BINSTRING = 0x54; // T
const SHORT_BINSTRING = 0x55; // U
const BINUNICODE = 0x58; // X
const BINBYTES = 0x42; // B
const SHORT_BINBYTES = 0x43; // C
const EMPTY_LIST = 0x5d; // ]
const APPEND = 0x61; // a
const BUILD = 0x62; // b
const GLOBAL = 0x63; // c
const DICT = 0x64; // d
const APPENDS = 0x65; // e
const BINGET = 0x68; // h
const LONG_BINGET = 0x6a; // j
const LIST = 0x6c; // l
const BINPUT = 0x71; // q
const LONG_BINPUT = 0x72; // r
const SETITEM = 0x73; // s
const TUPLE = 0x74; // t
const SETITEMS = 0x75; // u
const EMPTY_DICT = 0x7d; // }
const EMPTY_TUPLE = 0x29; // )
const PROTO = 0x80;
const NEWOBJ = 0x81;
const TUPLE1 = 0x85;
const TUPLE2 = 0x86;
const TUPLE3 = 0x87;
const NEWTRUE = 0x88;
const NEWFALSE = 0x89;
const LONG1 = 0x8a;
const LONG4 = 0x8b;
const SHORT_BINUNICODE = 0x8c;
const BINUNICODE8 = 0x8d;
const BINBYTES8 = 0x8e;
const EMPTY_SET = 0x8f;
const ADDITEMS = 0x90;
const FROZENSET = 0x91;
const NEWOBJ_EX = 0x92;
const STACK_GLOBAL = 0x93;
const MEMOIZE = 0x94;
const FRAME = 0x95;

const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);
const isList = (v: unknown): v is unknown[] => Array.isArray(v) && !Object.isFrozen(v);
const isGlobal = (v: unknown): v is PyGlobal => typeof v === 'object' && v !== null && 'qualifiedName' in v;

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (isGlobal(v)) return v.qualifiedName;
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Map) return 'dict';
  if (v instanceof PyObject) return v.className;
  return typeof v;
}

/** Builds the value a pickle describes; throws CheckpointError for malformed or disallowed content. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const { file } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let op = 0;
  let opAt = 0;
  const fail = (msg: string): never => {
    throw new CheckpointError(`${file}: pickle opcode 0x${op.toString(16)} at byte ${opAt}: ${msg}`);
  };
  const take = (n: number): number => {
    if (n < 0 || pos + n > bytes.byteLength) fail('unexpected end of data (truncated pickle)');
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => bytes[take(1)]!;
  const u16 = () => view.getUint16(take(2), true);
  const u32 = () => view.getUint32(take(4), true);
  const u64 = () => {
    const v = view.getBigUint64(take(8), true);
    if (v > BigInt(bytes.byteLength)) fail(`length ${v} exceeds the pickle`);
    return Number(v);
  };
  const raw = (n: number) => bytes.subarray(take(n), pos);
  const utf8 = (n: number) => {
    const b = raw(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated line');
    return new TextDecoder('latin1').decode(raw(end - pos + 1)).slice(0, -1);
  };
  const signedLong = (n: number): number | bigint => {
    const b = raw(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const pop = (): unknown => {
    if (!stack.length) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (!stack.length) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const outer = marks.pop();
    if (!outer) return fail('no MARK on the stack');
    stack = outer;
    return items;
  };
  const resolve = (module: string, name: string): PyGlobal => {
    const g = options.findGlobal(module, name);
    if (!g) {
      throw new CheckpointError(
        `${file}: refusing to load: the pickle asks for the global '${module}.${name}', which is not an allowed data type (nothing was executed)`,
      );
    }
    return g;
  };
  const call = (callee: unknown, args: unknown): unknown => {
    if (!isGlobal(callee) || !callee.call) return fail(`${describe(callee)} cannot be called`);
    if (!Array.isArray(args)) return fail(`arguments for ${callee.qualifiedName} are a ${describe(args)}, not a tuple`);
    return callee.call(args);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) return fail(`cannot set items on a ${describe(target)}`);
    if (items.length % 2) fail('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]) => {
    if (!isList(target)) return fail(`cannot append to a ${describe(target)}`);
    target.push(...items);
  };

  for (;;) {
    opAt = pos;
    if (pos >= bytes.byteLength) throw new CheckpointError(`${file}: pickle ends at byte ${pos} without STOP (truncated pickle)`);
    op = bytes[pos++]!;
    switch (op) {
      case PROTO:
        if (u8() > 5) fail('unsupported pickle protocol');
        break;
      case FRAME:
        take(8);
        break;
      case STOP:
        if (marks.length) fail('unbalanced MARK at STOP');
        return pop();
      case MARK:
        marks.push(stack);
        stack = [];
        break;
      case POP:
        pop();
        break;
      case POP_MARK:
        popMark();
        break;
      case DUP:
        stack.push(top());
        break;
      case NONE:
        stack.push(null);
        break;
      case NEWTRUE:
        stack.push(true);
        break;
      case NEWFALSE:
        stack.push(false);
        break;
      case BININT:
        stack.push(view.getInt32(take(4), true));
        break;
      case BININT1:
        stack.push(u8());
        break;
      case BININT2:
        stack.push(u16());
        break;
      case LONG1:
        stack.push(signedLong(u8()));
        break;
      case LONG4: {
        const n = view.getInt32(take(4), true);
        if (n < 0) fail('negative LONG4 length');
        stack.push(signedLong(n));
        break;
      }
      case BINFLOAT:
        stack.push(view.getFloat64(take(8), false));
        break;
      case SHORT_BINUNICODE:
        stack.push(utf8(u8()));
        break;
      case BINUNICODE:
        stack.push(utf8(u32()));
        break;
      case BINUNICODE8:
        stack.push(utf8(u64()));
        break;
      // Python 2 byte strings: torch.load decodes them as UTF-8 text, so do we.
      case SHORT_BINSTRING:
        stack.push(utf8(u8()));
        break;
      case BINSTRING:
        stack.push(utf8(view.getInt32(take(4), true)));
        break;
      case SHORT_BINBYTES:
        stack.push(raw(u8()).slice());
        break;
      case BINBYTES:
        stack.push(raw(u32()).slice());
        break;
      case BINBYTES8:
        stack.push(raw(u64()).slice());
        break;
      case EMPTY_TUPLE:
        stack.push(tuple([]));
        break;
      case TUPLE1:
        stack.push(tuple([pop()]));
        break;
      case TUPLE2: {
        const b = pop();
        stack.push(tuple([pop(), b]));
        break;
      }
      case TUPLE3: {
        const c = pop();
        const b = pop();
        stack.push(tuple([pop(), b, c]));
        break;
      }
      // popMark() swaps `stack`, so its result is taken before pushing.
      case TUPLE: {
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case EMPTY_LIST:
        stack.push([]);
        break;
      case LIST: {
        const items = popMark();
        stack.push(items);
        break;
      }
      case EMPTY_DICT:
        stack.push(new Map());
        break;
      case DICT: {
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case EMPTY_SET:
        stack.push(new Set());
        break;
      case FROZENSET: {
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      case ADDITEMS: {
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`cannot add items to a ${describe(s)}`);
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case SETITEM: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case SETITEMS: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case APPEND: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case APPENDS: {
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case GLOBAL: {
        const module = line();
        stack.push(resolve(module, line()));
        break;
      }
      case STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolve(module as string, name as string));
        break;
      }
      case REDUCE: {
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case NEWOBJ: {
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case NEWOBJ_EX: {
        const kwargs = pop();
        const args = pop();
        if (!(kwargs instanceof Map) || kwargs.size) fail('keyword arguments are not supported');
        stack.push(call(pop(), args));
        break;
      }
      case BUILD: {
        const state = pop();
        const target = top();
        // Python's default __setstate__: a dict (or (dict, slots) pair) of attributes.
        const attrs = Array.isArray(state) && Object.isFrozen(state) && state.length === 2 ? state[0] : state;
        if (target instanceof PyObject) {
          if (attrs instanceof Map) for (const [k, v] of attrs) target.attrs.set(String(k), v);
          else if (attrs !== null) fail(`cannot set the state of ${target.className} from a ${describe(attrs)}`);
        } else if (!(target instanceof Map)) {
          // Attributes on a dict (state_dict()'s `_metadata` version table) carry no tensors and are dropped.
          fail(`cannot set the state of a ${describe(target)}`);
        }
        break;
      }
      case BINPERSID:
        stack.push(options.persistentLoad(pop()));
        break;
      case BINPUT:
        memo.set(u8(), top());
        break;
      case LONG_BINPUT:
        memo.set(u32(), top());
        break;
      case MEMOIZE:
        memo.set(memo.size, top());
        break;
      case BINGET:
      case LONG_BINGET: {
        const i = op === BINGET ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} is not defined`);
        stack.push(memo.get(i));
        break;
      }
      default:
        fail('opcode not supported (torch.save never writes it)');
    }
  }
}
