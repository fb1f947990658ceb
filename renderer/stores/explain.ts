// "Try it": the images the user picked or dropped (uploaded, a dataset's, or a file from Electron's picker),
// the one or two models, and each image's explanation (top-5 and Grad-CAM overlay per model).
import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import type { ExplainImage, ExplainResult, ModelRef } from '../../common/api.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export interface TryImage {
  key: string;
  /** What the user sees in the list (a file name or a dataset path). */
  label: string;
  /** A URL to show the original (an object URL or a /files/ thumbnail), or null. */
  preview: string | null;
  image: ExplainImage;
}

export interface TryModel {
  model: ModelRef;
  name?: string;
}

/** Longest side of an uploaded image: decoded images above it are scaled down in the page before upload. */
export const UPLOAD_SIDE = 512;

/** A picked file as base64 (PNG/JPEG), scaled down so its longest side is at most UPLOAD_SIDE. */
async function fileBase64(file: File): Promise<string> {
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

export const useExplainStore = defineStore('explain', () => {
  const images = ref<TryImage[]>([]);
  const results = shallowRef<ReadonlyMap<string, ExplainResult>>(new Map());
  const errors = shallowRef<ReadonlyMap<string, ShownError>>(new Map());
  const busy = ref(false);
  const uploadError = ref<ShownError | null>(null);

  function add(img: TryImage): void {
    if (!images.value.some((i) => i.key === img.key)) images.value.push(img);
  }

  async function addFiles(files: readonly File[]): Promise<void> {
    uploadError.value = null;
    for (const f of files) {
      try {
        const r = await api().explain.upload({ name: f.name.slice(0, 200) || 'image', data: await fileBase64(f) });
        add({ key: `upload:${r.upload}`, label: f.name, preview: URL.createObjectURL(f), image: { upload: r.upload } });
      } catch (e) {
        uploadError.value = shownError(e);
      }
    }
  }

  function remove(key: string): void {
    images.value = images.value.filter((i) => i.key !== key);
  }

  /** Explains every listed image with the models, one request per image, results as they arrive. */
  async function run(models: TryModel[], size?: number): Promise<void> {
    busy.value = true;
    results.value = new Map();
    errors.value = new Map();
    try {
      for (const img of images.value) {
        try {
          const r = await api().explain.run({ models, image: img.image, ...(size ? { size } : {}) });
          results.value = new Map(results.value).set(img.key, r);
        } catch (e) {
          errors.value = new Map(errors.value).set(img.key, shownError(e));
        }
      }
    } finally {
      busy.value = false;
    }
  }

  return { images, results, errors, busy, uploadError, add, addFiles, remove, run };
});
