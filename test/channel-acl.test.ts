// Redis ACLs. A user without pub/sub rights on the channel: the revocation channel is refused
// (one error line naming the fix, per state change, never per request), the subscriber backs
// off instead of reconnecting in a storm, the state shows in stats() and the Prometheus text,
// requests are served from Redis, and revocations still revoke. Then the minimal ACL the
// README gives: a user limited to the key prefix, the channel and the commands the package
// sends, under which the whole lifecycle works on a single server and on a cluster.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import { RedisServer, RedisClass, ClusterClass, fastFail, sleep } from './fixtures/redis.js';
import { eachAdapter, eachTarget, makeApp, signIn, me, tokenOf, cacheTrusted, eventually, COOKIE, type Target } from './fixtures/targets.js';

interface LogLine { level: string; msg: string }

/**
 * The ACL rules the README gives for a key prefix: its keys, its channel, and the commands the
 * package sends (the Lua scripts' own calls included). A cluster also needs CLUSTER SLOTS and
 * CLUSTER INFO (ioredis's slot map and ready check); ioredis's own connections send INFO (ready
 * check) and, on a cluster, CLIENT SETNAME: refusing those two works but fills the ACL log.
 */
export function aclRules(prefix: string, cluster: boolean): string[] {
  return [
    'resetkeys', `~${prefix}*`, 'resetchannels', `&${prefix}revoked`, '-@all',
    '+evalsha', '+eval', '+hgetall', '+hset', '+hget', '+hmget', '+hdel', '+del', '+exists', '+pexpire', '+pttl',
    '+zadd', '+zcard', '+zrange', '+zrangebyscore', '+zrem', '+zrevrange', '+zremrangebyrank',
    '+publish', '+subscribe', '+ping', '+info',
    ...(cluster ? ['+cluster|slots', '+cluster|info', '+client|setname'] : []),
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

t.test('a Redis user without pub/sub rights: the channel is refused once, backs off, shows in the metrics, and sign-in, /me and every revocation still work from Redis', async (t) => {
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

    t.equal((await eventually(async () => app.face.stats().channel, (s) => s === 'refused', 3000)), 'refused', 'stats().channel is "refused"');
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
    t.equal(lines.filter((l) => l.level === 'info' && /revocation channel confirmed/.test(l.msg)).length, 1, 'one info line for the confirmation');
    t.equal(channelErrors().length, 1, 'and no further error line');
    const e = await signIn(app, 'erin');
    t.equal((await me(app, e.token)).statusCode, 200);
    t.equal((await me(app, e.token)).statusCode, 200);
    t.ok(app.face.stats().l1Hits >= 1, 'the local cache serves again');
  });
});
