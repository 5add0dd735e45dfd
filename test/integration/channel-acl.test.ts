// Redis ACLs. A user without pub/sub rights on the channel: the revocation channel is refused
// (one error line naming the fix, per state change, never per request), the subscriber backs
// off instead of reconnecting in a storm, the state shows in stats() and the Prometheus text,
// requests are served from Redis, and revocations still revoke. Then the minimal ACL the
// README gives: a user limited to the key prefix, the channel and the commands the package
// sends, under which the whole lifecycle works on a single server and on a cluster.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import { RedisServer, RedisClass, ClusterClass, fastFail, sleep } from '../fixtures/redis.js';
import { eachAdapter, eachTarget, makeApp, signIn, me, tokenOf, cacheTrusted, eventually, COOKIE,
  type Target } from '../fixtures/targets.js';

interface LogLine { level: string; msg: string }

/**
 * The ACL rules the README gives for a key prefix: its keys, its channel, and the commands the
 * package sends (the Lua scripts' own calls included). A cluster also needs CLUSTER SLOTS and
 * CLUSTER INFO (ioredis's slot map and ready check); ioredis's own connections send INFO (ready
 * check) and, on a cluster, CLIENT SETNAME: refusing those two works but fills the ACL log.
 * confirmRevocations 'auto' reads replication with INFO (single) and CLUSTER NODES (cluster):
 * refused, it cannot rule replicas out and every revocation waits for one (503 without replicas).
 */
export function aclRules(prefix: string, cluster: boolean): string[] {
  return [
    'resetkeys', `~${prefix}*`, 'resetchannels', `&${prefix}revoked`, '-@all',
    '+evalsha', '+eval', '+hgetall', '+hset', '+hget', '+hmget', '+hdel', '+del', '+exists', '+pexpire', '+pttl',
    '+zadd', '+zcard', '+zrange', '+zrangebyscore', '+zrem', '+zrevrange', '+zremrangebyrank', '+zscore',
    // A cap eviction keeps what it removed beside the new session (undone with the sign-in if
    // that timed out): DUMP and RPUSH there, LRANGE and RESTORE in the undo.
    '+dump', '+rpush', '+lrange', '+restore',
    '+publish', '+subscribe', '+ping', '+info',
    ...(cluster ? ['+cluster|slots', '+cluster|info', '+cluster|nodes', '+client|setname'] : []),
  ];
}

const newPrefix = () => `t${randomBytes(4).toString('hex')}:`;

async function connectionsReceived(admin: Redis): Promise<number> {
  return Number(/total_connections_received:(\d+)/.exec(await admin.info('stats'))![1]);
}

/** ACL LOG entries of `user` (denied commands, keys or channels), as "reason:object". */
async function denials(admins: Redis[], user: string): Promise<string[]> {
  const out: string[] = [];
  for (const a of admins) {
    for (const e of (await a.acl('LOG')) as unknown[][]) {
      const o: Record<string, unknown> = {};
      for (let i = 0; i + 1 < e.length; i += 2) o[String(e[i])] = e[i + 1];
      if (o.username === user) out.push(`${String(o.reason)}:${String(o.object)}`);
    }
  }
  return out;
}

let server: RedisServer | undefined;
t.before(async () => { server = await RedisServer.start(); });
// The fixture kills its redis-server when this process exits.

