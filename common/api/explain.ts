// "Try it": top-5 classes and a Grad-CAM overlay of one image by one or two classifiers side by side (a run's
// checkpoint or a checkpoint file). The models stay loaded between calls (in `cnx explain --serve`).
import { z } from 'zod';
import { absolutePath, int, multipleOf32 } from './fields.ts';
import { ModelRef } from './tasks.ts';
import { DatasetName, RelativePath } from './vocabulary.ts';

/** An uploaded image's id: the SHA-256 of its bytes. */
export const UploadId = z.string().regex(/^[0-9a-f]{64}$/, 'is not an upload id');

/** An image sent by the renderer (web mode has no file paths): PNG/JPEG/WebP bytes as base64, at most ~700 KB. */
export const ExplainUpload = z.strictObject({
  name: z.string().min(1).max(200),
  data: z.string().min(1).max(960_000).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
});
export const ExplainUploaded = z.object({ upload: UploadId, width: int(1), height: int(1) });

/** Where the image is: an upload, a catalogued dataset's image, or a file on the machine (Electron's picker). */
export const ExplainImage = z.union([
  z.strictObject({ upload: UploadId }),
  z.strictObject({ dataset: DatasetName, path: RelativePath }),
  z.strictObject({ file: absolutePath }),
]);
export type ExplainImage = z.infer<typeof ExplainImage>;

export const ExplainRequest = z.strictObject({
  /** One model, or two side by side. */
  models: z.array(z.strictObject({ model: ModelRef, name: z.string().min(1).max(100).optional() })).min(1).max(2),
  image: ExplainImage,
  /** Input size (default: the first run's input size, else 224). */
  size: multipleOf32.optional(),
  /** The class the map explains (default: each model's top-1). */
  classIndex: int(0).optional(),
});
export type ExplainRequest = z.input<typeof ExplainRequest>;

const ClassRef = z.object({ index: int(0), name: z.string().nullable() });
/** One model's answer for one image, as `cnx explain --serve` sends it (common/explain-protocol.ts). */
export const ExplainedModel = z.object({
  name: z.string(),
  arch: z.string(),
  /** Up to five classes, most probable first; names when the run's manifest or the model folder has them. */
  top: z.array(ClassRef.extend({ p: z.number() })),
  target: ClassRef,
  /** Grad-CAM of the last stage (h rows of w values in [0, 1]); camMax 0 means ReLU left nothing (all zeros). */
  cam: z.array(z.array(z.number())),
  camMax: z.number(),
  /** The map over the center crop the model saw, as a PNG (base64 from the child). */
  overlay: z.string(),
  /** Time of the forward + backward + map. */
  ms: z.number(),
});
export type ExplainedModel = z.infer<typeof ExplainedModel>;

export const ExplainResult = z.object({
  size: int(32),
  /** As the child answered, the overlay as a data: URL; ms also counts any model load. */
  models: z.array(ExplainedModel.extend({ overlay: z.string().startsWith('data:image/png;base64,') })),
  totalMs: z.number(),
});
export type ExplainResult = z.infer<typeof ExplainResult>;
