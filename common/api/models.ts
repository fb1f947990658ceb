// Models: what the tasks compute from checkpoints (analyses, exports, reconstructions) and the checkpoint
// files brought into the workbench.
import { z } from 'zod';
import { absolutePath, int, isoTime, multipleOf32, step } from './fields.ts';
import { ModelRef, TaskId } from './tasks.ts';
import { DatasetName, EngineName, RelativePath, RunId, Split } from './vocabulary.ts';


export const AnalysisRequest = z.strictObject({
  /** The checkpoints to compare (V1 and V2, classifiers or FCMAE encoders), each with a label. */
  models: z.array(z.strictObject({ model: ModelRef, name: z.string().min(1).max(100).optional() })).min(1).max(4),
  /** The images: taken round-robin over the classes of this dataset's split. */
  dataset: DatasetName,
  split: Split.default('val'),
  images: int(1, 1024).default(64),
  size: multipleOf32.default(224),
  /** The block whose 64 channels the activation grids show (default: the last block of stage 2). */
  gridLayer: int(0, 200).optional(),
  /** Which of the chosen images the grids show. */
  gridImage: int(0).default(0),
  /** The engine that computes it: ONNX (CPU, or CUDA when present) or PyTorch (the Python of the settings). */
  engine: EngineName.default('onnx'),
});
export type AnalysisRequest = z.input<typeof AnalysisRequest>;

const ParamStats = z.object({ mean: z.number(), std: z.number(), min: z.number(), max: z.number(), nearZero: z.number() });
export const AnalysisModel = z.object({
  name: z.string(),
  checkpoint: z.string(),
  arch: z.string(),
  fcmae: z.boolean(),
  /** The activation grid's file in the task folder. */
  grid: z.string().nullable(),
  gridLayer: int(0),
  layers: z.array(
    z.object({
      name: z.string(),
      stage: int(0),
      channels: int(1),
      /** Normalized layer index, 0..1 (the paper's x axis). */
      depth: z.number(),
      /** Average pairwise feature cosine distance (paper Fig. 4); higher = more diverse channels. */
      distance: z.number().nullable(),
      dead: int(0),
      constant: int(0),
    }),
  ),
  /** GRN gamma (weight) and beta (bias) statistics per block; empty for V1. */
  grn: z.array(z.object({ layer: z.string(), weight: ParamStats, bias: ParamStats })),
});
export const AnalysisResult = z.object({
  /** Absent in results written before the engine was recorded (those are the ONNX engine's). */
  engine: EngineName.default('onnx'),
  images: int(0),
  size: int(1),
  split: z.string(),
  gridImage: z.object({ index: int(0), path: z.string(), label: z.string().nullable() }).nullable(),
  models: z.array(AnalysisModel),
});
export type AnalysisResult = z.infer<typeof AnalysisResult>;

/** hf: a Hugging Face / timm model folder (model.safetensors + config.json with class names and preprocessing). */
export const ExportFormat = z.enum(['onnx', 'timm', 'official', 'hf']);
export type ExportFormat = z.infer<typeof ExportFormat>;
/** ONNX export options: batch 'dynamic' (any) or fixed; float16 weights (compute stays float32); opset 18..21. */
export const OnnxOptions = z.strictObject({
  batch: z.union([z.literal('dynamic'), int(1, 4096)]).default('dynamic'),
  fp16Weights: z.boolean().default(false),
  opset: int(18, 21).default(20),
});
export type OnnxOptions = z.input<typeof OnnxOptions>;
export const ExportRequest = z.strictObject({
  runId: RunId,
  step,
  /** onnx: an inference model + metadata JSON (classifiers); timm / official: safetensors (an FCMAE run exports its encoder). */
  format: ExportFormat,
  /** The ONNX model's input size (default: the run's). */
  size: multipleOf32.optional(),
  onnx: OnnxOptions.optional(),
});
export type ExportRequest = z.input<typeof ExportRequest>;

