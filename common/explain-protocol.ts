// The "Try it" process boundary: the main process writes ExplainJob lines to `cnx explain --serve` (a
// long-lived child that keeps the models loaded) and reads ExplainReply lines back, both checked with these.
import { z } from 'zod';
import { ExplainedModel } from './api/explain.ts';

export { ExplainedModel };

export const ExplainJob = z.strictObject({
  id: z.number().int().min(1),
  image: z.string().min(1),
  size: z.number().int().min(32).max(1024).refine((s) => s % 32 === 0, 'must be a multiple of 32'),
  models: z.array(z.strictObject({ file: z.string().min(1), name: z.string().min(1) })).min(1).max(4),
  target: z.number().int().min(0).optional(),
});
export type ExplainJob = z.infer<typeof ExplainJob>;

export const ExplainReply = z.union([
  z.object({ id: z.number().int(), models: z.array(ExplainedModel) }),
  z.object({ id: z.number().int(), error: z.string() }),
]);
export type ExplainReply = z.infer<typeof ExplainReply>;
