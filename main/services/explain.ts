// "Try it" (explain.upload, explain.run): the images and models a request names, checked, then top-5 and
// Grad-CAM computed by one long-lived child process (`cnx explain --serve`) that keeps each model loaded
// between requests; a crash there fails the request, never the app, and the next request starts a new one.
import { createHash } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { ApiError, type ApiParsedRequest, type ApiResponse, type ExplainImage, type ModelRef } from '../../common/api.ts';
import { JobConfig } from '../../common/job.ts';
import type { DatasetService } from './datasets.ts';
import { type ExplainJob, ExplainReply, type ExplainedModel } from '../../common/explain-protocol.ts';
import { type NodeRuntime, cnxCommand } from './engines.ts';
import type { Store } from './store.ts';

const UPLOAD_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'bmp']);
/** Decoded uploads above this many pixels are refused (a decompression bomb). */
const MAX_UPLOAD_PIXELS = 40e6;
/** The upload cache keeps the newest KEEP_UPLOADS images (uploads are at most ~700 KB each). */
const KEEP_UPLOADS = 300;

/** Deletes all but the newest `keep` files of a folder. */
async function pruneOldest(dir: string, keep: number): Promise<void> {
  const names = await readdir(dir);
  if (names.length <= keep) return;
  const dated = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => null))?.mtimeMs ?? 0 })));
  dated.sort((a, b) => b.t - a.t);
  await Promise.all(dated.slice(keep).map((d) => rm(join(dir, d.n), { force: true })));
}

type Pending = Map<number, { resolve: (m: ExplainedModel[]) => void; reject: (e: Error) => void }>;

/** A reply line, or null for anything else the process printed. */
function parseReply(line: string): ExplainReply | null {
  try {
    return ExplainReply.safeParse(JSON.parse(line)).data ?? null;
  } catch {
    return null;
  }
}

export class ExplainService {
  private child: { child: ChildProcessWithoutNullStreams; pending: Pending; next: number; stderr: string } | null = null;

  constructor(
    private readonly store: Store,
    private readonly datasets: DatasetService,
    private readonly node: NodeRuntime,
  ) {}

  private get uploads(): string {
    return join(this.store.workspace, 'cache', 'explain');
  }

  async upload(r: ApiParsedRequest<'explain.upload'>): Promise<ApiResponse<'explain.upload'>> {
    const bytes = Buffer.from(r.data, 'base64');
    const meta = await sharp(bytes, { limitInputPixels: MAX_UPLOAD_PIXELS }).metadata().catch(() => null);
    if (!meta?.format || !UPLOAD_FORMATS.has(meta.format) || !meta.width || !meta.height) {
      throw new ApiError('invalid', `${r.name}: not an image (PNG, JPEG, WebP, GIF, TIFF or BMP) or too large to decode`, 'data');
    }
    const id = createHash('sha256').update(bytes).digest('hex');
    await mkdir(this.uploads, { recursive: true });
    const file = join(this.uploads, id);
    if (await stat(file).catch(() => null)) {
      const now = new Date();
      await utimes(file, now, now); // the newest again, as far as pruning goes
    } else {
      await writeFile(`${file}.tmp`, bytes);
      await rename(`${file}.tmp`, file);
      await pruneOldest(this.uploads, KEEP_UPLOADS);
    }
    return { upload: id, width: meta.width, height: meta.height };
  }

  async run(r: ApiParsedRequest<'explain.run'>): Promise<ApiResponse<'explain.run'>> {
    const t0 = performance.now();
    const image = await this.imageFile(r.image);
    const models = r.models.map((m, i) => ({ ...this.modelOf(m.model, `models.${i}.model`), ...(m.name ? { name: m.name } : {}) }));
    for (const [i, m] of models.entries()) {
      if (!(await stat(m.file).catch(() => null))) throw new ApiError('not-found', `${m.file}: no such checkpoint file (or model folder)`, `models.${i}.model`);
    }
    const size = r.size ?? models.find((m) => m.size)?.size ?? 224;
    let found: ExplainedModel[];
    try {
      found = await this.compute({ image, size, models: models.map((m) => ({ file: m.file, name: m.name })), ...(r.classIndex !== undefined ? { target: r.classIndex } : {}) });
    } catch (e) {
      throw new ApiError('invalid', (e as Error).message);
    }
    return {
      size,
      models: found.map((m) => ({ ...m, overlay: `data:image/png;base64,${m.overlay}` })),
      totalMs: performance.now() - t0,
    };
  }

