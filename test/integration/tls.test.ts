// Redis over TLS: a throwaway CA and server certificate made with openssl at test time, private
// redis-servers that listen on TLS only (--port 0), ioredis clients with `tls: { ca }`. The
// package's subscriber is a duplicate of the app's client and must keep its TLS settings: the
// channel is confirmed and a revocation on one instance reaches the other. On a single server
// and on a 3-master cluster whose bus and client ports are TLS too.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Redis, Cluster } from 'ioredis';
import { RedisClass, ClusterClass, fastFail, freePort, ready, sleep } from '../fixtures/redis.js';
import { eachAdapter, makeApp, signIn, me, cacheTrusted, eventually, COOKIE } from '../fixtures/targets.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ts-tls-'));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function openssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, and a server certificate it signed for 127.0.0.1 and localhost. */
function makeCertificates(): { ca: Buffer } {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tiered-session test CA', '-keyout', 'ca.key', '-out',
    'ca.crt');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext',
    '-out', 'server.crt');
  return { ca: readFileSync(path.join(dir, 'ca.crt')) };
}

const TLS_ARGS = () => ['--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'),
  '--tls-ca-cert-file', path.join(dir, 'ca.crt'), '--tls-auth-clients', 'no'];

/** A redis-server listening on TLS only. */
async function startTlsServer(ca: Buffer, extra: string[] = []): Promise<number> {
  const port = await freePort(extra.includes('--cluster-enabled'));
  const nodeDir = mkdtempSync(path.join(dir, 'node-'));
  const p = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', nodeDir, ...TLS_ARGS(), ...extra], { stdio: 'ignore' });
  children.add(p);
  p.unref();
  for (const until = Date.now() + 10_000; ;) {
    const c = new RedisClass({ host: '127.0.0.1', port, tls: { ca }, lazyConnect: true, ...fastFail, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      return port;
    } catch (err) {
      c.disconnect();
      if (Date.now() > until) throw new Error(`TLS redis-server on ${port} did not start: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}

let ca: Buffer;
let single: number;
let clusterPorts: number[] | undefined;
let clusterWhyNot = '';
t.before(async () => {
  ({ ca } = makeCertificates());
  single = await startTlsServer(ca);
  try {
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      ports.push(await startTlsServer(ca, ['--cluster-enabled', 'yes', '--tls-cluster', 'yes', '--cluster-node-timeout', '5000',
        '--cluster-config-file', `nodes-${i}.conf`]));
    }
    const r = spawnSync('redis-cli',
      ['--tls', '--cacert', path.join(dir, 'ca.crt'), '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`redis-cli --cluster create: ${r.stdout}${r.stderr}`);
    for (const until = Date.now() + 20_000; ;) {
      const states = await Promise.all(ports.map(async (port) => {
        const c = new RedisClass({ host: '127.0.0.1', port, tls: { ca }, ...fastFail });
        c.on('error', () => {});
        try {
          await ready(c, 2000);
          return /cluster_state:ok/.test(String(await c.cluster('INFO')));
        } catch { return false; } finally { c.disconnect(); }
      }));
      if (states.every(Boolean)) break;
      if (Date.now() > until) throw new Error('the TLS cluster did not reach cluster_state:ok');
      await sleep(100);
    }
    clusterPorts = ports;
  } catch (err) {
    clusterWhyNot = (err as Error).message;
  }
});

function tlsClient(t: Test, kind: 'single' | 'cluster'): Redis | Cluster {
  const c = kind === 'single'
    ? new RedisClass({ host: '127.0.0.1', port: single, tls: { ca }, ...fastFail })
    : new ClusterClass(clusterPorts!.map((port) => ({ host: '127.0.0.1', port })), {
      redisOptions: { ...fastFail, tls: { ca } }, enableOfflineQueue: false,
    });
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}

for (const kind of ['single', 'cluster'] as const) {
  t.test(`over TLS (${kind === 'single' ? 'a single redis-server' : 'a 3-master cluster'}), the subscriber keeps TLS: the channel is ` +
    `confirmed and a revocation reaches the other instance`, async (t) => {
    if (kind === 'cluster' && clusterPorts === undefined) {
      t.fail(`the TLS cluster could not be set up: ${clusterWhyNot}`);
      return;
    }
    await eachAdapter(t, async (t) => {
      const keyPrefix = `tls${Math.random().toString(36).slice(2, 8)}:`;
      const clientA = tlsClient(t, kind);
      const clientB = tlsClient(t, kind);
      await ready(clientA);
      await ready(clientB);
      const a = await makeApp(t, clientA, { keyPrefix });
      const b = await makeApp(t, clientB, { keyPrefix });
      await cacheTrusted(a);
      await cacheTrusted(b);
      for (const app of [a, b]) t.equal(app.face.stats().channel, 'confirmed', 'the revocation channel is confirmed over TLS');

      const s = await signIn(a, 'tls-user');
      t.equal((await me(b, s.token)).statusCode, 200, 'B resolves the session');
      const hits = b.face.stats().l1Hits;
      t.equal((await me(b, s.token)).statusCode, 200);
      t.equal(b.face.stats().l1Hits, hits + 1, 'and serves it from its local cache');
      const received = b.face.stats().revocationsReceived;
      t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204, 'A signs it out');
      const after = await eventually(() => me(b, s.token), (r) => r.statusCode === 401, 2000);
      t.equal(after.statusCode, 401, 'B refuses it');
      t.ok(b.face.stats().revocationsReceived > received, 'having received the revocation over its TLS subscriber');
    });
  });
}
