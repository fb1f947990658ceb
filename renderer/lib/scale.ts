// Axis arithmetic for the charts: extents, linear/log mappings and "nice" tick values with labels short
// enough for a narrow axis.

export interface Extent {
  min: number;
  max: number;
}

/** Min and max of the finite values of some arrays (positive values only for a log axis); null if none. */
export function extentOf(arrays: readonly ArrayLike<number>[], log: boolean): Extent | null {
  let min = Infinity;
  let max = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (!Number.isFinite(v) || (log && v <= 0)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return min <= max ? { min, max } : null;
}

/** Pads an extent so lines do not touch the frame; a flat series gets a visible band around its value. */
export function padExtent(e: Extent, log: boolean, fraction = 0.05): Extent {
  if (log) {
    const lo = Math.log10(e.min);
    const hi = Math.log10(e.max);
    const pad = hi > lo ? (hi - lo) * fraction : 0.5;
    return { min: 10 ** (lo - pad), max: 10 ** (hi + pad) };
  }
  if (e.max > e.min) {
    const pad = (e.max - e.min) * fraction;
    return { min: e.min - pad, max: e.max + pad };
  }
  const pad = Math.abs(e.min) > 0 ? Math.abs(e.min) * 0.1 : 1;
  return { min: e.min - pad, max: e.max + pad };
}

/** Maps a domain value to a pixel (y grows downwards when range is [bottom, top]). */
export function scaleFn(domain: Extent, range: readonly [number, number], log: boolean): (v: number) => number {
  const [r0, r1] = range;
  if (log) {
    const d0 = Math.log10(domain.min);
    const k = (r1 - r0) / (Math.log10(domain.max) - d0 || 1);
    return (v) => r0 + (Math.log10(v) - d0) * k;
  }
  const k = (r1 - r0) / (domain.max - domain.min || 1);
  return (v) => r0 + (v - domain.min) * k;
}

/** About `count` round tick values (1, 2, 5 x 10^k steps) inside [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min) || !Number.isFinite(min) || !Number.isFinite(max)) return Number.isFinite(min) ? [min] : [];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // d3's thresholds: the multiplier nearest to the wanted step on a log scale.
  const err = raw / mag;
  const step = mag * (err >= Math.sqrt(50) ? 10 : err >= Math.sqrt(10) ? 5 : err >= Math.sqrt(2) ? 2 : 1);
  const ticks: number[] = [];
  // Integer multiples avoid accumulating 0.1 + 0.2 style drift.
  for (let i = Math.ceil(min / step); i * step <= max + step * 1e-9; i++) ticks.push(i * step);
  return ticks;
}

/** Powers of ten inside [min, max] (with 2x and 5x when the range spans few decades). */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > min)) return [];
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mults = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of mults) {
    // Parsed from decimal text: 10 ** -4 is 0.00009999999999999999 in floating point.
    const v = Number(`${m}e${e}`);
    if (v >= min && v <= max) ticks.push(v);
  }
  return ticks;
}

/** A compact label: 0.0005 -> 5e-4, 12345 -> 12.3k, 0.8123 -> 0.812. */
export function formatNumber(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${trim((v / 1e6).toPrecision(digits))}M`;
  if (a >= 1e4) return `${trim((v / 1e3).toPrecision(digits))}k`;
  if (a >= 1e3) return String(Math.round(v));
  if (a < 1e-3) return v.toExponential(Math.max(0, digits - 2)).replace(/\.0+e/, 'e');
  return trim(v.toPrecision(digits));
}

/** A tick label with as many decimals as the tick spacing needs (2.305, 2.31, 2.315 rather than 2.3 x 3). */
export function formatTick(v: number, spacing: number): string {
  if (!(spacing > 0) || Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)) return formatNumber(v);
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(spacing) + 1e-9)));
  return (Math.abs(v) < spacing / 2 ? 0 : v).toFixed(decimals);
}

const trim = (s: string) => (s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s);
