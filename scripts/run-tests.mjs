// `npm test`'s tap stage: the suite in two parallel processes (the machine has two cores; each
// process runs one test file at a time).
//   1. every test file on ioredis 5, against all three adapters (Fastify 5, Express 5, Express 4),
//      with coverage;
//   2. every file that talks to Redis on ioredis 6 (TS_IOREDIS=6), against the Fastify adapter:
//      the adapters never touch the client, so this pass covers the client's major, not the
//      framework's.
// Pass 1 streams to the terminal; pass 2 is shown when it ends. Exit code: non-zero if either failed.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

// Files that never use an ioredis client of the suite's choosing (pure functions, the built
// package, the demos and examples, which import ioredis 5 themselves).
const NOT_REDIS = new Set(['cross-site', 'device', 'package', 'types', 'browser', 'quick-start', 'demo']);
const redisFiles = readdirSync(new URL('../test/', import.meta.url))
  .filter((f) => f.endsWith('.test.ts') && !NOT_REDIS.has(f.replace(/\.test\.ts$/, '')))
  .map((f) => `test/${f}`)
  .sort();

function run(label, args, env, live) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['tap', '--jobs', '1', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b) => { if (live) process.stdout.write(b); else out += b.toString(); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => resolve({ label, code, out }));
  });
}

const started = Date.now();
const [one, two] = await Promise.all([
  run('ioredis 5 × Fastify, Express 5, Express 4 (all files)', [], {}, true),
  run('ioredis 6 × Fastify (files that use Redis)', ['--disable-coverage', ...redisFiles], { TS_IOREDIS: '6', TS_ADAPTERS: 'fastify' }, false),
]);
process.stdout.write(`\n\n===== ${two.label} =====\n${two.out}\n`);
for (const r of [one, two]) console.log(`${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`}: ${r.label}`);
console.log(`tap stage: ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(one.code === 0 && two.code === 0 ? 0 : 1);
