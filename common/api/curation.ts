// Curation with a model: a checkpoint's embeddings of a dataset -> suspected label errors, outliers, semantic
// near-duplicates and a 2D map (`cnx dataset issues` as a task; the report's schema is common/curation.ts).
import { z } from 'zod';
import { multipleOf32 } from './fields.ts';
import { ModelRef } from './tasks.ts';
import { DatasetName } from './vocabulary.ts';

export const CurationRequest = z.strictObject({
  dataset: DatasetName,
  model: ModelRef,
  /** Input size (default: the run's, else 224). */
  size: multipleOf32.optional(),
  /** Cosine similarity for semantic near-duplicate groups. */
  threshold: z.number().gt(0).max(1).default(0.97),
});
export type CurationRequest = z.input<typeof CurationRequest>;
