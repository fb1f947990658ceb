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

/** The global `module.name` as the caller allows it; refuses (CheckpointError) one it does not know. */
function resolveGlobal(options: UnpickleOptions, module: string, name: string): PyGlobal {
  const g = options.findGlobal(module, name);
  if (!g) {
    throw new CheckpointError(`${options.file}: refusing to load: the pickle asks for the global '${module}.${name}', which is not an allowed data type (nothing was executed)`);
  }
  return g;
}

/** The machine state: the input and its position, the stack, the stacks MARK set aside, and the memo. */
class Unpickler {
  pos = 0;
  op = 0;
  opAt = 0;
  stack: unknown[] = [];
  readonly marks: unknown[][] = [];
  readonly memo = new Map<number, unknown>();
  /** Set by STOP: the value the pickle describes. */
  result: { value: unknown } | null = null;
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(msg: string): never {
    throw new CheckpointError(`${this.options.file}: pickle opcode 0x${this.op.toString(16)} at byte ${this.opAt}: ${msg}`);
  }

  // ---- reading the opcode's arguments

  take(n: number): number {
    if (n < 0 || this.pos + n > this.bytes.byteLength) this.fail('unexpected end of data (truncated pickle)');
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8 = (): number => this.bytes[this.take(1)]!;
  u16 = (): number => this.view.getUint16(this.take(2), true);
  u32 = (): number => this.view.getUint32(this.take(4), true);
  i32 = (): number => this.view.getInt32(this.take(4), true);
  f64 = (): number => this.view.getFloat64(this.take(8), false);
  u64(): number {
    const v = this.view.getBigUint64(this.take(8), true);
    if (v > BigInt(this.bytes.byteLength)) this.fail(`length ${v} exceeds the pickle`);
    return Number(v);
  }
  raw(n: number): Uint8Array {
    return this.bytes.subarray(this.take(n), this.pos);
  }
  utf8(n: number): string {
    const b = this.raw(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return this.fail('string is not valid UTF-8');
    }
  }
  line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('unterminated line');
    return new TextDecoder('latin1').decode(this.raw(end - this.pos + 1)).slice(0, -1);
  }
  signedLong(n: number): number | bigint {
    const b = this.raw(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  // ---- the stack

  push(v: unknown): void {
    this.stack.push(v);
  }
  pop(): unknown {
    if (!this.stack.length) this.fail('stack underflow');
    return this.stack.pop();
  }
  top(): unknown {
    if (!this.stack.length) this.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  /** The items pushed since the last MARK; the stack below it becomes the stack again. */
  popMark(): unknown[] {
    const items = this.stack;
    const outer = this.marks.pop();
    if (!outer) return this.fail('no MARK on the stack');
    this.stack = outer;
    return items;
  }
  getMemo(i: number): void {
    if (!this.memo.has(i)) this.fail(`memo entry ${i} is not defined`);
    this.push(this.memo.get(i));
  }

  // ---- building values

  call(callee: unknown, args: unknown): unknown {
    if (!isGlobal(callee) || !callee.call) return this.fail(`${describe(callee)} cannot be called`);
    if (!Array.isArray(args)) return this.fail(`arguments for ${callee.qualifiedName} are a ${describe(args)}, not a tuple`);
    return callee.call(args);
  }
  setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) return this.fail(`cannot set items on a ${describe(target)}`);
    if (items.length % 2) this.fail('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  }
  appendItems(target: unknown, items: unknown[]): void {
    if (!isList(target)) return this.fail(`cannot append to a ${describe(target)}`);
    target.push(...items);
  }
  addItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Set)) return this.fail(`cannot add items to a ${describe(target)}`);
    for (const x of items) target.add(x);
  }
  /** Python's default __setstate__: a dict (or (dict, slots) pair) of attributes. */
  build(target: unknown, state: unknown): void {
    const attrs = Array.isArray(state) && Object.isFrozen(state) && state.length === 2 ? state[0] : state;
    if (target instanceof PyObject) {
      if (attrs instanceof Map) for (const [k, v] of attrs) target.attrs.set(String(k), v);
      else if (attrs !== null) this.fail(`cannot set the state of ${target.className} from a ${describe(attrs)}`);
    } else if (!(target instanceof Map)) {
      // Attributes on a dict (state_dict()'s `_metadata` version table) carry no tensors and are dropped.
      this.fail(`cannot set the state of a ${describe(target)}`);
    }
  }
  stackGlobal(): PyGlobal {
    const name = this.pop();
    const module = this.pop();
    if (typeof module !== 'string' || typeof name !== 'string') return this.fail('STACK_GLOBAL needs two strings');
    return resolveGlobal(this.options, module, name);
  }
}

type Handler = (u: Unpickler) => void;

