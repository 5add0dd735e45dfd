// One cell of the fault check: a topology, a fault, three app instances (Fastify, Fastify reading
// a replica where the topology has `readFrom`, Express 5), users driven over HTTP by concurrent
// workers while the fault is injected and healed; then every token read on every instance.
//
// What is checked (README, "Replicated Redis", "Staleness and coherence guarantee", "Failure
// policy"):
// - undone: a token whose revocation was ACKNOWLEDGED (a 2xx answer to sign-out, revoke one, log
//   out everywhere, rotate, confirm authentication (it rotates), a sign-in carrying it, or a
//   sign-in whose cap eviction removed it) is accepted (2xx) by a request sent after the acknowledgement on the instance that acknowledged
//   it, or on any instance later than the L1 `ttl` (15 s) after it, or at the final read.
//   Accepted on another instance within the ttl is counted as `late` (the README's bound).
// - lost: a session whose sign-in (or rotation, or confirmation) answered 2xx and that nothing acknowledged or
//   attempted ending answers 401 at the final read, unless its sign-in was answered while a
//   failover was possible (from 2 s before the fault to its heal: sign-ins are not confirmed).
//   A non-2xx answer to anything that may end a session makes that session's state unknown
//   (neither checked as revoked nor as live) until an acknowledged revocation covers it.
import type { AppConfig } from './app.js';
import { Instance, type Answer } from './instances.js';
import { Cluster, startTopology, type FaultName, type FaultWindow, type Topology, type TopologyName } from './topology.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { sleep } from '../fixtures/redis.js';

export const SECRET = 'fault-check-secret-long-enough-0123456789';
/** The L1 `ttl` the apps run with (the README's default): a revocation's bound under faults. */
export const L1_TTL_MS = 15_000;

export interface CellOptions {
  seconds: number;
  users?: number;
  workers?: number;
  /** The control: `confirmRevocations: false` on every instance. */
  control?: boolean;
  postgres?: PostgresServer;
  log?: (line: string) => void;
}

export interface Violation {
  kind: 'undone' | 'lost';
  session: string;
  user: string;
  /** How its revocation was acknowledged (undone), or how it was created (lost). */
  by: string;
  at: number;
  instance: string;
  readAt: number;
  readInstance: string;
  status: number;
  /** When and how the session was created (an undone one: was it lost in a failover before?). */
  created?: string;
}

export interface CellResult {
  topology: string;
  fault: FaultName;
  control: boolean;
  window: FaultWindow | undefined;
  operations: number;
  acknowledged: number;
  unconfirmed: number;
  late: number;
  excusedLost: number;
  serverErrors: number;
  unanswered: number;
  violations: Violation[];
  seconds: number;
}

type State = 'live' | 'revoked' | 'unknown';
interface Tok {
  label: string; user: string; id: string; token: string;
  createdAt: number; createdBy: string;
  state: State; ackAt: number; ackInst: number; ackBy: string;
}
interface User { name: string; toks: Tok[]; busy: boolean }

const pick = <T>(a: readonly T[]): T => a[Math.floor(Math.random() * a.length)];
const ok = (s: number) => s >= 200 && s < 300;

const CAP = 3;

/** A cell's three instances (not started): Fastify, Fastify (+ `readFrom` on the single topology), Express 5. */
export function cellInstances(topology: Pick<Topology, 'endpoint'>, fault: FaultName, cellIndex: number, opts: CellOptions): Instance[] {
  const keyPrefix = `fc${cellIndex}${Math.random().toString(36).slice(2, 6)}:`;
  const adapters: AppConfig['adapter'][] = ['fastify', 'fastify', 'express'];
  return adapters.map((adapter, i) => new Instance(i, {
    adapter, endpoint: topology.endpoint(i), keyPrefix, secret: SECRET, maxSessionsPerUser: CAP,
    ...(fault === 'pg-down' && opts.postgres ? { auditUrl: opts.postgres.url } : {}),
    ...(opts.control ? { confirmRevocations: false as const } : {}),
  }));
}

/**
 * Start a topology and, on a Cluster, the instances of its first cell together with it (their
 * clients connect to a cluster whose replicas have not replicated yet, as after a fresh start or
 * a full restart); elsewhere the instances start when the cell runs.
 */
