// A reader for zip archives held in memory, enough for torch.save files: the central directory (zip64
// included), stored and deflated entries, CRC-32 checked on every read.
//
// Public API:
//   interface ZipEntry { name, method, compressedSize, size, crc32, localHeaderOffset }
//   interface ZipArchive { entries: ReadonlyMap<string, ZipEntry>; read(name): Uint8Array }
//   openZip(bytes, file): ZipArchive    throws CheckpointError (naming the file and entry) for damaged archives
import * as zlib from 'node:zlib';
import { CheckpointError } from './tensor.ts';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

export interface ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** The entry's bytes: a view into the archive when stored, a new buffer when deflated. */
  read(name: string): Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const EXTRA_ZIP64 = 0x0001;
const U32_MAX = 0xffffffff;

let crcTable: Int32Array | undefined;
function crc32(data: Uint8Array): number {
  // Node >= 20.15 has a native CRC-32; the table version keeps older Node 20 releases working.
  const native = (zlib as Partial<typeof zlib>).crc32;
  if (native) return native(data);
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export function openZip(bytes: Uint8Array, file: string): ZipArchive {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${file}: ${msg}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = bytes.byteLength;
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number, what: string): number => {
    const v = view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`zip ${what} ${v} is out of range`);
    return Number(v);
  };
  const need = (at: number, length: number, what: string) => {
    if (at < 0 || at + length > size) fail(`zip ${what} at byte ${at} runs past the end of the file (${size} bytes): truncated?`);
  };

  // The end record sits in the last 22 bytes plus an archive comment of at most 65535 bytes.
  let end = -1;
  for (let at = size - 22; at >= Math.max(0, size - 22 - 0xffff); at--) {
    if (u32(at) === SIG_END && at + 22 + u16(at + 20) === size) {
      end = at;
      break;
    }
  }
  if (end < 0) fail('end of the zip central directory not found: the file is truncated or not a zip archive');
  let count = u16(end + 10);
  let dirSize = u32(end + 12);
  let dirOffset = u32(end + 16);
  if (count === 0xffff || dirSize === U32_MAX || dirOffset === U32_MAX) {
    const locator = end - 20;
    need(locator, 20, 'zip64 end locator');
    if (u32(locator) !== SIG_END64_LOCATOR) fail('zip64 end locator missing');
    const end64 = u64(locator + 8, 'zip64 end offset');
    need(end64, 56, 'zip64 end record');
    if (u32(end64) !== SIG_END64) fail(`no zip64 end record at byte ${end64}`);
    count = u64(end64 + 32, 'entry count');
    dirSize = u64(end64 + 40, 'central directory size');
    dirOffset = u64(end64 + 48, 'central directory offset');
  }
  need(dirOffset, dirSize, 'central directory');

  const entries = new Map<string, ZipEntry>();
  let at = dirOffset;
  for (let i = 0; i < count; i++) {
    need(at, 46, 'central directory entry');
    if (u32(at) !== SIG_CENTRAL) fail(`central directory entry ${i} at byte ${at} is damaged`);
    const flags = u16(at + 8);
    const method = u16(at + 10);
    const crc = u32(at + 16);
    let compressedSize = u32(at + 20);
    let uncompressedSize = u32(at + 24);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    let localHeaderOffset = u32(at + 42);
    need(at + 46, nameLength + extraLength + commentLength, 'central directory entry');
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // zip64 sizes and offset: only the fields saturated in the fixed part appear, in this order.
    for (let x = at + 46 + nameLength; x + 4 <= at + 46 + nameLength + extraLength; x += 4 + u16(x + 2)) {
      if (u16(x) !== EXTRA_ZIP64) continue;
      let f = x + 4;
      const field = (what: string) => {
        need(f, 8, `zip64 field of '${name}'`);
        const v = u64(f, what);
        f += 8;
        return v;
      };
      if (uncompressedSize === U32_MAX) uncompressedSize = field('size');
      if (compressedSize === U32_MAX) compressedSize = field('compressed size');
      if (localHeaderOffset === U32_MAX) localHeaderOffset = field('local header offset');
    }
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    if (entries.has(name)) fail(`entry '${name}' appears twice`);
    entries.set(name, { name, method, compressedSize, size: uncompressedSize, crc32: crc, localHeaderOffset });
    at += 46 + nameLength + extraLength + commentLength;
  }

  const read = (name: string): Uint8Array => {
    const e = entries.get(name);
    if (!e) return fail(`entry '${name}' not found`);
    need(e.localHeaderOffset, 30, `local header of '${name}'`);
    if (u32(e.localHeaderOffset) !== SIG_LOCAL) fail(`local header of entry '${name}' is damaged`);
    // The local name and extra field lengths may differ from the central ones (torch pads with extras).
    const dataStart = e.localHeaderOffset + 30 + u16(e.localHeaderOffset + 26) + u16(e.localHeaderOffset + 28);
    need(dataStart, e.compressedSize, `data of entry '${name}'`);
    const raw = bytes.subarray(dataStart, dataStart + e.compressedSize);
    let out: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) fail(`stored entry '${name}' has compressed size ${e.compressedSize} but size ${e.size}`);
      out = raw;
    } else if (e.method === 8) {
      try {
        out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        return fail(`entry '${name}' does not inflate: ${(err as Error).message}`);
      }
      if (out.byteLength !== e.size) fail(`entry '${name}' inflates to ${out.byteLength} bytes, expected ${e.size}`);
    } else {
      return fail(`entry '${name}' uses unsupported compression method ${e.method}`);
    }
    if (crc32(out) !== e.crc32) fail(`entry '${name}' is corrupt (CRC-32 mismatch)`);
    return out;
  };
  return { entries, read };
}