/** What each opcode does (the ones torch.save writes); any other opcode stops the load. */
const OPCODES: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  // framing and control
  [PROTO, (u) => {
    if (u.u8() > 5) u.fail('unsupported pickle protocol');
  }],
  [FRAME, (u) => void u.take(8)],
  [STOP, (u) => {
    if (u.marks.length) u.fail('unbalanced MARK at STOP');
    u.result = { value: u.pop() };
  }],
  [MARK, (u) => {
    u.marks.push(u.stack);
    u.stack = [];
  }],
  [POP, (u) => void u.pop()],
  [POP_MARK, (u) => void u.popMark()],
  [DUP, (u) => u.push(u.top())],
  // scalars
  [NONE, (u) => u.push(null)],
  [NEWTRUE, (u) => u.push(true)],
  [NEWFALSE, (u) => u.push(false)],
  [BININT, (u) => u.push(u.i32())],
  [BININT1, (u) => u.push(u.u8())],
  [BININT2, (u) => u.push(u.u16())],
  [LONG1, (u) => u.push(u.signedLong(u.u8()))],
  [LONG4, (u) => {
    const n = u.i32();
    if (n < 0) u.fail('negative LONG4 length');
    u.push(u.signedLong(n));
  }],
  [BINFLOAT, (u) => u.push(u.f64())],
  // text and bytes; Python 2 byte strings (BINSTRING) are decoded as UTF-8 text, as torch.load does
  [SHORT_BINUNICODE, (u) => u.push(u.utf8(u.u8()))],
  [BINUNICODE, (u) => u.push(u.utf8(u.u32()))],
  [BINUNICODE8, (u) => u.push(u.utf8(u.u64()))],
  [SHORT_BINSTRING, (u) => u.push(u.utf8(u.u8()))],
  [BINSTRING, (u) => u.push(u.utf8(u.i32()))],
  [SHORT_BINBYTES, (u) => u.push(u.raw(u.u8()).slice())],
  [BINBYTES, (u) => u.push(u.raw(u.u32()).slice())],
  [BINBYTES8, (u) => u.push(u.raw(u.u64()).slice())],
  // containers (popMark() swaps the stack, so its result is taken before pushing)
  [EMPTY_TUPLE, (u) => u.push(tuple([]))],
  [TUPLE1, (u) => u.push(tuple([u.pop()]))],
  [TUPLE2, (u) => {
    const b = u.pop();
    u.push(tuple([u.pop(), b]));
  }],
  [TUPLE3, (u) => {
    const c = u.pop();
    const b = u.pop();
    u.push(tuple([u.pop(), b, c]));
  }],
  [TUPLE, (u) => {
    const items = u.popMark();
    u.push(tuple(items));
  }],
  [EMPTY_LIST, (u) => u.push([])],
  [LIST, (u) => {
    const items = u.popMark();
    u.push(items);
  }],
  [EMPTY_DICT, (u) => u.push(new Map())],
  [DICT, (u) => {
    const d = new Map();
    u.setItems(d, u.popMark());
    u.push(d);
  }],
  [EMPTY_SET, (u) => u.push(new Set())],
  [FROZENSET, (u) => {
    const items = u.popMark();
    u.push(new Set(items));
  }],
  [ADDITEMS, (u) => {
    const items = u.popMark();
    u.addItems(u.top(), items);
  }],
  [SETITEM, (u) => {
    const v = u.pop();
    const k = u.pop();
    u.setItems(u.top(), [k, v]);
  }],
  [SETITEMS, (u) => {
    const items = u.popMark();
    u.setItems(u.top(), items);
  }],
  [APPEND, (u) => {
    const v = u.pop();
    u.appendItems(u.top(), [v]);
  }],
  [APPENDS, (u) => {
    const items = u.popMark();
    u.appendItems(u.top(), items);
  }],
  // objects: only the allowed globals, called with positional arguments
  [GLOBAL, (u) => {
    const module = u.line();
    u.push(resolveGlobal(u.options, module, u.line()));
  }],
  [STACK_GLOBAL, (u) => u.push(u.stackGlobal())],
  [REDUCE, (u) => {
    const args = u.pop();
    u.push(u.call(u.pop(), args));
  }],
  [NEWOBJ, (u) => {
    const args = u.pop();
    u.push(u.call(u.pop(), args));
  }],
  [NEWOBJ_EX, (u) => {
    const kwargs = u.pop();
    const args = u.pop();
    if (!(kwargs instanceof Map) || kwargs.size) u.fail('keyword arguments are not supported');
    u.push(u.call(u.pop(), args));
  }],
  [BUILD, (u) => {
    const state = u.pop();
    u.build(u.top(), state);
  }],
  [BINPERSID, (u) => u.push(u.options.persistentLoad(u.pop()))],
  // the memo
  [BINPUT, (u) => void u.memo.set(u.u8(), u.top())],
  [LONG_BINPUT, (u) => void u.memo.set(u.u32(), u.top())],
  [MEMOIZE, (u) => void u.memo.set(u.memo.size, u.top())],
  [BINGET, (u) => u.getMemo(u.u8())],
  [LONG_BINGET, (u) => u.getMemo(u.u32())],
]);

/** Builds the value a pickle describes; throws CheckpointError for malformed or disallowed content. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const u = new Unpickler(bytes, options);
  while (!u.result) {
    u.opAt = u.pos;
    if (u.pos >= bytes.byteLength) throw new CheckpointError(`${options.file}: pickle ends at byte ${u.pos} without STOP (truncated pickle)`);
    u.op = bytes[u.pos++]!;
    const handler = OPCODES.get(u.op);
    if (!handler) return u.fail('opcode not supported (torch.save never writes it)');
    handler(u);
  }
  return u.result.value;
}