t.test('a Redis user without pub/sub rights: the channel is refused once, backs off, shows in the metrics, and sign-in, /me and every ' +
  'revocation still work from Redis', async (t) => {
  await eachAdapter(t, async (t) => {
    const admin = server!.admin();
    t.teardown(() => admin.disconnect());
    const keyPrefix = newPrefix();
    const user = `np${randomBytes(3).toString('hex')}`;
    // Every command and the prefix's keys, but no channel (Redis 7's default for a new user).
    await admin.acl('SETUSER', user, 'on', '>pw', `~${keyPrefix}*`, 'resetchannels', '+@all');
    const client = server!.client({ username: user, password: 'pw' });
    t.teardown(() => client.disconnect());
    const lines: LogLine[] = [];
    const app = await makeApp(t, client, { keyPrefix, maxSessionsPerUser: 2 }, { logs: lines });
    const channelErrors = () => lines.filter((l) => l.level === 'error' && /revocation channel/.test(l.msg));

    t.equal((await eventually(async () => app.face.stats().channel, (s) => s === 'refused', 3000)), 'refused',
      'stats().channel is "refused"');
    t.match(app.face.prometheus(), /^tiered_session_channel_state\{state="refused"\} 1$/m, 'the Prometheus gauge says refused');
    t.match(app.face.prometheus(), /^tiered_session_channel_state\{state="confirmed"\} 0$/m);

    // The subscriber retries with a growing delay: a handful of connections, not a storm.
    const before = await connectionsReceived(admin);
    await sleep(3000);
    const made = await connectionsReceived(admin) - before;
    t.ok(made >= 1 && made <= 8, `${made} connections in 3 s while refused (a handful: it still retries, with backoff)`);

    const errs = channelErrors();
    t.equal(errs.length, 1, `one error line for the refusal: ${JSON.stringify(errs.map((l) => l.msg))}`);
    t.match(errs[0]?.msg, new RegExp(`&${keyPrefix}revoked`), 'naming the channel the ACL must allow');
    t.match(errs[0]?.msg, /\+subscribe/);
    t.match(errs[0]?.msg, /\+publish/);

    // Requests work, from Redis (the local cache is off while the channel is not proven).
    const a = await signIn(app, 'alice');
    for (let i = 0; i < 5; i++) t.equal((await me(app, a.token)).statusCode, 200, `/me ${i + 1} answers 200`);
    t.equal(app.face.stats().l1Hits, 0, 'nothing was served from the local cache');
    t.ok(app.face.stats().redisReads >= 5, 'every /me read Redis');

    // Revocations: each script publishes after it deletes, and Redis refuses that PUBLISH after
    // the delete has happened (a script is not rolled back). The revocation did happen, and no
    // instance of this user can be caching (its channel is refused too): answer as revoked.
    const b = await signIn(app, 'alice');
    const rot = await app.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: b.token } });
    t.equal(rot.statusCode, 200, `rotation answers 200 (${rot.body})`);
    const rotated = tokenOf(rot);
    t.equal((await me(app, b.token)).statusCode, 401, 'the old token is refused');
    t.equal((await me(app, rotated ?? b.token)).statusCode, 200, 'the new token works');
    const up = await app.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: rotated ?? b.token }, payload: { data: { n: 2 } } });
    t.equal(up.statusCode, 200, `updateSession answers 200 (${up.body})`);
    // alice has a and b; a third sign-in evicts the least recently active one (the cap is 2).
    const c = await signIn(app, 'alice');
    t.equal((await app.face.list('alice')).length, 2, 'the cap evicted one session');
    const everywhere = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: c.token } });
    t.equal(everywhere.statusCode, 200, `logout-everywhere answers 200 (${everywhere.body})`);
    t.same(everywhere.json(), { revoked: 2 }, 'and counts what it revoked');
    for (const s of [a, c]) t.equal((await me(app, s.token)).statusCode, 401, 'every session of the user is refused');
    t.same(await app.face.list('alice'), [], 'none is listed');
    const d = await signIn(app, 'dora');
    t.equal((await app.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: d.token } })).statusCode, 204, 'sign-out answers 204');
    t.equal((await me(app, d.token)).statusCode, 401);
    t.equal(channelErrors().length, 1, 'still one error line after all those requests');

    // Granting the channel ends the refusal without a restart: one info line, no new error.
    await admin.acl('SETUSER', user, `&${keyPrefix}revoked`);
    await cacheTrusted(app, 15_000);
    t.equal(app.face.stats().channel, 'confirmed', 'once the ACL allows the channel it is confirmed');
    t.match(app.face.prometheus(), /^tiered_session_channel_state\{state="confirmed"\} 1$/m);
    t.equal(lines.filter((l) => l.level === 'info' && /revocation channel confirmed/.test(l.msg)).length, 1,
      'one info line for the confirmation');
    t.equal(channelErrors().length, 1, 'and no further error line');
    const e = await signIn(app, 'erin');
    t.equal((await me(app, e.token)).statusCode, 200);
    t.equal((await me(app, e.token)).statusCode, 200);
    t.ok(app.face.stats().l1Hits >= 1, 'the local cache serves again');
  });
});