/** FCMAE reconstructions of chosen images by some of a pretraining run's checkpoints, under one mask. */
export const ReconstructionRequest = z.strictObject({
  runId: RunId,
  /** The checkpoints (steps) to compare; each gets the same images and masks. */
  steps: z.array(step).min(1).max(8),
  /** Images by dataset-relative path; else `images` picked at random (pickSeed) from `split` of the run's data. */
  paths: z.array(RelativePath).min(1).max(16).optional(),
  split: Split.default('val'),
  images: int(1, 16).default(4),
  pickSeed: int(0).default(0),
  /** Default: the run's own mask ratio. */
  maskRatio: z.number().gt(0).lt(1).optional(),
  maskSeed: int(0).default(0),
});
export type ReconstructionRequest = z.input<typeof ReconstructionRequest>;

// ---- models in: reconstructions by an imported FCMAE checkpoint file (e.g. an official training checkpoint)
/** Images of a catalogued dataset reconstructed by one checkpoint file that holds an FCMAE decoder. */
export const FileReconstructionRequest = z.strictObject({
  file: absolutePath,
  dataset: DatasetName,
  split: Split.default('val'),
  images: int(1, 16).default(4),
  pickSeed: int(0).default(0),
  size: multipleOf32.default(224),
  maskRatio: z.number().gt(0).lt(1).default(0.6),
  maskSeed: int(0).default(0),
});
export type FileReconstructionRequest = z.input<typeof FileReconstructionRequest>;

export const ReconstructionResult = z.object({
  size: int(32),
  maskRatio: z.number(),
  maskSeed: int(0),
  patchesPerSide: int(1),
  images: z.array(z.object({ path: z.string(), label: z.string().nullable() })),
  checkpoints: z.array(
    z.object({
      name: z.string(),
      checkpoint: z.string(),
      arch: z.string(),
      loss: z.number().nullable(),
      /** Grid file in the task folder: a row per image; original | masked | reconstruction | + visible | error. */
      grid: z.string(),
      /** Per image, per patch (row-major): mean squared error of a removed patch; null for visible ones. */
      patchErrors: z.array(z.array(z.number().nullable())),
    }),
  ),
});
export type ReconstructionResult = z.infer<typeof ReconstructionResult>;

/** Exports a checkpoint file (an imported one): the same formats, the architecture as the file holds it. */
export const ExportFileRequest = z.strictObject({
  file: absolutePath,
  format: ExportFormat,
  size: multipleOf32.default(224),
  onnx: OnnxOptions.optional(),
  /** Class names for the ONNX metadata, one per class of the head. */
  labels: z.array(z.string().min(1).max(200)).max(100_000).optional(),
});
export type ExportFileRequest = z.input<typeof ExportFileRequest>;

/**
 * A checkpoint file brought into the workbench (official, timm, or another workbench's): checked and
 * described by an import task; the file stays where it is and is referred to by path.
 */
export const ImportedModel = z.object({
  /** The import task that checked it; tasks.delete forgets the import (never the file). */
  taskId: TaskId,
  name: z.string(),
  file: z.string(),
  /** false when the file has gone since it was imported. */
  present: z.boolean(),
  importedAt: isoTime,
  /** timm's model name, e.g. convnextv2_atto. */
  arch: z.string(),
  kind: z.enum(['classifier', 'encoder', 'fcmae']),
  numClasses: int(0),
  format: z.string(),
  layout: z.string(),
  parameters: int(0),
  notes: z.array(z.string()),
  /** Where the file comes from (e.g. "official FCMAE training checkpoint ..."); '' for imports made before. */
  source: z.string(),
  /** Whether it holds the FCMAE decoder, and what that means for reconstructions. */
  decoderNote: z.string(),
  /** The training epoch an official training checkpoint records. */
  epoch: z.number().int().nullable(),
});
export type ImportedModel = z.infer<typeof ImportedModel>;
