// `npm test`'s tap stage: the suite in two parallel lanes, one file at a time each (the machine
// has two cores; a third file at once starved the timing-bound ones: TS_JOBS sets the first's).
//   1. the unit tests and every file that talks to Redis on ioredis 5, against all three adapters
//      (Fastify 5, Express 5, Express 4), with coverage;
//   2. every file that talks to Redis on ioredis 6 (TS_IOREDIS=6), against the Fastify adapter:
//      the adapters never touch the client, so this pass covers the client's major, not the
//      framework's; then, in the same lane, the files that use no client of the suite's choosing
//      (the built package, the consumer types, the demos in Chromium, the examples, the docs):
//      they cover no line of lib/ (they run the built package or child processes), and the two
//      lanes take about as long as each other.
// Pass 1 streams to the terminal; the other two are shown when they end. The last lines name every failed
// assertion of both passes (a CI log is often read from its tail, and pass 1's TAP scrolls away
// under pass 2's). Exit code: non-zero if either failed.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

// Files that never use an ioredis client of the suite's choosing (pure functions, the built
// package, the demos and examples, which import ioredis 5 themselves); unit tests (test/unit/:
// one module each, no Redis) are not in test/integration/ at all.
const NOT_REDIS = new Set(['package', 'types', 'browser', 'quick-start', 'demo', 'docs']);
const integration = readdirSync(new URL('../test/integration/', import.meta.url)).filter((f) => f.endsWith('.test.ts')).sort();
const redisFiles = integration.filter((f) => !NOT_REDIS.has(f.replace(/\.test\.ts$/, ''))).map((f) => `test/integration/${f}`);
const otherFiles = integration.filter((f) => NOT_REDIS.has(f.replace(/\.test\.ts$/, ''))).map((f) => `test/integration/${f}`);
const unitFiles = readdirSync(new URL('../test/unit/', import.meta.url)).filter((f) => f.endsWith('.test.ts')).sort()
  .map((f) => `test/unit/${f}`);
if (otherFiles.length !== NOT_REDIS.size) throw new Error(`run-tests.mjs: NOT_REDIS names a file that does not exist (${[...NOT_REDIS]})`);

function run(label, jobs, args, env, live) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['tap', '--jobs', String(jobs), ...args],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b) => { if (live) process.stdout.write(b); out += b.toString(); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => resolve({ label, code, out }));
  });
}

// The failed assertions in a pass's TAP, one line each: 'file > subtest > … > assertion (file:line)'.
// A failed subtest's own 'not ok' only repeats its children's, so it is listed only when it has
// none (a timeout, a crash, a file that exited non-zero).
function failures(tap) {
  const stack = [];
  const childFailed = [];
  const out = [];
  const lines = tap.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const sub = /^( *)# Subtest: (.*)$/.exec(lines[i]);
    if (sub) {
      const depth = sub[1].length / 4;
      stack.length = depth; stack[depth] = sub[2];
      childFailed.length = depth; childFailed[depth] = false;
      continue;
    }
    const bad = /^( *)not ok \d+ - (.*?)(?: # time=.*)?$/.exec(lines[i]);
    if (!bad) continue;
    const depth = bad[1].length / 4;
    if (stack[depth] === bad[2] && childFailed[depth]) continue;
    for (let d = 0; d < depth; d++) childFailed[d] = true;
    let at = '';
    for (let j = i + 1; j < Math.min(lines.length, i + 60) && lines[j].trim() !== '...'; j++) {
      const m = /^\s*(fileName|lineNumber): (.*)$/.exec(lines[j]);
      if (m) at += m[1] === 'fileName' ? m[2] : `:${m[2]}`;
    }
    out.push(`${[...stack.slice(0, depth), bad[2]].join(' > ')}${at ? ` (${at})` : ''}`);
  }
  return out;
}

const started = Date.now();
const [one, [two, three]] = await Promise.all([
  run('ioredis 5 × Fastify, Express 5, Express 4 (unit tests and files that use Redis)', Number(process.env.TS_JOBS ?? 1),
    [...unitFiles, ...redisFiles], {}, true),
  // The files without a client of the suite's choosing run after pass 2, beside pass 1: the two
  // lanes then take about as long as each other.
  run('ioredis 6 × Fastify (files that use Redis)', 1, ['--disable-coverage', ...redisFiles], { TS_IOREDIS: '6', TS_ADAPTERS: 'fastify' },
    false).then(async (r) => [r, await run('the built package, types, demos, examples and docs', 1, ['--disable-coverage', ...otherFiles],
    {}, false)]),
]);
for (const r of [two, three]) process.stdout.write(`\n\n===== ${r.label} =====\n${r.out}\n`);
for (const r of [one, two, three]) {
  if (r.code === 0) continue;
  const list = failures(r.out);
  console.log(`\n===== failed in ${r.label}: ${list.length} =====`);
  for (const f of list.slice(0, 30)) console.log(`  ${f}`);
  if (list.length > 30) console.log(`  … and ${list.length - 30} more (search the log for 'not ok')`);
}
for (const r of [one, two, three]) console.log(`${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`}: ${r.label}`);
console.log(`tap stage: ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(one.code === 0 && two.code === 0 && three.code === 0 ? 0 : 1);
