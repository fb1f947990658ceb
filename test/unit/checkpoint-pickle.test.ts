// The safe unpickler on hand-assembled pickles: values come out as Python would build them, globals go only
// through the allowlist, and malformed input is refused with the file, opcode and position.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type PyGlobal, type UnpickleOptions, PyObject, unpickle } from '../../native-worker/checkpoint/pickle.ts';

const file = 'ckpt.pt (archive/data.pkl)';

// Opcode builders, named as in Python's pickletools.
const u32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const text = (s: string) => [...Buffer.from(s)];
const op = {
  proto: (v: number) => [0x80, v],
  binunicode: (s: string) => [0x58, ...u32(Buffer.byteLength(s)), ...text(s)],
  shortBinunicode: (s: string) => [0x8c, Buffer.byteLength(s), ...text(s)],
  global: (module: string, name: string) => [0x63, ...text(`${module}\n${name}\n`)],
  binfloat: (x: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return [0x47, ...b];
  },
  long1: (bytes: number[]) => [0x8a, bytes.length, ...bytes],
  binint: (n: number) => [0x4a, ...u32(n >>> 0)],
};
const MARK = 0x28, STOP = 0x2e, EMPTY_DICT = 0x7d, EMPTY_LIST = 0x5d, SETITEMS = 0x75, APPENDS = 0x65, NONE = 0x4e;
const NEWTRUE = 0x88, NEWFALSE = 0x89, TUPLE3 = 0x87, TUPLE1 = 0x85, EMPTY_TUPLE = 0x29, REDUCE = 0x52, BUILD = 0x62;
const NEWOBJ = 0x81, BINPUT = 0x71, BINGET = 0x68, MEMOIZE = 0x94, STACK_GLOBAL = 0x93, SETITEM = 0x73;

const bytes = (...parts: (number | number[])[]) => Uint8Array.from(parts.flat());

function options(allowed: Record<string, PyGlobal> = {}): UnpickleOptions & { asked: string[] } {
  const asked: string[] = [];
  return {
    file,
    asked,
    findGlobal: (module, name) => {
      asked.push(`${module}.${name}`);
      return allowed[`${module}.${name}`];
    },
    persistentLoad: (pid) => ({ pid }),
  };
}

