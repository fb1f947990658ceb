// The libjpeg-turbo fast path for plain JPEGs (native/, an N-API addon that `npm install` builds where
// libjpeg-turbo's headers exist): decode of only the crop, PIL-exact bicubic resize, flip and normalize
// in one synchronous call. Without the addon, or for JPEGs it declines, transform.ts uses sharp.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The crop region of the full image resized to outWidth x outHeight, of which a size x size window is kept. */
export interface CropResizeSpec {
  left: number;
  top: number;
  width: number;
  height: number;
  outWidth: number;
  outHeight: number;
  windowLeft: number;
  windowTop: number;
  size: number;
  flip: boolean;
  mean: readonly number[];
  std: readonly number[];
  maxPixels: number;
}

interface Addon {
  /** Writes into out[offset..] (normalized CHW floats, or RGB bytes for a Uint8Array); returns M of the M/8 DCT scaling used, or 0 when it declines the file. */
  cropResize(jpeg: Uint8Array, spec: CropResizeSpec, out: Float32Array | Uint8Array, offset: number): number;
}

export type JpegDecoderName = 'libjpeg-turbo' | 'sharp';

const ADDON_PATH = fileURLToPath(new URL('./native/build/Release/cnx_jpeg.node', import.meta.url));

function load(): { addon: Addon | null; reason: string } {
  if (process.env.CNX_JPEG_DECODER === 'sharp') return { addon: null, reason: 'CNX_JPEG_DECODER=sharp' };
  try {
    return { addon: createRequire(import.meta.url)(ADDON_PATH) as Addon, reason: `addon ${ADDON_PATH}` };
  } catch (e) {
    // Not built (no libjpeg-turbo headers or compiler at install time) or not loadable here: sharp does it all.
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { addon: null, reason: `addon not loaded (${why}); npm install builds it where libjpeg-turbo's headers (libjpeg62-turbo-dev) and a C compiler exist` };
  }
}

const loaded = load();
let forceSharp = false;

/** Which decoder plain JPEGs go through, and why. */
export function jpegDecoder(): { decoder: JpegDecoderName; reason: string } {
  if (!loaded.addon) return { decoder: 'sharp', reason: loaded.reason };
  return forceSharp ? { decoder: 'sharp', reason: 'set to sharp by setJpegDecoder' } : { decoder: 'libjpeg-turbo', reason: loaded.reason };
}

/** Tests and benchmarks compare both paths in one process: 'sharp' turns the addon off, 'auto' back on. */
export function setJpegDecoder(which: 'auto' | 'sharp'): void {
  forceSharp = which === 'sharp';
}

/** The addon's cropResize when it is in use, else null. */
export function nativeCropResize(): Addon['cropResize'] | null {
  return loaded.addon && !forceSharp ? loaded.addon.cropResize : null;
}
