// The benchmark charts: SVG drawn from a run's own numbers (run.ts calls chartFiles() with what
// it measured and writes them to benchmarks/charts/, which benchmarks/README.md embeds). Pure
// functions: numbers in, SVG text out, no I/O, no dependency.

/** One bar: its label, its value, the text printed after it (default: the value), whether to stress it. */
export interface Bar {
  label: string;
  value: number;
  text?: string;
  strong?: boolean;
}

export interface BarChart {
  title: string;
  /** Under the title: what the numbers are. */
  subtitle?: string;
  bars: Bar[];
  /** A vertical reference line (the baseline's 1.00, a target). */
  reference?: { value: number; label: string };
  /** Log scale (values must be positive): for latencies spanning decades. */
  log?: boolean;
}

/** What run.ts measured, as the charts need it. Every part is optional: a partial run draws what it has. */
export interface ChartInput {
  /** GET /hello per framework: each server's median req/s and median ratio to bare of the same round. */
  http?: { framework: string; servers: { label: string; rps: number; ratio: number; strong?: boolean }[] }[];
  /** Revocation propagation between two processes: the quantiles of the measured latencies (ms). */
  revocation?: { samples: number; quantiles: { label: string; ms: number }[] };
  /** Bytes per session: in Redis (per spread), and per L1 entry. */
  memory?: { rows: { label: string; bytes: number; strong?: boolean }[]; target?: { bytes: number; label: string } };
}

const PLOT = 400;
const RIGHT = 170;
const ROW = 26;
const TOP = 72;

/** Text for an SVG text node or attribute. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const num = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '–');
const group = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');

/** A horizontal bar chart as an SVG document. Bars whose value is not finite are listed without a bar. */
export function barChart(c: BarChart): string {
  const values = c.bars.map((b) => b.value).filter((v) => Number.isFinite(v) && (!c.log || v > 0));
  const refs = c.reference !== undefined ? [c.reference.value] : [];
  const all = [...values, ...refs];
  // Room on the left for the longest label (about 6.7 px per character at 12 px).
  const LEFT = Math.round(Math.min(520, 24 + 6.7 * Math.max(10, ...c.bars.map((b) => b.label.length))));
  const WIDTH = LEFT + PLOT + RIGHT;
  const plot = PLOT;
  let x: (v: number) => number;
  let ticks: number[];
  if (c.log) {
    // A decade below the smallest value, so that every bar has a length.
    const lo = 10 ** (Math.ceil(Math.log10(Math.min(...all, 1))) - 1);
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)));
    x = (v) => LEFT + (plot * (Math.log10(v) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
    ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const hi = Math.max(...all, 0) * 1.05 || 1;
    const step = niceStep(hi / 5);
    x = (v) => LEFT + (plot * v) / (Math.ceil(hi / step) * step);
    ticks = [];
    for (let t = 0; t <= Math.ceil(hi / step) * step * 1.0001; t += step) ticks.push(t);
  }
  const height = TOP + c.bars.length * ROW + 34;
  const bottom = TOP + c.bars.length * ROW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
      `font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">`,
    `<title>${escapeXml(c.title)}</title>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="15" font-weight="600" fill="#1d2330">${escapeXml(c.title)}</text>`,
  ];
  if (c.subtitle) out.push(`<text x="16" y="42" fill="#667085">${escapeXml(c.subtitle)}</text>`);
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${bottom}" stroke="#e4e7ec"/>`,
      `<text x="${tx}" y="${bottom + 16}" text-anchor="middle" fill="#667085">${escapeXml(tickText(t))}</text>`);
  }
  c.bars.forEach((b, i) => {
    const y = TOP + i * ROW;
    const drawable = Number.isFinite(b.value) && (!c.log || b.value > 0);
    const w = drawable ? Math.max(1, x(b.value) - LEFT) : 0;
    out.push(`<g class="bar" data-label="${escapeXml(b.label)}" data-value="${b.value}">`,
      `<text x="${LEFT - 8}" y="${y + 15}" text-anchor="end" fill="#1d2330"${b.strong ? ' ' +
        'font-weight="600"' : ''}>${escapeXml(b.label)}</text>`);
    if (drawable) out.push(`<rect x="${LEFT}" y="${y +
      4}" width="${w.toFixed(1)}" height="${ROW - 9}" rx="2" fill="${b.strong ? '#2f6fed' : '#98a2b3'}"/>`);
    out.push(`<text x="${(LEFT + w + 6).toFixed(1)}" y="${y + 15}" fill="#1d2330">${escapeXml(b.text ?? num(b.value))}</text>`, '</g>');
  });
  if (c.reference !== undefined) {
    const rx = x(c.reference.value).toFixed(1);
    out.push(`<line x1="${rx}" y1="${TOP - 10}" x2="${rx}" y2="${bottom}" stroke="#b42318" stroke-dasharray="4 3"/>`,
      `<text x="${rx}" y="${TOP - 14}" text-anchor="middle" fill="#b42318">${escapeXml(c.reference.label)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function tickText(t: number): string {
  if (t === 0) return '0';
  if (t >= 1000) return t.toLocaleString('en-US');
  return String(Number(t.toPrecision(3)));
}

/** The charts a run's numbers give: file name (in benchmarks/charts/) → SVG. */
export function chartFiles(input: ChartInput): Map<string, string> {
  const files = new Map<string, string>();
  for (const f of input.http ?? []) {
    files.set(`l1-hit-${f.framework.toLowerCase()}.svg`, barChart({
      title: `GET /hello on ${f.framework}: req/s as a share of bare ${f.framework}`,
      subtitle: 'Median over rounds of the ratio to the bare server of the same round (req/s after the bar)',
      bars: f.servers.map((s) => ({ label: s.label, value: s.ratio, text: `${num(s.ratio)}  (${group(s.rps)} req/s)`, strong: s.strong })),
      reference: { value: 1, label: 'bare' },
    }));
  }
  if (input.revocation !== undefined) {
    const r = input.revocation;
    files.set('revocation-latency.svg', barChart({
      title: 'Revocation propagation: revoke() returns in one process, the other drops it from L1',
      subtitle: `${group(r.samples)} revocations, one at a time, two processes, Redis on loopback (ms, log scale)`,
      bars: r.quantiles.map((q) => ({ label: q.label, value: q.ms, text: `${num(q.ms, 3)} ms`, strong: q.label === 'p50' ||
        q.label === 'p99' })),
      log: true,
    }));
  }
  if (input.memory !== undefined) {
    const m = input.memory;
    files.set('bytes-per-session.svg', barChart({
      title: 'Bytes per session',
      subtitle: 'Redis: used_memory growth per session created; L1: heap per cached entry after a full GC',
      bars: m.rows.map((x) => ({ label: x.label, value: x.bytes, text: `${num(x.bytes, 1)} B`, strong: x.strong })),
      ...(m.target === undefined ? {} : { reference: { value: m.target.bytes, label: m.target.label } }),
    }));
  }
  return files;
}

/** The markdown that embeds the charts (benchmarks/README.md carries it under Results). */
export function chartMarkdown(files: Iterable<string>): string {
  return [...files].map((f) => `![${f.replace(/\.svg$/, '').replace(/-/g, ' ')}](charts/${f})`).join('\n\n');
}
