// Element types found in checkpoint files and their conversion to the two in-memory dtypes: float types
// become float32 (exactly for F16/BF16, rounded to nearest for F64), integer types become int64.
//
// Public API:
//   type StoredDType   'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL'
//   ITEM_SIZE          bytes per element of each StoredDType
//   decodeElements(bytes, dtype, littleEndian): Tensor['data']   bytes.byteLength must be n * ITEM_SIZE
//   littleEndianBytes(data): Uint8Array                          the bytes of F32/I64 data in file order
import type { Tensor } from './tensor.ts';

export type StoredDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const ITEM_SIZE: Readonly<Record<StoredDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isStoredDType(s: string): s is StoredDType {
  return Object.hasOwn(ITEM_SIZE, s);
}

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapBytes(bytes: Uint8Array, itemSize: number): void {
  for (let i = 0; i < bytes.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

// Every float16 bit pattern decoded once: a table lookup per element beats bit arithmetic.
let halfTable: Float32Array | undefined;
function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (halfTable = t);
}

/** Decodes `bytes` (a whole number of elements) into a fresh float32 or int64 array. */
export function decodeElements(bytes: Uint8Array, dtype: StoredDType, littleEndian: boolean): Tensor['data'] {
  const size = ITEM_SIZE[dtype];
  // A private, aligned copy: the source may sit at any offset in the file buffer.
  const raw = new Uint8Array(bytes.byteLength);
  raw.set(bytes);
  if (littleEndian !== hostLittleEndian && size > 1) swapBytes(raw, size);
  const n = raw.byteLength / size;
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.buffer);
    case 'I64':
      return new BigInt64Array(raw.buffer);
    case 'F64':
      return new Float32Array(new Float64Array(raw.buffer));
    case 'F16': {
      const table = float16Table();
      const src = new Uint16Array(raw.buffer);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const src = new Uint16Array(raw.buffer);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case 'I32':
      return BigInt64Array.from(new Int32Array(raw.buffer), (v) => BigInt(v));
    case 'I16':
      return BigInt64Array.from(new Int16Array(raw.buffer), (v) => BigInt(v));
    case 'I8':
      return BigInt64Array.from(new Int8Array(raw.buffer), (v) => BigInt(v));
    case 'U8':
    case 'BOOL':
      return BigInt64Array.from(raw, (v) => BigInt(v));
  }
}

/** The little-endian bytes of `data`: a view on a little-endian host, a swapped copy otherwise. */
export function littleEndianBytes(data: Tensor['data']): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (hostLittleEndian) return view;
  const copy = view.slice();
  swapBytes(copy, data.BYTES_PER_ELEMENT);
  return copy;
}
