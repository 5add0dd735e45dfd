/** One sample of the Prometheus text: its metric name (a histogram's `_bucket`, `_sum`, `_count`), labels and value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric family of the Prometheus text. */
export interface ParsedFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'untyped';
  samples: Sample[];
}

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Read the package's Prometheus text (`sessions.prometheus()`) back into families, in order:
 * what the prom-client and OpenTelemetry bridges serve, so every exporter says the same.
 */
export function parseExposition(text: string): ParsedFamily[] {
  const out: ParsedFamily[] = [];
  const byName = new Map<string, ParsedFamily>();
  const family = (name: string) => {
    let f = byName.get(name);
    if (f === undefined) {
      f = { name, help: '', type: 'untyped', samples: [] };
      byName.set(name, f);
      out.push(f);
    }
    return f;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      const sp = line.indexOf(' ', 7);
      family(line.slice(7, sp)).help = line.slice(sp + 1);
    } else if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      family(name).type = type as ParsedFamily['type'];
    } else if (line !== '' && !line.startsWith('#')) {
      const m = SAMPLE.exec(line);
      if (m === null) continue;
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? '').matchAll(LABEL)) labels[k] = v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      const name = m[1];
      const last = out[out.length - 1];
      const own = last !== undefined && (name === last.name || (last.type === 'histogram' && /^_(bucket|sum|count)$/.test(name.slice(last.name.length)) && name.startsWith(last.name)));
      (own ? last : family(name)).samples.push({ name, labels, value: Number(m[3]) });
    }
  }
  return out;
}

/** One unlabelled metric: its type, name, help and value (a boolean is 1 or 0). */
export type PlainMetric = readonly ['counter' | 'gauge', string, string, number | boolean];

/** The Prometheus text of unlabelled metrics, in order (the audit sink's and the event feed's). */
export function plainExposition(metrics: readonly PlainMetric[]): string {
  const out: string[] = [];
  for (const [type, name, help, v] of metrics) {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${typeof v === 'boolean' ? (v ? 1 : 0) : v}`);
  }
  return out.join('\n') + '\n';
}
