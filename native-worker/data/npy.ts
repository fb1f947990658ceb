// .npy files (NumPy's format, version 1.0/2.0): float32 and int64 arrays in C order, for `cnx infer`,
// `cnx grad` and the reference tests.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface NpyArray {
  readonly dtype: 'float32' | 'int64';
  readonly shape: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

const MAGIC = '\x93NUMPY';

export function encodeNpy(a: NpyArray): Uint8Array {
  const descr = a.dtype === 'float32' ? '<f4' : '<i8';
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Header padded with spaces and a newline so the data starts on a 64-byte boundary.
  const total = MAGIC.length + 4 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = new Uint8Array(MAGIC.length + 4 + header.length);
  for (let i = 0; i < MAGIC.length; i++) head[i] = MAGIC.charCodeAt(i);
  head[6] = 1;
  head[7] = 0;
  new DataView(head.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) head[10 + i] = header.charCodeAt(i);
  const body = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Writes atomically (temp file + rename), so a crash never leaves a partial file. */
export function writeNpy(path: string, a: NpyArray): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeNpy(a));
  renameSync(tmp, path);
}

export function decodeNpy(bytes: Uint8Array, file = '<buffer>'): NpyArray {
  const fail = (why: string): never => {
    throw new Error(`${file}: not a usable .npy file: ${why}`);
  };
  if (bytes.length < 10 || String.fromCharCode(...bytes.subarray(0, 6)) !== MAGIC) fail('bad magic');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [hlen, start] = major === 1 ? [view.getUint16(8, true), 10] : major === 2 || major === 3 ? [view.getUint32(8, true), 12] : fail(`version ${major}`);
  if (start + hlen > bytes.length) fail('header runs past the end of the file');
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) fail(`cannot parse header ${header.trim()}`);
  if (fortran === 'True') fail('Fortran-order arrays are not supported; save with C order');
  const shape = shapeText!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`bad shape (${shapeText})`);
  const count = shape.reduce((p, q) => p * q, 1);
  // float64 arrays are read as float32, the engine's precision.
  const size = descr === '<f4' ? 4 : descr === '<i8' || descr === '<f8' ? 8 : fail(`dtype ${descr} (expected float32 '<f4', float64 '<f8' or int64 '<i8')`);
  const off = start + hlen;
  if (bytes.length - off !== count * size) fail(`expected ${count * size} data bytes for shape (${shape.join(', ')}), found ${bytes.length - off}`);
  const raw = new Uint8Array(bytes.subarray(off)).buffer; // a copy: Buffer.slice would be a view into a pool
  if (descr === '<i8') return { dtype: 'int64', shape, data: new BigInt64Array(raw) };
  return { dtype: 'float32', shape, data: descr === '<f4' ? new Float32Array(raw) : Float32Array.from(new Float64Array(raw)) };
}

export function readNpy(path: string): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeNpy(bytes, path);
}