export async function startWithFirstCell(name: TopologyName, fault: FaultName, cellIndex: number,
  opts: CellOptions): Promise<{ topology: Topology; instances: Instance[] | undefined }> {
  if (name !== 'cluster') return { topology: await startTopology(name), instances: undefined };
  let instances: Instance[] | undefined;
  const topology = await Cluster.start(async (endpoint) => {
    instances = cellInstances({ endpoint: () => endpoint }, fault, cellIndex, opts);
    await Promise.all(instances.map((i) => i.start()));
  });
  return { topology, instances };
}

/**
 * Run one cell. `instances` (from {@link cellInstances}) may have been started already, e.g.
 * together with a fresh cluster; otherwise they are started here.
 */
export async function runCell(topology: Topology, fault: FaultName, cellIndex: number, opts: CellOptions,
  instances = cellInstances(topology, fault, cellIndex, opts)): Promise<CellResult> {
  const log = opts.log ?? (() => {});
  const users: User[] = Array.from({ length: opts.users ?? 40 }, (_, i) => ({ name: `u${cellIndex}-${i}`, toks: [], busy: false }));
  const cap = CAP;
  const started = Date.now();
  const res: CellResult = {
    topology: topology.name, fault, control: opts.control === true, window: undefined, operations: 0, acknowledged: 0,
    unconfirmed: 0, late: 0, excusedLost: 0, serverErrors: 0, unanswered: 0, violations: [], seconds: 0,
  };
  const all: Tok[] = [];
  const revoked: Tok[] = [];
  let gen = 0;
  let lastAck = 0;

  const call = async (inst: Instance, method: string, path: string, token?: string,
    body?: object): Promise<Answer & { sent: number; at: number }> => {
    const sent = Date.now();
    const a = await inst.request(method, path, token, body);
    res.operations++;
    if (a.status >= 500 && a.status !== 503) res.serverErrors++;
    return { ...a, sent, at: Date.now() };
  };
  const newTok = (user: User, id: string, token: string, at: number, by: string): Tok => {
    const t: Tok = { label: `${id.slice(-8)}#${++gen}`, user: user.name, id, token, createdAt: at, createdBy: by, state: 'live', ackAt: 0,
      ackInst: -1, ackBy: '' };
    user.toks.push(t);
    all.push(t);
    return t;
  };
  const ack = (t: Tok, at: number, inst: Instance, by: string) => {
    if (t.state === 'revoked') return;
    t.state = 'revoked';
    t.ackAt = at; t.ackInst = inst.index; t.ackBy = by;
    res.acknowledged++;
    revoked.push(t);
    lastAck = Math.max(lastAck, at);
  };
  const unsure = (t: Tok) => { if (t.state === 'live') t.state = 'unknown'; };
  // A read of `t` on `inst`, sent at `sent`, answered `status`.
  const observe = (t: Tok, inst: Instance, sent: number, status: number, final = false) => {
    if (t.state !== 'revoked' || !ok(status) || sent <= t.ackAt) return;
    if (final || inst.index === t.ackInst || sent > t.ackAt + L1_TTL_MS) {
      res.violations.push({ kind: 'undone', session: t.label, user: t.user, by: t.ackBy, at: t.ackAt, instance: instances[t.ackInst].name,
        readAt: sent, readInstance: inst.name, status, created: `${t.createdBy} at ${t.createdAt}` });
    } else {
      res.late++;
    }
  };
  const up = () => instances.filter((i) => i.up);
  // While the fault runs (and from 2 s before it, as the lost check counts), a fault that can
  // promote a replica may lose a session signed in then.
  let faultStart = Infinity;
  const mayHaveFailedOver = (createdAt: number) => (fault === 'master-kill' || fault === 'stall') &&
    createdAt >= faultStart - 2000 && (res.window === undefined || createdAt <= res.window.healed);
  const live = (u: User) => u.toks.filter((t) => t.state === 'live');

  // --- operations (one at a time per user, so each answer says exactly what changed) ---
  async function signIn(u: User, carry: Tok | undefined): Promise<void> {
    const inst = pick(up());
    const before = live(u).filter((t) => t !== carry);
    // Sessions the server may hold besides the carried one: at the cap, a sign-in evicts.
    const atCap = u.toks.filter((t) => t.state !== 'revoked' && t !== carry).length >= cap;
    const a = await call(inst, 'POST', '/login', carry?.token, { user: u.name });
    if (!ok(a.status) || !a.token) {
      if (a.status !== 0 && a.status < 500) return;
      if (carry) unsure(carry);
      if (atCap) before.forEach(unsure);
      res.unconfirmed++;
      return;
    }
    const t = newTok(u, (a.body as { id: string }).id, a.token, a.at, `sign-in on ${inst.name}`);
    if (carry) ack(carry, a.at, inst, `sign-in carrying it on ${inst.name}`);
    if (!atCap) return;
    // The cap evicted someone: which one, from the device list (read from a primary). A session
    // signed in while a failover was possible may be missing because the failover lost it (sign-ins
    // are not confirmed) while its creator's L1 still serves it: never revoked, its fate is open.
    const lister = up().find((i) => !(i.config.endpoint.kind === 'single' && i.config.endpoint.readFromUrl)) ?? inst;
    const l = await call(lister, 'GET', '/sessions', t.token);
    if (l.status !== 200) { before.forEach(unsure); return; }
    const ids = new Set((l.body as { sessions: { id: string }[] }).sessions.map((s) => s.id));
    for (const b of before) {
      if (ids.has(b.id)) continue;
      if (mayHaveFailedOver(b.createdAt)) unsure(b);
      else ack(b, a.at, inst, `cap eviction by a sign-in on ${inst.name}`);
    }
  }

  async function op(u: User): Promise<void> {
    const ls = live(u);
    const r = Math.random() * 100;
    if (ls.length === 0 || r < 22) return signIn(u, undefined);
    const a = pick(ls);
    const inst = pick(up());
    if (r < 30) return signIn(u, a);
    if (r < 42) {
      const x = await call(inst, 'POST', '/logout', a.token);
      if (x.status === 204) ack(a, x.at, inst, `sign-out on ${inst.name}`);
      else { unsure(a); res.unconfirmed++; }
      return;
    }
    if (r < 54) {
      const b = ls.find((t) => t !== a);
      if (!b) return signIn(u, undefined);
      const x = await call(inst, 'DELETE', `/sessions/${encodeURIComponent(b.id)}`, a.token);
      if (x.status === 204) ack(b, x.at, inst, `revoke one on ${inst.name}`);
      else { unsure(b); if (x.status !== 404) res.unconfirmed++; }
      return;
    }
    if (r < 59) {
      const keep = Math.random() < 0.5;
      const targets = u.toks.filter((t) => t.state !== 'revoked' && !(keep && t === a));
      const x = await call(inst, 'POST', '/sessions/logout-everywhere', a.token, keep ? { keepCurrent: true } : {});
      if (x.status === 200) for (const t of targets) ack(t, x.at, inst, `log out everywhere on ${inst.name}`);
      else { targets.forEach(unsure); res.unconfirmed++; }
      return;
    }
    if (r < 69) {
      const x = await call(inst, 'POST', '/rotate', a.token);
      if (x.status === 200 && x.token) {
        ack(a, x.at, inst, `rotation on ${inst.name}`);
        newTok(u, a.id, x.token, x.at, `rotation on ${inst.name}`);
      } else { unsure(a); res.unconfirmed++; }
      return;
    }
    if (r < 75) {
      // A confirmed authentication rotates the token, as a sign-in makes a new one.
      const x = await call(inst, 'POST', '/reauth', a.token);
      if (ok(x.status) && x.token) {
        ack(a, x.at, inst, `re-authentication on ${inst.name}`);
        newTok(u, a.id, x.token, x.at, `re-authentication on ${inst.name}`);
      } else if (x.status === 0 || x.status >= 500) { unsure(a); res.unconfirmed++; }
      return;
    }
    const t = pick(u.toks);
    const x = await call(inst, 'GET', '/me', t.token);
    observe(t, inst, x.sent, x.status);
  }

  async function readEverywhere(toks: Tok[], final: boolean): Promise<void> {
    const jobs = toks.flatMap((t) => instances.map((inst) => ({ t, inst })));
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const { t, inst } = jobs[next++];
        let x: Awaited<ReturnType<typeof call>> | undefined;
        for (let attempt = 0; attempt < (final ? 6 : 1); attempt++) {
          x = await call(inst, 'GET', '/me', t.token);
          if (x.status !== 0 && x.status !== 503) break;
          await sleep(300);
        }
        if (!final) { observe(t, inst, x!.sent, x!.status); continue; }
        if (x!.status === 0 || x!.status === 503) { res.unanswered++; continue; }
        observe(t, inst, x!.sent, x!.status, true);
        if (t.state === 'live' && x!.status === 401) {
          const w = res.window;
          if (w && w.failover && t.createdAt >= w.start - 2000 && t.createdAt <= w.healed &&
            t.createdBy.startsWith('sign-in')) res.excusedLost++;
          else res.violations.push({ kind: 'lost', session: t.label, user: t.user, by: t.createdBy, at: t.createdAt, instance: '',
            readAt: x!.sent, readInstance: inst.name, status: x!.status });
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
  }

  try {
    await Promise.all(instances.filter((i) => !i.up).map((i) => i.start()));
    // Every instance serving (its channel up) before the clock starts.
    for (const inst of instances) {
      const end = Date.now() + 30_000;
      while ((await inst.request('POST', '/login', undefined, { user: `warm-${cellIndex}` })).status !== 200) {
        if (Date.now() > end) throw new Error(`instance ${inst.name} not serving sign-ins`);
        await sleep(200);
      }
    }
    log(`  ${topology.name} × ${fault}: instances up (${Date.now() - started} ms)`);
    const t0 = Date.now();
    const stopAt = t0 + opts.seconds * 1000;
    let faultDone = false;
    const faultRun = (async () => {
      await sleep(Math.min(4000, opts.seconds * 200));
      const start = Date.now();
      faultStart = start;
      if (fault === 'pg-down') {
        if (!opts.postgres) throw new Error('pg-down needs a PostgreSQL');
        await opts.postgres.kill();
        await sleep(4000);
        await opts.postgres.restart();
        res.window = { start, healed: Date.now(), failover: false, note: 'PostgreSQL SIGKILL, back after 4 s' };
      } else if (fault === 'instance-kill') {
        const victim = pick(instances);
        await victim.kill();
        await sleep(2000);
        await victim.start();
        res.window = { start, healed: Date.now(), failover: false, note: `instance ${victim.name} SIGKILL, restarted after 2 s` };
      } else {
        res.window = await topology.inject(fault);
      }
      log(`  fault ${res.window.note}: healed after ${res.window.healed - res.window.start} ms`);
      await readEverywhere(revoked.slice(), false);
      faultDone = true;
    })();
    const worker = async () => {
      while (Date.now() < stopAt || !faultDone) {
        const idle = users.filter((u) => !u.busy);
        if (idle.length === 0 || up().length === 0) { await sleep(20); continue; }
        const u = pick(idle);
        u.busy = true;
        try { await op(u); } finally { u.busy = false; }
      }
    };
    const prober = async () => {
      while (Date.now() < stopAt || !faultDone) {
        if (revoked.length === 0 || up().length === 0) { await sleep(50); continue; }
        const t = pick(revoked);
        const inst = pick(up());
        const x = await call(inst, 'GET', '/me', t.token);
        observe(t, inst, x.sent, x.status);
      }
    };
    await Promise.all([faultRun, ...Array.from({ length: opts.workers ?? 6 }, worker), prober(), prober()]);
    await topology.settle();
    const wait = lastAck + L1_TTL_MS + 500 - Date.now();
    log(`  ${res.operations} operations, ${res.acknowledged} acknowledged revocations; settling ${Math.max(0, wait)} ms past the L1 ttl`);
    if (wait > 0) await sleep(wait);
    await readEverywhere(all, true);
  } finally {
    await Promise.all(instances.map((i) => i.stop()));
  }
  res.seconds = Math.round((Date.now() - started) / 1000);
  // One entry per session and kind (the first read that showed it), however often it was read.
  const seen = new Set<string>();
  res.violations = res.violations.filter((v) => !seen.has(`${v.kind} ${v.session}`) && !!seen.add(`${v.kind} ${v.session}`));
  return res;
}