  private async imageFile(img: ExplainImage): Promise<string> {
    if ('dataset' in img) return this.datasets.imageFile(img.dataset, img.path);
    const file = 'upload' in img ? join(this.uploads, img.upload) : img.file;
    if (!(await stat(file).catch(() => null))?.isFile()) throw new ApiError('not-found', 'upload' in img ? `no upload '${img.upload}' (send it with explain.upload)` : `${img.file}: no such image file`, 'image');
    return file;
  }

  /** A model reference's checkpoint file, default label and (for a run) input size. */
  private modelOf(ref: ModelRef, field: string): { file: string; name: string; size: number | null } {
    if ('file' in ref) return { file: ref.file, name: ref.file.split(/[\\/]/).pop()!.replace(/\.[^.]+$/, ''), size: null };
    const rec = this.store.run(ref.runId);
    if (!rec) throw new ApiError('not-found', `no run '${ref.runId}'`, field);
    const c = this.store.checkpoints(ref.runId).find((k) => k.step === ref.step);
    if (!c) throw new ApiError('not-found', `run '${rec.summary.name}' has no checkpoint at step ${ref.step}`, field);
    const config = JobConfig.safeParse(rec.config);
    if (config.success && config.data.kind === 'pretrain') throw new ApiError('invalid', `run '${rec.summary.name}' is FCMAE pretraining: its checkpoints have no classifier head to explain`, field);
    return { file: c.path, name: `${rec.summary.name} @${ref.step}`, size: config.success ? config.data.model.inputSize : null };
  }

  /** Runs one job in the explain process (`cnx explain --serve`), started on first use and again if it died. */
  private compute(job: Omit<ExplainJob, 'id'>): Promise<ExplainedModel[]> {
    if (!this.child) {
      const cmd = cnxCommand(this.node, ['explain', '--serve']);
      const child = spawn(cmd.command, [...cmd.args], { cwd: cmd.cwd, env: cmd.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const pending: Pending = new Map();
      const state = { child, pending, next: 1, stderr: '' };
      createInterface({ input: child.stdout }).on('line', (line) => {
        const r = parseReply(line);
        if (!r) return;
        const p = pending.get(r.id);
        pending.delete(r.id);
        if ('models' in r) p?.resolve(r.models);
        else p?.reject(new Error(r.error));
      });
      child.stderr.setEncoding('utf8').on('data', (t: string) => (state.stderr = (state.stderr + t).slice(-2000)));
      const fail = (e: Error) => {
        for (const p of pending.values()) p.reject(e);
        pending.clear();
        if (this.child === state) this.child = null;
      };
      child.on('error', fail);
      child.on('exit', (code, signal) => fail(new Error(`the explain process exited (${signal ?? code}): ${state.stderr.trim().split('\n').slice(-3).join(' ')}`)));
      child.stdin.on('error', () => {}); // a dead child: 'exit' reports it
      this.child = state;
    }
    const c = this.child;
    const id = c.next++;
    return new Promise((resolve, reject) => {
      c.pending.set(id, { resolve, reject });
      c.child.stdin.write(`${JSON.stringify({ id, ...job } satisfies ExplainJob)}\n`);
    });
  }

  /** The explain process's id while one runs (for diagnostics and tests). */
  get pid(): number | null {
    return this.child?.child.pid ?? null;
  }

  /** Closes the explain process's input (it releases its models and exits); killed if it lingers. */
  async shutdown(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
    const exited = new Promise((r) => c.child.once('exit', r));
    c.child.stdin.end();
    const timer = setTimeout(() => c.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
