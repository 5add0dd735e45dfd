// A bounded slice of the fault check (test/fault/, `npm run test:fault` runs the whole matrix):
// three short cells on real topologies, app instances as separate processes driven over HTTP
// with the README's clients and options. In each, no acknowledged revocation may be undone on any
// instance, and no live session may be lost beyond what the README allows.
import t from 'tap';
import { runCell, startWithFirstCell } from '../fault/cell.js';
import type { FaultName, TopologyName } from '../fault/topology.js';

t.setTimeout(300_000);

const cells: Array<[TopologyName, FaultName]> = [
  ['single', 'stall'],
  ['cluster', 'master-kill'],
  ['sentinel', 'link-cut'],
];

let index = 0;
for (const [name, fault] of cells) {
  t.test(`${name} × ${fault}: no acknowledged revocation undone, no live session lost`, async (t) => {
    const cell = 900 + index++;
    const opts = { seconds: 8 };
    // On the Cluster, the instances start with the cluster (before its replicas are listed).
    const { topology, instances } = await startWithFirstCell(name, fault, cell, opts);
    t.teardown(() => topology.stop());
    const r = await runCell(topology, fault, cell, opts, instances);
    t.comment(`${r.operations} operations, ${r.acknowledged} acknowledged revocations, ${r.late} late reads within the L1 ttl, ` +
      `${r.unconfirmed} unconfirmed (${r.window?.note})`);
    t.ok(r.acknowledged >= 150, `at least 150 acknowledged revocations (${r.acknowledged})`);
    t.same(r.violations.filter((v) => v.kind === 'undone'), [], 'no acknowledged revocation undone');
    t.same(r.violations.filter((v) => v.kind === 'lost'), [], 'no live session lost');
    t.equal(r.serverErrors, 0, 'no 5xx but 503');
  });
}
