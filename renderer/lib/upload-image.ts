// A picked image file as the base64 explain.upload takes: decoded by the browser and scaled down so its longest
// side is at most UPLOAD_SIDE (web mode's request limit is 1 MiB), re-encoded as JPEG.

/** Longest side of an uploaded image. */
export const UPLOAD_SIDE = 512;

export async function imageFileBase64(file: File): Promise<string> {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, UPLOAD_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const url = canvas.toDataURL('image/jpeg', 0.92);
  return url.slice(url.indexOf(',') + 1);
}
