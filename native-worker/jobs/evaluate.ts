// Classifier evaluation on the ONNX engine: one forward graph of a fixed batch (the last partial batch is
// padded and its padding ignored), metrics over a whole split: top-1, top-5, per-class accuracy, confusion.
import type * as ort from 'onnxruntime-node';
import type { Arch } from '../../common/variants.ts';
import { Graph } from '../engine/ir.ts';
import { CompiledGraph, type ProviderChoice, tensor } from '../engine/runtime.ts';
import { convnextFeatures, convnextHead, convnextParams } from '../nn/convnext.ts';
import type { ParamValues } from '../nn/params.ts';

export interface EvalMetrics {
  readonly images: number;
  readonly top1: number | null;
  readonly top5: number | null;
  /** Accuracy per class (null for a class with no images). */
  readonly perClass: (number | null)[];
  /** confusion[true][predicted] counts. */
  readonly confusion: number[][];
}

/** A misclassified image: its dataset-relative path, true label and prediction. */
export interface Mistake {
  readonly path: string;
  readonly label: number;
  readonly pred: number;
}

/** Bounds the mistakes file of a huge validation split (a few MB at most); the PyTorch engine's too. */
export const MAX_MISTAKES = 20000;

/** Accumulates predictions of labelled images into the metrics. */
export class EvalAccumulator {
  private readonly confusion: number[][];
  private top5Hits = 0;
  private count = 0;
  /** The misclassified images seen so far (when add() was given their paths). */
  readonly mistakes: Mistake[] = [];

  constructor(private readonly k: number) {
    this.confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  }

  add(logits: Float32Array, labels: ArrayLike<number>, rows: number, paths?: readonly string[]): void {
    const k = this.k;
    for (let i = 0; i < rows; i++) {
      const label = labels[i]!;
      if (label < 0 || label >= k) continue;
      const row = logits.subarray(i * k, (i + 1) * k);
      let best = 0;
      for (let j = 1; j < k; j++) if (row[j]! > row[best]!) best = j;
      this.confusion[label]![best]!++;
      if (best !== label && paths && this.mistakes.length < MAX_MISTAKES) this.mistakes.push({ path: paths[i]!, label, pred: best });
      // Top-5: fewer than 5 classes score higher than the true one.
      let higher = 0;
      for (let j = 0; j < k; j++) if (row[j]! > row[label]!) higher++;
      if (higher < 5) this.top5Hits++;
      this.count++;
    }
  }

  result(): EvalMetrics {
    const correct = this.confusion.reduce((s, r, i) => s + r[i]!, 0);
    return {
      images: this.count,
      top1: this.count ? correct / this.count : null,
      top5: this.count ? this.top5Hits / this.count : null,
      perClass: this.confusion.map((r, i) => {
        const n = r.reduce((a, b) => a + b, 0);
        return n ? r[i]! / n : null;
      }),
      confusion: this.confusion.map((r) => [...r]),
    };
  }
}

/** A compiled forward graph for batches of `batch` images of `size` px; weights are inputs. */
export class Evaluator {
  private constructor(
    private readonly session: CompiledGraph,
    private readonly specs: ReturnType<typeof convnextParams>,
    readonly batch: number,
    readonly size: number,
    readonly numClasses: number,
  ) {}

  static async create(arch: Arch, numClasses: number, batch: number, size: number, o: { provider?: ProviderChoice; threads?: number } = {}): Promise<Evaluator> {
    const cfg = { arch, numClasses };
    const specs = convnextParams(cfg);
    const g = new Graph('eval');
    const p = new Map(specs.map((s) => [s.name, g.input(s.name, 'float32', s.shape)] as const));
    const x = g.input('image', 'float32', [batch, 3, size, size]);
    g.output(convnextHead(cfg, p, convnextFeatures(cfg, p, x).features).logits, 'logits');
    const session = await CompiledGraph.create(g, { ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}) });
    return new Evaluator(session, specs, batch, size, numClasses);
  }

  /** Logits (rows x K) of up to `batch` images; fewer rows are padded with zeros. */
  async logits(weights: ParamValues, images: Float32Array, rows: number): Promise<Float32Array> {
    const per = 3 * this.size * this.size;
    const full = rows === this.batch && images.length === rows * per ? images : padded(images, rows * per, this.batch * per);
    const feeds: Record<string, ort.Tensor> = { image: tensor('float32', full, [this.batch, 3, this.size, this.size]) };
    for (const s of this.specs) feeds[s.name] = tensor('float32', weights.get(s.name)!, s.shape);
    const out = await this.session.run(feeds);
    return (out.logits!.data as Float32Array).subarray(0, rows * this.numClasses);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function padded(src: Float32Array, used: number, total: number): Float32Array {
  const out = new Float32Array(total);
  out.set(src.subarray(0, used));
  return out;
}
