// Reads what the train transform needs from a JPEG header (size, components, EXIF orientation, whether an
// ICC profile is embedded) in a few microseconds, saving a whole sharp metadata() round trip per sample.

export interface JpegInfo {
  width: number;
  height: number;
  /** 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK. */
  components: number;
  /** EXIF orientation 1..8 (1 when absent). */
  orientation: number;
  /** An APP2 ICC_PROFILE segment is present (sharp converts such images to sRGB with it). */
  icc: boolean;
}

const ICC_TAG = 'ICC_PROFILE\0';

function isIccSegment(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start < ICC_TAG.length) return false;
  for (let i = 0; i < ICC_TAG.length; i++) if (buf[start + i] !== ICC_TAG.charCodeAt(i)) return false;
  return true;
}

/** EXIF orientation from an APP1 payload starting at `start` ("Exif\0\0" + TIFF); 1 when absent. */
function exifOrientation(buf: Uint8Array, start: number, end: number): number {
  if (end - start < 14 || buf[start] !== 0x45 || buf[start + 1] !== 0x78 || buf[start + 2] !== 0x69 || buf[start + 3] !== 0x66) return 1;
  const tiff = start + 6;
  const little = buf[tiff] === 0x49;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (o: number) => view.getUint16(o, little);
  const u32 = (o: number) => view.getUint32(o, little);
  if (tiff + 8 > end) return 1;
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > end) return 1;
  const entries = u16(ifd);
  for (let e = 0; e < entries; e++) {
    const o = ifd + 2 + e * 12;
    if (o + 12 > end) return 1;
    if (u16(o) === 0x0112) {
      const v = u16(o + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * Parses markers up to the first scan (APPn segments may follow the frame header); null when this is not
 * a JPEG or the header is damaged before the frame header.
 */
export function readJpegHeader(buf: Uint8Array): JpegInfo | null {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return null;
  let frame: Pick<JpegInfo, 'width' | 'height' | 'components'> | null = null;
  let orientation = 1;
  let icc = false;
  let o = 2;
  while (o + 4 <= buf.length) {
    if (buf[o] !== 0xff) break;
    const marker = buf[o + 1]!;
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      o += 2; // markers without a length
      continue;
    }
    if (marker === 0xda) break; // start of scan: the header is over
    const len = (buf[o + 2]! << 8) | buf[o + 3]!;
    const body = o + 4;
    if (len < 2 || o + 2 + len > buf.length) break;
    if (marker === 0xe1) orientation = exifOrientation(buf, body, o + 2 + len);
    if (marker === 0xe2) icc ||= isIccSegment(buf, body, o + 2 + len);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): frame header with precision, height, width, components.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc && !frame) {
      if (len < 8) return null;
      const height = (buf[body + 1]! << 8) | buf[body + 2]!;
      const width = (buf[body + 3]! << 8) | buf[body + 4]!;
      const components = buf[body + 5]!;
      if (!width || !height) return null;
      frame = { width, height, components };
    }
    o += 2 + len;
  }
  return frame && { ...frame, orientation, icc };
}
