// "Try it": top-5 classes and a Grad-CAM overlay of images by one or more classifier checkpoints. The models
// stay loaded and compiled (ExplainerCache) so the app's repeated requests and the CLI's image loop pay the
// load and graph compile once per checkpoint and image size.
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import type { ProviderChoice } from '../engine/runtime.ts';
import { loadModel } from '../jobs/inference.ts';
import { type PreparedImage, overlayPng } from './explain-image.ts';
import { Explainer, topK } from './gradcam.ts';

/** A loaded classifier ready to explain: where it came from, its class names when known, its compiled graphs. */
export interface ExplainModel {
  readonly file: string;
  readonly arch: string;
  readonly numClasses: number;
  readonly classes: readonly string[] | null;
  readonly explainer: Explainer;
}

export interface ModelExplanation {
  readonly top: { index: number; name: string | null; p: number }[];
  readonly target: { index: number; name: string | null };
  /** The Grad-CAM grid (h rows of w values in [0, 1]) and its max before scaling (0: an all-zero map). */
  readonly cam: number[][];
  readonly camMax: number;
  readonly overlay: Buffer;
  readonly ms: number;
}

const RunConfig = z.object({ data: z.object({ manifest: z.string() }) });
const ManifestClasses = z.object({ classes: z.array(z.string()) });

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    return schema.safeParse(JSON.parse(await readFile(file, 'utf8'))).data ?? null;
  } catch {
    return null;
  }
}

/**
 * Class names of a checkpoint: a labels file (one name a line), a model folder's config.json label_names, or,
 * for a checkpoint inside a run folder (runs/<id>/checkpoints/), the run's frozen manifest; else null.
 */
export async function classNamesOf(file: string, numClasses: number, folderLabels: readonly string[] | null, labelsFile?: string): Promise<string[] | null> {
  let names: string[] | null = null;
  if (labelsFile) {
    names = (await readFile(labelsFile, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    if (names.length !== numClasses) throw new Error(`${labelsFile}: ${names.length} class names for a ${numClasses}-class head`);
    return names;
  }
  if (folderLabels) return [...folderLabels];
  if (basename(dirname(file)) === 'checkpoints') {
    const config = await readJson(join(dirname(dirname(file)), 'config.json'), RunConfig);
    if (config) names = (await readJson(config.data.manifest, ManifestClasses))?.classes ?? null;
  }
  return names && names.length === numClasses ? names : null;
}

/** Loaded models by file, modification time and size; the least recently used beyond `max` is released. */
export class ExplainerCache {
  private readonly entries = new Map<string, Promise<ExplainModel>>();

  constructor(
    private readonly o: { max?: number; provider?: ProviderChoice; threads?: number } = {},
  ) {}

  async get(file: string, size: number, labelsFile?: string): Promise<ExplainModel> {
    const s = await stat(file);
    const key = JSON.stringify([file, s.mtimeMs, s.size, size, labelsFile ?? null]);
    let entry = this.entries.get(key);
    if (entry) this.entries.delete(key);
    else entry = this.load(file, size, labelsFile);
    this.entries.set(key, entry);
    entry.catch(() => this.entries.get(key) === entry && this.entries.delete(key));
    while (this.entries.size > (this.o.max ?? 4)) {
      const [oldest, m] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      m.then((x) => x.explainer.release(), () => {});
    }
    return entry;
  }

  get size(): number {
    return this.entries.size;
  }

  private async load(file: string, size: number, labelsFile?: string): Promise<ExplainModel> {
    const m = await loadModel(file);
    const explainer = await Explainer.create(m, size, this.o.provider ?? 'cpu', this.o.threads ?? 0);
    const classes = await classNamesOf(file, m.numClasses, m.checkpoint.folder?.labels ?? null, labelsFile);
    return { file, arch: m.arch.name, numClasses: m.numClasses, classes, explainer };
  }

  async release(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.then((m) => m.explainer.release(), () => {})));
  }
}

/** One model on one prepared image: top-5 (named when the classes are known), the map and its overlay. */
export async function explainWith(m: ExplainModel, img: PreparedImage, target?: number): Promise<ModelExplanation> {
  const t0 = performance.now();
  const e = await m.explainer.explain(img.chw, target);
  const ms = performance.now() - t0;
  const name = (i: number) => m.classes?.[i] ?? null;
  const cam = Array.from({ length: e.h }, (_, y) => Array.from(e.cam.subarray(y * e.w, (y + 1) * e.w), (v) => Math.round(v * 1e6) / 1e6));
  return {
    top: topK(e.probs, Math.min(5, m.numClasses)).map((t) => ({ ...t, name: name(t.index) })),
    target: { index: e.target, name: name(e.target) },
    cam,
    camMax: e.camMax,
    overlay: await overlayPng(img, e.cam, e.h, e.w),
    ms,
  };
}
