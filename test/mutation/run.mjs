#!/usr/bin/env node
// Mutation check: plant each bug of mutants.mjs, one at a time, in a scratch copy of the
// project, run the test files meant to catch it, and report which were killed (a test failed)
// and which survived (every test passed with the bug in place).
//
//   node test/mutation/run.mjs                 every mutant (both targets unless TS_TARGETS says)
//   node test/mutation/run.mjs --list          the table, without running anything
//   node test/mutation/run.mjs --check         only check the table against the code (`npm test` runs it)
//   node test/mutation/run.mjs --only a,b      some mutants
//   node test/mutation/run.mjs --jobs 2        two mutants at a time (the default is one)
//   node test/mutation/run.mjs --tests f,g     run these test files instead of each mutant's own
//   node test/mutation/run.mjs --no-baseline   skip the unmutated run of the same test files
//   node test/mutation/run.mjs --scratch <dir> where the scratch copies and logs go
//
// Plain Node 20, no TypeScript loader: the tests themselves run under tap as usual. Scratch
// copies live outside the project (by default <tmpdir>/<project folder>-mutation/: a copy of
// lib/ inside the project makes tap's coverage report lose the real one); tap's output for each
// run is kept there as <id>.log. `npm run test:mutation` runs it all (two at a time); `npm test`
// runs only --check (a second: every snippet is still where its entry says), so the table cannot
// fall behind the code unnoticed. package.json's tap "exclude" leaves test/mutation/ out.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MUTANTS } from './mutants.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** What a scratch copy leaves out: dependencies are linked, build output and caches are not needed. */
const SKIP = new Set(['.git', 'node_modules', '.scratch', 'dist', '.tap', 'coverage']);

