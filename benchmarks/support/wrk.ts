// wrk (C, one thread) as the load generator: `--loadgen wrk` / BENCH_LOADGEN=wrk. autocannon is a
// Node process that needs about a core of its own at these rates, so on a 2-core machine it caps
// the fastest servers; wrk needs a fraction of that, which leaves the server a whole core and
// makes the ratios between servers sharper (docs/design.md's budget is measured with wrk).
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface WrkRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  /** Header sets to rotate through, one per request in turn (wrk's Lua has no per-connection hook). */
  rotate?: Record<string, string>[];
  /** POST bodies: `{"user":"<prefix><9 digits>"}` with a per-request counter, all the same length. */
  userBodyPrefix?: string;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  /** ms */
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export const wrkAvailable = (): boolean => spawnSync('wrk', ['--version']).error === undefined;

const lua = (s: string) => JSON.stringify(s); // a JSON string is a valid Lua string literal here (ASCII)

function script(req: WrkRequest): string {
  const sets = req.rotate ?? [req.headers];
  const tables = sets.map((h) => `{${Object.entries(h).map(([k, v]) => `[${lua(k)}]=${lua(v)}`).join(',')}}`);
  return [
    `local sets = {${tables.join(',\n')}}`,
    'local i, n = 0, 0',
    `local prefix = ${lua(req.userBodyPrefix ?? '')}`,
    'function setup(thread) end',
    'function request()',
    '  i = i % #sets + 1',
    '  local body = nil',
    `  if prefix ~= '' then n = n + 1; body = string.format('{"user":"%s%09d"}', prefix, n) end`,
    `  return wrk.format(${lua(req.method)}, ${lua(req.path)}, sets[i], body)`,
    'end',
    'function done(summary, latency, requests)',
    '  io.write(string.format("RESULT %d %d %d %d %d %d %d %.1f %.1f\\n", summary.requests, summary.duration,',
    '    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,',
    '    latency:percentile(50), latency:percentile(99)))',
    'end',
  ].join('\n');
}

/** Run wrk against `base` for `seconds` with `connections`, one thread. */
export async function wrk(base: string, req: WrkRequest, connections: number, seconds: number): Promise<WrkResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-wrk-'));
  const file = path.join(dir, 'request.lua');
  writeFileSync(file, script(req));
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', file, base + req.path],
        { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
          (err ? reject(new Error(`wrk failed: ${err.message} ${stderr}`)) : resolve(stdout)));
    });
    const m = /RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)/.exec(out);
    if (m === null) throw new Error(`wrk printed no result:\n${out}`);
    const [requests, durationUs, connect, read, write, status, timeout, p50, p99] = m.slice(1).map(Number);
    return { requests, seconds: durationUs / 1e6, p50: p50 / 1000, p99: p99 / 1000, non2xx: status,
      errors: connect + read + write + timeout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
