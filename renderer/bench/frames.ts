// Frame timing in the page: runs `each` once per animation frame for `durationMs` and reports the
// intervals between frames, which is what a user perceives as smooth or janky.

export interface FrameStats {
  frames: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Frames that took longer than 1.5 vsync intervals at 60 Hz (a visible stutter). */
  over25Ms: number;
  /** Mean time spent in `each` itself (our code, before layout and paint). */
  meanWorkMs: number;
}

/** What the bench page offers its driver (test/bench/ui.ts) on window.bench. */
export interface BenchApi {
  ready(): boolean;
  points(): number;
  renderedCells(): number;
  scrollGrid(durationMs: number, pxPerFrame: number): Promise<FrameStats>;
  jumpGrid(durationMs: number): Promise<FrameStats>;
  hoverChart(durationMs: number): Promise<FrameStats>;
  appendChart(durationMs: number, perFrame: number): Promise<FrameStats>;
  drawCost(times: number): { meanMs: number; maxMs: number };
  panZoomMap(durationMs: number): Promise<FrameStats>;
  mapDrawCost(times: number): { meanMs: number; maxMs: number };
}

declare global {
  interface Window {
    bench: BenchApi;
  }
}

export function measureFrames(durationMs: number, each: (frame: number) => void): Promise<FrameStats> {
  return new Promise((resolve) => {
    const stamps: number[] = [];
    let work = 0;
    let frame = 0;
    const start = performance.now();
    const tick = (now: number) => {
      stamps.push(now);
      const t0 = performance.now();
      each(frame++);
      work += performance.now() - t0;
      if (now - start < durationMs) requestAnimationFrame(tick);
      else {
        const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!).sort((a, b) => a - b);
        const q = (p: number) => gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))] ?? 0;
        resolve({
          frames: gaps.length,
          meanMs: gaps.reduce((a, b) => a + b, 0) / Math.max(1, gaps.length),
          p50Ms: q(0.5),
          p95Ms: q(0.95),
          p99Ms: q(0.99),
          maxMs: gaps.at(-1) ?? 0,
          over25Ms: gaps.filter((g) => g > 25).length,
          meanWorkMs: work / Math.max(1, frame),
        });
      }
    };
    requestAnimationFrame(tick);
  });
}
