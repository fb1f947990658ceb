// A frozen dataset manifest: the exact list of files, labels and splits a run trains on. Produced by the
// catalog's export, read by training jobs (possibly on another machine), validated the same way everywhere.
import { z } from 'zod';
import { sha256Hex } from './sha256.ts';
import { UserError } from './errors.ts';

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** A path relative to the manifest root: '/' separated, no '.', '..' or empty segments. */
const relativePath = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\\') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), {
    message: "must be relative to root, '/' separated, without '.', '..' or empty segments",
  });

/** POSIX ('/x'), drive ('C:\x', 'C:/x') or UNC ('\\host\share') absolute paths. */
const absolutePath = z
  .string()
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\'), { message: 'must be an absolute path' });

export const manifestItemSchema = z.strictObject({
  path: relativePath,
  label: z.number().int().nonnegative().nullable(),
  split: z.enum(SPLITS),
});

export const manifestSchema = z
  .strictObject({
    version: z.literal(1),
    dataset: z.string().min(1),
    createdAt: z.iso.datetime(),
    root: absolutePath,
    classes: z.array(z.string().min(1)),
    items: z.array(manifestItemSchema),
    hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)'),
  })
  .superRefine((m, ctx) => {
    const classes = new Set<string>();
    m.classes.forEach((c, i) => {
      if (classes.has(c)) ctx.addIssue({ code: 'custom', path: ['classes', i], message: `duplicate class '${c}'` });
      classes.add(c);
    });
    const paths = new Set<string>();
    m.items.forEach((item, i) => {
      if (item.label !== null && item.label >= m.classes.length) {
        ctx.addIssue({ code: 'custom', path: ['items', i, 'label'], message: `label ${item.label} is not a class index (${m.classes.length} classes)` });
      }
      if (paths.has(item.path)) ctx.addIssue({ code: 'custom', path: ['items', i, 'path'], message: `duplicate path '${item.path}'` });
      paths.add(item.path);
    });
  });

export type ManifestItem = z.infer<typeof manifestItemSchema>;
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestContent = Omit<Manifest, 'hash'>;

/**
 * sha256 of the canonical content: what is trained on (version, dataset, classes, items in order), as a
 * JSON array so key order cannot matter. createdAt and root are left out on purpose: the same data exported
 * twice, or moved to another machine, keeps its hash.
 */
export function manifestHash(m: ManifestContent): string {
  return sha256Hex(JSON.stringify([m.version, m.dataset, m.classes, m.items.map((i) => [i.path, i.label, i.split])]));
}

/** Seals content with its hash. */
export function sealManifest(content: ManifestContent): Manifest {
  return { ...content, hash: manifestHash(content) };
}

export class ManifestError extends UserError {
  override name = 'ManifestError';
}

/**
 * Validates parsed JSON as a manifest and checks its hash. `source` (usually the file name) starts every
 * message so the user knows which file is wrong; at most five problems are listed.
 */
export function parseManifest(data: unknown, source: string): Manifest {
  const r = manifestSchema.safeParse(data);
  if (!r.success) {
    const shown = r.error.issues.slice(0, 5).map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    const more = r.error.issues.length > 5 ? [`  ... and ${r.error.issues.length - 5} more`] : [];
    throw new ManifestError([`${source}: not a valid dataset manifest:`, ...shown, ...more].join('\n'));
  }
  const expected = manifestHash(r.data);
  if (expected !== r.data.hash) {
    throw new ManifestError(`${source}: hash mismatch (file says ${r.data.hash}, content is ${expected}): the manifest was changed after export`);
  }
  return r.data;
}
