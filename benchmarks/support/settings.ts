// Benchmark settings: CLI flags (`--duration 2` or `--duration=2`) win over environment variables
// (`BENCH_DURATION=2`), which win over the defaults. run.ts passes its resolved settings to the
// scripts it starts through the environment, so every script can also run on its own.
import { parseArgs } from 'node:util';

const FLAGS = {
  duration: 'BENCH_DURATION',
  warmup: 'BENCH_WARMUP',
  connections: 'BENCH_CONNECTIONS',
  rounds: 'BENCH_ROUNDS',
  sessions: 'BENCH_SESSIONS',
  'l1-entries': 'BENCH_L1_ENTRIES',
  iterations: 'BENCH_ITERATIONS',
  revocations: 'BENCH_REVOCATIONS',
  'revocations-http': 'BENCH_REVOCATIONS_HTTP',
  failovers: 'BENCH_FAILOVERS',
  only: 'BENCH_ONLY',
  skip: 'BENCH_SKIP',
  loadgen: 'BENCH_LOADGEN',
  'redis-url': 'REDIS_URL',
} as const;
type Flag = keyof typeof FLAGS;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }])),
  strict: false,
  allowPositionals: true,
});

/** The raw value of a setting, or undefined. */
export function raw(flag: Flag): string | undefined {
  const v = values[flag];
  if (typeof v === 'string' && v !== '') return v;
  const e = process.env[FLAGS[flag]];
  return e === undefined || e === '' ? undefined : e;
}

export function num(flag: Flag, dflt: number, min = 0): number {
  const v = raw(flag);
  if (v === undefined) return dflt;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${flag} / ${FLAGS[flag]} must be a number >= ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

export function list(flag: Flag): string[] | undefined {
  const v = raw(flag);
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** `100k`, `1M`, `20000` → numbers. */
export function counts(flag: Flag, dflt: number[]): number[] {
  const l = list(flag);
  if (l === undefined) return dflt;
  return l.map((s) => {
    const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s.replace(/_/g, ''));
    if (!m) {
      console.error(`--${flag} / ${FLAGS[flag]}: cannot read ${JSON.stringify(s)} (use e.g. 100000, 100k, 1M)`);
      process.exit(2);
    }
    const mult = m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1e3 : 1e6;
    return Math.round(Number(m[1]) * mult);
  });
}

/** The environment a child script needs to see the same settings. */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [flag, name] of Object.entries(FLAGS)) {
    const v = raw(flag as Flag);
    if (v !== undefined) env[name] = v;
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}
