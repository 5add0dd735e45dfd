// Small statistics and formatting helpers shared by the benchmark scripts.
import os from 'node:os';

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Nearest-rank quantile of an already sorted array (q in 0..1). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/**
 * Latencies in microsecond buckets up to 1 s (autocannon's own histogram has 1 ms resolution,
 * too coarse for sub-millisecond loopback answers). Recording is one array increment.
 */
export class MicroHistogram {
  readonly #counts = new Uint32Array(1_000_001);
  count = 0;

  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.#counts[us < 1_000_000 ? us : 1_000_000]++;
    this.count++;
  }

  /** Quantile in milliseconds. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return i / 1000;
    }
    return Infinity;
  }
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return n === Infinity ? '∞' : '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1024 * 1024) return `${fmt(n / 1024 / 1024, 1)} MiB`;
  if (Math.abs(n) >= 1024) return `${fmt(n / 1024, 1)} KiB`;
  return `${fmt(n)} B`;
}

/** A GitHub-flavoured markdown table; columns after the first are right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(header), sep, ...rows.map(line)].join('\n');
}

/** One line describing where the numbers come from. */
export function machineLine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ` +
    `node ${process.version}, ${os.platform()} ${os.release()}, load average ${load}`;
}
