// Progress rate and time left of a run, from the (time, step) pairs its summaries report. A sliding window
// keeps the estimate current when speed changes (evaluation pauses, a resumed run on another device).

export interface ProgressSample {
  /** Milliseconds since the epoch. */
  t: number;
  step: number;
}

export class RateEstimator {
  private samples: ProgressSample[] = [];

  constructor(private readonly windowMs = 60_000) {}

  /** Records a sample; a step going backwards (a resume from an older checkpoint) restarts the window. */
  add(s: ProgressSample): void {
    const last = this.samples.at(-1);
    if (last && (s.step < last.step || s.t < last.t)) this.samples = [];
    if (last && s.step === last.step && s.t - last.t < 1000) return;
    this.samples.push(s);
    const keepFrom = s.t - this.windowMs;
    while (this.samples.length > 2 && this.samples[1]!.t <= keepFrom) this.samples.shift();
  }

  /** Steps per second over the window; null until two samples at least a step apart exist. */
  stepsPerSecond(): number | null {
    const a = this.samples[0];
    const b = this.samples.at(-1);
    if (!a || !b || b.step <= a.step || b.t <= a.t) return null;
    return ((b.step - a.step) * 1000) / (b.t - a.t);
  }

  /** Seconds until `totalSteps`, from the latest sample; null when the rate is unknown. */
  secondsLeft(totalSteps: number): number | null {
    const rate = this.stepsPerSecond();
    const b = this.samples.at(-1);
    if (rate === null || !b) return null;
    return Math.max(0, (totalSteps - b.step) / rate);
  }
}
