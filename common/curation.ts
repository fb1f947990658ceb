// What curating a dataset with a model reports (`cnx dataset issues`, the app's curation task): suspected
// label errors, outliers, semantic near-duplicate groups and the 2D map. Written by native-worker/curation,
// validated wherever it is read.
import { z } from 'zod';

const score = z.number().min(0).max(2);

export const LabelIssue = z.object({
  imageId: z.number().int(),
  path: z.string(),
  given: z.string(),
  suggested: z.string(),
  /** 1 - the out-of-sample probability of the given label: higher is more suspect. */
  score,
  /** Nearest images in embedding space (catalog ids), nearest first. */
  neighbours: z.array(z.number().int()),
});
export type LabelIssue = z.infer<typeof LabelIssue>;

export const CurationReport = z.object({
  version: z.literal(1),
  dataset: z.string(),
  weights: z.string(),
  arch: z.string(),
  size: z.number().int(),
  createdAt: z.string(),
  note: z.string(),
  /** Seconds; projection null when no map was asked for, probes null for an unlabeled dataset. */
  timings: z.object({ embed: z.number(), probes: z.number().nullable(), neighbours: z.number(), projection: z.number().nullable() }),
  embedded: z.object({ computed: z.number().int(), reused: z.number().int() }),
  classes: z.array(z.string()),
  /** One entry per embedded image, column-wise; label -1 = unlabeled; labelScore empty without labels. */
  points: z.object({
    ids: z.array(z.number().int()),
    paths: z.array(z.string()),
    label: z.array(z.number().int()),
    split: z.array(z.enum(['train', 'val', 'test'])),
    x: z.array(z.number()),
    y: z.array(z.number()),
    labelScore: z.array(z.number()),
    outlier: z.array(z.number()),
  }),
  /** The off-diagonal of the confident joint, most suspect first. */
  labelIssues: z.array(LabelIssue),
  /** Highest outlier score first: squared Mahalanobis distance of the middle stages' features (>= 0). */
  outliers: z.array(z.object({ imageId: z.number().int(), path: z.string(), score: z.number().min(0) })),
  /** Cosine similarity at or above which images were grouped. */
  threshold: z.number(),
  groups: z.array(z.object({ imageIds: z.array(z.number().int()), paths: z.array(z.string()) })),
});
export type CurationReport = z.infer<typeof CurationReport>;