const { values: opts } = parseArgs({
  options: {
    list: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    only: { type: 'string' },
    jobs: { type: 'string', default: '1' },
    tests: { type: 'string' },
    'no-baseline': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '900' },
    scratch: { type: 'string', default: path.join(os.tmpdir(), `${path.basename(ROOT)}-mutation`) },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const SCRATCH = path.resolve(opts.scratch);
if (SCRATCH === ROOT || SCRATCH.startsWith(ROOT + path.sep)) {
  console.error(`--scratch must be outside the project (${ROOT}): tap's coverage report loses lib/ when a copy sits inside it`);
  process.exit(2);
}

if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 20).map((l) =>
    l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

// ---- the table -----------------------------------------------------------------------------

function pad(s, n) { s = String(s); return s.length >= n ? s : s + ' '.repeat(n - s.length); }

const ids = new Set();
const malformed = [];
for (const m of MUTANTS) {
  for (const k of ['id', 'description', 'file', 'find', 'tests']) {
    if (m[k] === undefined || (typeof m[k] === 'string' && m[k] === '')) malformed.push(`${m.id ?? '?'}: "${k}" is missing`);
  }
  if (typeof m.replace !== 'string') malformed.push(`${m.id}: "replace" must be a string`);
  else if (m.replace === m.find) malformed.push(`${m.id}: "replace" is its "find" (nothing would be planted)`);
  if (ids.has(m.id)) malformed.push(`${m.id}: duplicate id`);
  ids.add(m.id);
}
if (malformed.length) {
  console.error(`MUTATION TABLE MALFORMED — nothing was run:\n  ${malformed.join('\n  ')}`);
  process.exit(2);
}

let selected = MUTANTS;
if (opts.only) {
  const want = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = want.filter((id) => !ids.has(id));
  if (unknown.length) {
    console.error(`unknown mutant id(s): ${unknown.join(', ')} (see --list)`);
    process.exit(2);
  }
  selected = MUTANTS.filter((m) => want.includes(m.id));
}

if (opts.list) {
  for (const m of selected) {
    const env = m.env ? ` [${Object.entries(m.env).map(([k, v]) => `${k}=${v}`).join(' ')}]` : '';
    console.log(`${pad(m.id, 40)} ${m.file}\n    ${m.description}\n    tests: ${m.tests.join(', ')}${env}`);
  }
  console.log(`${selected.length} mutants`);
  process.exit(0);
}

// Every snippet must be found exactly once in the pristine source before anything runs: a
// snippet that moved or changed is a table to fix, never a mutant silently not planted. --check
// checks the whole table and stops there.
const broken = [];
for (const m of opts.check ? MUTANTS : selected) {
  const file = path.join(ROOT, m.file);
  if (!existsSync(file)) { broken.push(`${m.id}: ${m.file} does not exist`); continue; }
  const n = readFileSync(file, 'utf8').split(m.find).length - 1;
  if (n !== 1) broken.push(`${m.id}: its snippet occurs ${n} times in ${m.file} (must be exactly once)`);
  const missing = m.tests.filter((t) => !existsSync(path.join(ROOT, t)));
  if (missing.length) broken.push(`${m.id}: its test file ${missing.join(', ')} does not exist`);
}
if (opts.check) {
  if (broken.length) {
    console.error(`mutation table: ${broken.length} stale ${broken.length === 1 ? 'entry' : 'entries'} of ${MUTANTS.length} (re-point ` +
      `them at the code, test/mutation/mutants.mjs):\n  ${broken.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`mutation table: all ${MUTANTS.length} entries match the code`);
  process.exit(0);
}
if (broken.length) {
  console.error(`MUTATION TABLE OUT OF DATE — nothing was run:\n  ${broken.join('\n  ')}`);
  process.exit(2);
}

// ---- running -------------------------------------------------------------------------------

const jobs = Math.max(1, Math.min(2, Number(opts.jobs) || 1));
const timeoutMs = Number(opts.timeout) * 1000;
const override = opts.tests?.split(',').map((s) => s.trim()).filter(Boolean);
const testsOf = (m) => override ?? m.tests;

/** A scratch copy of the project for one worker, node_modules linked to the real one. */
function scratchCopy(name) {
  const dir = path.join(SCRATCH, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Entry by entry, leaving out what SKIP names.
  for (const entry of readdirSync(ROOT)) {
    if (!SKIP.has(entry)) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  }
  symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

/** The tap runs under way (each its own process group), killed with us on Ctrl-C. */
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of running) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    console.error(`\n${signal}: stopped; ${SCRATCH} may hold a mutated copy (it is rebuilt on the next run)`);
    process.exit(130);
  });
}

/** Run tap on `files` in `dir`; resolves to { code, seconds, failed: the names of the failed tests }. */
function runTap(dir, files, env, logName) {
  const started = Date.now();
  const log = path.join(SCRATCH, `${logName}.log`);
  return new Promise((resolve) => {
    const tap = path.join(dir, 'node_modules', '.bin', 'tap');
    const child = spawn(tap, ['--disable-coverage', '-R', 'tap', ...files], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.add(child);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.on('close', (code, signal) => {
      running.delete(child);
      clearTimeout(timer);
      writeFileSync(log, out);
      // The failed tests (not assertions: those lines carry no "# time="), innermost first, without
      // the per-adapter and per-target wrappers ("on fastify, a single redis-server", "on express4").
      const failed = [...new Set([...out.matchAll(/^ +not ok \d+ - (.+?) # time=/gm)].map((x) => x[1])
        .filter((name) => !/^on (?:(?:fastify|express\d)(?:, )?)?(?:a single redis-server|a 3-master Redis Cluster)?$/.test(name)))];
      resolve({ code: timedOut ? 'timeout' : code ?? signal, seconds: Math.round((Date.now() - started) / 1000), failed, log });
    });
  });
}

const targets = (m) => m.env?.TS_TARGETS ?? process.env.TS_TARGETS ?? 'single,cluster';
const started = new Date();
const workers = Array.from({ length: jobs }, (_, i) => scratchCopy(`w${i}`));

if (!opts['no-baseline']) {
  // The same files without any bug must pass, or a "killed" below would mean nothing.
  const files = [...new Set(selected.flatMap(testsOf))];
  console.log(`baseline: ${files.join(' ')} (TS_TARGETS=${process.env.TS_TARGETS ?? 'single,cluster'})`);
  const r = await runTap(workers[0], files, {}, 'baseline');
  if (r.code !== 0) {
    console.error(`BASELINE FAILED (exit ${r.code}) without any mutant: ${r.failed.join(' | ') || 'see log'}\n  log: ${r.log}`);
    process.exit(1);
  }
  console.log(`baseline passed in ${r.seconds} s`);
}

const results = [];
let next = 0;
async function worker(dir) {
  while (next < selected.length) {
    const m = selected[next++];
    const file = path.join(dir, m.file);
    const original = readFileSync(file, 'utf8');
    const parts = original.split(m.find);
    if (parts.length !== 2) throw new Error(`${m.id}: snippet not found exactly once in the scratch copy`);
    writeFileSync(file, parts.join(m.replace));
    let r;
    try {
      r = await runTap(dir, testsOf(m), m.env ?? {}, m.id);
    } finally {
      writeFileSync(file, original);
    }
    const killed = r.code !== 0;
    const row = { id: m.id, killed, code: r.code, seconds: r.seconds, failed: r.failed, targets: targets(m), tests: testsOf(m) };
    results.push(row);
    console.log(`${killed ? 'killed  ' : 'SURVIVED'} ${pad(m.id, 40)} ${pad(`${r.seconds} s`, 7)} ${killed ? (r.failed[0] ??
      `exit ${r.code}`).slice(0, 100) : `(${r.log})`}`);
  }
}
await Promise.all(workers.map(worker));

// ---- report --------------------------------------------------------------------------------

results.sort((a, b) => selected.findIndex((m) => m.id === a.id) - selected.findIndex((m) => m.id === b.id));
const killed = results.filter((r) => r.killed).length;
console.log('\n| mutant | result | targets | test files | first failing test |');
console.log('|---|---|---|---|---|');
for (const r of results) {
  const first = r.killed ? (r.failed[0] ?? `exit ${r.code}`).replaceAll('|', '\\|') : '';
  console.log(`| ${r.id} | ${r.killed ? 'killed' : '**survived**'} | ${r.targets} | ${r.tests.map((f) =>
    path.basename(f)).join(', ')} | ${first} |`);
}
console.log(`\nkilled ${killed} of ${results.length} (${((100 * killed) / results.length).toFixed(0)} %), ${started.toISOString().slice(0,
  10)}, ${Math.round((Date.now() - started.getTime()) / 60000)} min`);
process.exit(killed === results.length ? 0 : 1);
