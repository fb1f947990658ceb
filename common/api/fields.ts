// Field schemas the API's domain files share; not part of the contract's exported names.
import { z } from 'zod';

export const int = (lo: number, hi?: number) => (hi === undefined ? z.number().int().min(lo) : z.number().int().min(lo).max(hi));
export const step = int(0);
export const isoTime = z.string();
export const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\'), 'must be an absolute path');
/** An input size the models take: a multiple of 32 (the stem and three downsamplings). */
export const multipleOf32 = int(32, 1024).refine((s) => s % 32 === 0, 'must be a multiple of 32');