describe('unpickle', () => {
  test('builds dicts, lists, tuples, ints of every width, floats, None and booleans; memo keeps identity', () => {
    const p = bytes(
      op.proto(2), EMPTY_DICT, MARK,
      op.binunicode('small'), 0x4b, 200, // BININT1
      op.binunicode('medium'), 0x4d, 0x34, 0x12, // BININT2 0x1234
      op.binunicode('negative'), op.binint(-5),
      op.binunicode('huge'), op.long1([0, 0, 0, 0, 0, 0, 0, 0, 0x40]), // 2**70
      op.binunicode('minus one'), op.long1([0xff]),
      op.binunicode('pi'), op.binfloat(Math.PI),
      op.binunicode('flags'), NONE, NEWTRUE, NEWFALSE, TUPLE3,
      op.binunicode('list'), EMPTY_LIST, BINPUT, 7, MARK, 0x4b, 1, 0x4b, 2, APPENDS,
      op.binunicode('same list'), BINGET, 7,
      SETITEMS, STOP,
    );
    const d = unpickle(p, options()) as Map<string, unknown>;
    assert.deepEqual([...d.keys()], ['small', 'medium', 'negative', 'huge', 'minus one', 'pi', 'flags', 'list', 'same list']);
    assert.equal(d.get('small'), 200);
    assert.equal(d.get('medium'), 0x1234);
    assert.equal(d.get('negative'), -5);
    assert.equal(d.get('huge'), 2n ** 70n);
    assert.equal(d.get('minus one'), -1);
    assert.equal(d.get('pi'), Math.PI);
    assert.deepEqual(d.get('flags'), [null, true, false]);
    assert.ok(Object.isFrozen(d.get('flags')), 'tuples are immutable');
    assert.deepEqual(d.get('list'), [1, 2]);
    assert.equal(d.get('same list'), d.get('list'));
  });

  test('protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL through the allowlist', () => {
    const orderedDict: PyGlobal = { qualifiedName: 'collections.OrderedDict', call: () => new Map() };
    const body = bytes(
      op.shortBinunicode('collections'), MEMOIZE, op.shortBinunicode('OrderedDict'), MEMOIZE, STACK_GLOBAL, MEMOIZE,
      EMPTY_TUPLE, REDUCE, MEMOIZE, op.shortBinunicode('w'), MEMOIZE, BINGET, 0, SETITEM, STOP,
    );
    const frame = [0x95, ...u32(body.length), 0, 0, 0, 0];
    const o = options({ 'collections.OrderedDict': orderedDict });
    const d = unpickle(bytes(op.proto(4), frame, [...body]), o);
    assert.deepEqual(d, new Map([['w', 'collections']]));
    assert.deepEqual(o.asked, ['collections.OrderedDict']);
  });

  test('NEWOBJ + BUILD fill a plain-data object', () => {
    const namespace: PyGlobal = { qualifiedName: 'argparse.Namespace', call: () => new PyObject('argparse.Namespace') };
    const p = bytes(op.proto(2), op.global('argparse', 'Namespace'), EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK, op.binunicode('lr'), op.binfloat(0.5), SETITEMS, BUILD, STOP);
    const ns = unpickle(p, options({ 'argparse.Namespace': namespace })) as PyObject;
    assert.equal(ns.className, 'argparse.Namespace');
    assert.deepEqual([...ns.attrs], [['lr', 0.5]]);
  });

  test('refuses a global that is not allowed, before anything is built from it', () => {
    const p = bytes(op.proto(2), op.global('os', 'system'), op.binunicode('echo hi'), TUPLE1, REDUCE, STOP);
    const o = options();
    assert.throws(() => unpickle(p, o), {
      name: 'CheckpointError',
      message: `${file}: refusing to load: the pickle asks for the global 'os.system', which is not an allowed data type (nothing was executed)`,
    });
    assert.deepEqual(o.asked, ['os.system']);
  });

  test('a marker global (a dtype) cannot be called', () => {
    const float32: PyGlobal = { qualifiedName: 'torch.float32' };
    const p = bytes(op.proto(2), op.global('torch', 'float32'), EMPTY_TUPLE, REDUCE, STOP);
    assert.throws(() => unpickle(p, options({ 'torch.float32': float32 })), { message: `${file}: pickle opcode 0x52 at byte 18: torch.float32 cannot be called` });
  });

  test('truncated data, unknown opcodes and stack misuse', () => {
    const whole = bytes(op.proto(2), op.binunicode('weights'), STOP);
    assert.throws(() => unpickle(whole.subarray(0, 8), options()), { message: `${file}: pickle opcode 0x58 at byte 2: unexpected end of data (truncated pickle)` });
    assert.throws(() => unpickle(whole.subarray(0, 14), options()), { message: `${file}: pickle ends at byte 14 without STOP (truncated pickle)` });
    assert.throws(() => unpickle(bytes(op.proto(2), 0x69, STOP), options()), { message: `${file}: pickle opcode 0x69 at byte 2: opcode not supported (torch.save never writes it)` });
    assert.throws(() => unpickle(bytes(op.proto(2), STOP), options()), { message: `${file}: pickle opcode 0x2e at byte 2: stack underflow` });
    assert.throws(() => unpickle(bytes(op.proto(2), NONE, 0x4b, 1, 0x61, STOP), options()), { message: `${file}: pickle opcode 0x61 at byte 5: cannot append to a None` });
    assert.throws(() => unpickle(bytes(op.proto(2), BINGET, 3, STOP), options()), { message: `${file}: pickle opcode 0x68 at byte 2: memo entry 3 is not defined` });
  });
});