/** A client of `target` that authenticates as `user`. */
function clientAs(t: Test, target: Target, user: string): Redis | Cluster {
  const auth = { username: user, password: 'pw' };
  const c = target.name === 'single'
    ? new RedisClass({ host: '127.0.0.1', port: target.server!.port, ...fastFail, ...auth })
    : new ClusterClass(target.cluster!.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
      redisOptions: { ...fastFail, ...auth }, enableOfflineQueue: false,
    });
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}

t.test('with the minimal ACL (the key prefix, its channel, the listed commands) the whole lifecycle works and Redis denies nothing',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const user = `app${randomBytes(3).toString('hex')}`;
    const admins = target.admins();
    for (const a of admins) await a.acl('SETUSER', user, 'on', '>pw', ...aclRules(keyPrefix, target.name === 'cluster'));
    const options = { keyPrefix, maxSessionsPerUser: 2, touchInterval: 0, prewarm: 100 };
    const a = await makeApp(t, clientAs(t, target, user), options);
    const b = await makeApp(t, clientAs(t, target, user), options);
    await cacheTrusted(a);
    await cacheTrusted(b);
    t.equal(a.face.stats().channel, 'confirmed', 'the channel is confirmed');

    const s1 = await signIn(a, 'alice');
    const s2 = await signIn(a, 'alice', { role: 'member' });
    for (const s of [s1, s2]) t.equal((await me(b, s.token)).statusCode, 200, 'the other instance resolves (and caches) the session');
    await a.sessions.flushTouches();
    await b.sessions.flushTouches();
    const s3 = await signIn(a, 'alice');
    t.equal((await a.face.list('alice')).length, 2, 'the cap evicted one session');

    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s3.token } });
    t.equal(rot.statusCode, 200, 'rotate');
    const s3new = tokenOf(rot)!;
    t.equal((await eventually(() => me(b, s3.token), (r) => r.statusCode === 401)).statusCode, 401,
      'the old token is refused on the other instance');
    t.equal((await me(b, s3new)).statusCode, 200, 'the new one works there');
    const up = await a.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: s3new }, payload: { data: {} } });
    t.same([up.statusCode, up.json().data], [200, {}], 'updateSession (emptying the data)');

    const list = await a.inject({ url: '/sessions', cookies: { [COOKIE]: s3new } });
    t.equal(list.statusCode, 200, 'the device list');
    const other = (list.json().sessions as { id: string; current: boolean }[]).find((x) => !x.current)!;
    t.equal((await a.inject({ method: 'DELETE', url: `/sessions/${other.id}`, cookies: { [COOKIE]: s3new } })).statusCode, 204,
      'revoke one device');

    const bob1 = await signIn(b, 'bob');
    const bob2 = await signIn(b, 'bob');
    t.equal((await me(a, bob1.token)).statusCode, 200);
    const all = await a.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: bob2.token } });
    t.same([all.statusCode, all.json()], [200, { revoked: 2 }], 'log out everywhere');
    for (const s of [bob1, bob2]) {
      t.equal((await eventually(() => me(b, s.token), (r) => r.statusCode === 401)).statusCode, 401,
        'bob is signed out on the other instance');
    }
    t.equal(await a.face.revokeAll('alice'), 1, 'revokeAll from outside a request');
    t.equal(await a.face.healthy(), true, 'healthy() (PING)');

    const c = await signIn(a, 'carol');
    t.equal((await me(a, c.token)).statusCode, 200);
    await a.sessions.flushTouches();
    const warm = await makeApp(t, clientAs(t, target, user), options);
    const filled = await eventually(async () => warm.face.stats().l1Size, (n) => n >= 1, 5000);
    t.ok(filled >= 1, `pre-warm filled the local cache of a new instance (${filled})`);
    t.equal((await me(warm, c.token)).statusCode, 200);

    for (const app of [a, b, warm]) t.equal(app.face.stats().redisErrors, 0, 'no Redis call failed');
    t.same(await denials(admins, user), [], 'the ACL log holds no denial for the package\'s user');
  });
});
