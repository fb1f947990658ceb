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

export const useExplainStore = defineStore('explain', () => {
  const images = ref<TryImage[]>([]);
  const results = shallowRef<ReadonlyMap<string, ExplainResult>>(new Map());
  const errors = shallowRef<ReadonlyMap<string, ShownError>>(new Map());
  const busy = ref(false);
  const uploadError = ref<ShownError | null>(null);

  function add(img: TryImage): void {
    if (!images.value.some((i) => i.key === img.key)) images.value.push(img);
  }

  /** Uploads picked files (`encode` turns one into base64: renderer/lib/upload-image.ts in the page). */
  async function addFiles(files: readonly { name: string; preview: string | null }[], encode: (i: number) => Promise<string>): Promise<void> {
    uploadError.value = null;
    for (const [i, f] of files.entries()) {
      try {
        const r = await api().explain.upload({ name: f.name.slice(0, 200) || 'image', data: await encode(i) });
        add({ key: `upload:${r.upload}`, label: f.name, preview: f.preview, image: { upload: r.upload } });
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
