// Shapes of catalog rows and the vocabulary of problems a scan reports.
import type { Split } from '../../../common/manifest.ts';

export type { Split };
export type DatasetKind = 'folder' | 'csv' | 'idx' | 'unlabeled';
export const DATASET_KINDS: readonly DatasetKind[] = ['folder', 'csv', 'idx', 'unlabeled'];

/** Bits of images.flags. */
export const FLAG_CORRUPT = 1;
export const FLAG_EXCLUDED = 2;

/** Why a file that should be an image cannot be used; it stays in the catalog, flagged corrupt. */
export type ImageProblem = 'empty' | 'unreadable' | 'truncated' | 'unsupported-format' | 'undecodable' | 'too-many-pixels';

/** Why a path found by a scan is not in the catalog at all. */
export type IssueReason =
  | 'not-image'
  | 'hidden'
  | 'symlink-loop'
  | 'broken-symlink'
  | 'not-regular-file'
  | 'unreadable-dir'
  | 'no-class'
  | 'outside-split'
  | 'outside-root'
  | 'missing'
  | 'bad-row'
  | 'duplicate-row';

export interface DatasetRow {
  id: number;
  name: string;
  kind: DatasetKind;
  source: string;
  root: string;
  createdAt: string;
  scanGeneration: number;
  scanState: 'new' | 'scanning' | 'complete';
  scannedAt: string | null;
}

export interface LabelRow {
  id: number;
  name: string;
  ordinal: number | null;
  /** Position in the dataset's class list (manifest label). */
  index: number;
}

/** What the catalog knows of a file's content (null where it could not be read). */
export interface ImageProperties {
  contentHash: string | null;
  phash: string | null;
  width: number | null;
  height: number | null;
  channels: number | null;
  format: string | null;
}

export interface ImageRow extends ImageProperties {
  id: number;
  path: string;
  bytes: number;
  mtimeMs: number;
  labelId: number | null;
  label: string | null;
  split: Split;
  flags: number;
  problem: ImageProblem | null;
  problemDetail: string | null;
  addedAt: string;
  modifiedAt: string;
}

/** What analysing one file found: either its properties or the problem that stopped us. */
export interface ImageAnalysis extends ImageProperties {
  problem: { code: ImageProblem; detail: string } | null;
}

/** One result of a scan, written in batches. */
export type ScanRecord =
  | { type: 'seen'; path: string }
  | {
      type: 'image';
      path: string;
      bytes: number;
      mtimeMs: number;
      analysis: ImageAnalysis;
      label: { name: string; ordinal: number | null } | null;
      split: Split;
    }
  | { type: 'issue'; path: string; reason: IssueReason; detail: string };

export interface Issue {
  path: string;
  reason: IssueReason | ImageProblem;
  detail: string;
}

export interface EditRow {
  id: number;
  at: string;
  kind: string;
  summary: string;
  undoneAt: string | null;
  changes: number;
}

export type EditField = 'label_id' | 'split' | 'flags';
export interface FieldChange {
  imageId: number;
  field: EditField;
  value: number | string | null;
}
