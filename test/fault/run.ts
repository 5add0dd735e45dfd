// The fault check: topology × fault, each cell driving three app instances over HTTP while the
// fault is injected and healed, then reading every token on every instance (cell.ts says what is
// checked). Prints a table; exits 1 on any violation (or a cell that could not run).
//
//   npm run test:fault                                   # the whole matrix
//   npm run test:fault -- --topology single --fault stall --seconds 20
//   npm run test:fault -- --json results.json
//   npm run test:fault -- --control                      # confirmRevocations: false on Cluster ×
//                                                        # master-kill: must report violations
import { writeFileSync } from 'node:fs';
import { PostgresServer } from '../fixtures/postgres.js';
import { runCell, startWithFirstCell, type CellResult } from './cell.js';
import { FAULTS, TOPOLOGIES, type FaultName, type TopologyName } from './topology.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const control = process.argv.includes('--control');
const list = <T extends string>(name: string, all: readonly T[], dflt: readonly T[]): T[] => {
  const v = arg(name);
  if (v === undefined) return [...dflt];
  const out = v.split(',') as T[];
  for (const x of out) if (!all.includes(x)) { console.error(`--${name}: ${x} is not one of ${all.join(', ')}`); process.exit(2); }
  return out;
};
const topologies = list<TopologyName>('topology', TOPOLOGIES, control ? ['cluster'] : TOPOLOGIES);
const faults = list<FaultName>('fault', FAULTS, control ? ['master-kill'] : FAULTS);
const seconds = Number(arg('seconds') ?? 25);
const jsonFile = arg('json');
const log = (l: string) => console.log(l);

const results: CellResult[] = [];
const skipped: string[] = [];
const failed: string[] = [];
let postgres: PostgresServer | undefined;
const began = Date.now();
let cellIndex = 0;
try {
  for (const name of topologies) {
    log(`${name}: starting`);
    if (faults.includes('pg-down') && !postgres) postgres = await PostgresServer.start();
    const opts = { seconds, control, ...(postgres ? { postgres } : {}), log };
    const applicable = faults.filter((f) => f === 'pg-down' || f === 'instance-kill' || (name === 'single' || f !== 'slow-link'));
    const started = await startWithFirstCell(name, applicable[0], cellIndex, opts);
    const topology = started.topology;
    let early = started.instances;
    try {
      for (const fault of faults) {
        const generic = fault === 'pg-down' || fault === 'instance-kill';
        if (!generic && !topology.faults.includes(fault)) { skipped.push(`${name} × ${fault}`); continue; }
        try {
          const r = await runCell(topology, fault, cellIndex++, opts, early);
          early = undefined;
          results.push(r);
          log(`  ${name} × ${fault}: ${r.operations} operations, ${r.acknowledged} acknowledged, ${r.violations.length} violations ` +
            `(${r.seconds} s)`);
          for (const v of r.violations.slice(0, 10)) log(`    ${v.kind}: ${JSON.stringify(v)}`);
        } catch (err) {
          failed.push(`${name} × ${fault}: ${(err as Error).stack ?? err}`);
          log(`  ${name} × ${fault}: could not run: ${(err as Error).message}`);
        }
        try {
          await topology.settle();
        } catch (err) {
          failed.push(`${name}: did not settle after ${fault}, its later cells not run: ${(err as Error).message}`);
          break;
        }
      }
    } finally {
      await topology.stop();
    }
  }
} finally {
  await postgres?.stop();
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
const rows = results.map((r) => [r.topology, r.fault, r.operations, r.acknowledged, r.violations.filter((v) => v.kind === 'undone').length,
  r.violations.filter((v) => v.kind === 'lost').length, r.late, r.unconfirmed, r.excusedLost, r.serverErrors]);
const head = ['topology', 'fault', 'operations', 'acknowledged', 'undone', 'lost', 'late', 'unconfirmed', 'lost (allowed)', '5xx≠503'];
console.log(`\nfault check${control ? ' (CONTROL: confirmRevocations false)' : ''}, ${new Date().toISOString().slice(0,
  10)}, ${Math.round((Date.now() - began) / 1000)} s`);
console.log(head.map((h, i) => pad(h, i < 2 ? 14 : 16)).join(' '));
for (const r of rows) console.log(r.map((c, i) => pad(c, i < 2 ? 14 : 16)).join(' '));
for (const t of topologies) {
  const mine = results.filter((r) => r.topology === t);
  const v = mine.reduce((n, r) => n + r.violations.length, 0);
  console.log(`${t}: ${mine.reduce((n, r) => n + r.acknowledged, 0)} acknowledged revocations, ${v} violations`);
}
if (skipped.length) console.log(`not applicable: ${skipped.join(', ')}`);
for (const f of failed) console.log(`FAILED TO RUN: ${f}`);
if (jsonFile) writeFileSync(jsonFile,
  JSON.stringify({ date: new Date().toISOString(), control, seconds, results, skipped, failed }, null, 2));
const violations = results.reduce((n, r) => n + r.violations.length, 0);
// The control must find what it plants; the real run must find nothing.
process.exit(failed.length > 0 ? 1 : control ? (violations > 0 ? 0 : 1) : (violations > 0 ? 1 : 0));
