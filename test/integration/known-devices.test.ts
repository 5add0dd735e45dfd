// New-device detection (option `knownDevices`): the signed device cookie every sign-in sets, the
// user's bounded set of known devices that the create script checks and updates, `newDevice` on
// the session (from Redis and from the L1 alike) and in the device list, the audit event's flag,
// known devices across a secret rotation, and the option off. Every adapter, both Redis targets.
import t from 'tap';
import type { Response as InjectResponse } from 'light-my-request';
import { PostgresServer } from '../fixtures/postgres.js';
import { TEST_SECRET } from '../fixtures/apps.js';
import { until } from '../fixtures/audit-events.js';
import { knownDevicesKey } from '../../lib/core/store/keys.js';
import {
  eachTarget, makeApp, cacheTrusted, inspector, tokenOf, COOKIE, TAG_LENGTH, type TestApp,
} from '../fixtures/targets.js';

const DEVICE = `${COOKIE}.device`;
const HOUR = 3600_000;
const SHAPE = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;

/** The Set-Cookie lines of a response. */
const lines = (res: InjectResponse) => ([] as string[]).concat((res.headers['set-cookie'] as string | string[] | undefined) ?? []);

interface SignedIn { id: string; token: string; newDevice: boolean; device: string | undefined; res: InjectResponse }

/**
 * POST /login-raw (the app answers the whole signed-in session) as `user`, carrying `device` as
 * the device cookie when given (and any `cookie` header verbatim).
 */
async function login(app: TestApp, user: string, device?: string, cookie?: string): Promise<SignedIn> {
  const res = await app.inject({
    method: 'POST', url: '/login-raw', payload: { user },
    headers: cookie !== undefined ? { cookie } : device !== undefined ? { cookie: `${DEVICE}=${device}` } : {},
  });
  const token = tokenOf(res);
  if (res.statusCode !== 200 || token === undefined) throw new Error(`login ${user}: ${res.statusCode} ${res.body}`);
  return { id: res.json().id, token, newDevice: res.json().newDevice, device: tokenOf(res, DEVICE), res };
}

const meRaw = async (app: TestApp, token: string) => (await app.inject({ url: '/me-raw', cookies: { [COOKIE]: token } })).json();
const listed = async (app: TestApp, token: string) =>
  (await app.inject({ url: '/sessions', cookies: { [COOKIE]: token } })).json().sessions as { id: string; newDevice: boolean }[];

t.test('the first sign-in from a device is new, a sign-in with the device cookie it was given is not; the session says so from Redis and ' +
  'from the L1, and the device list per device', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const options = { keyPrefix, knownDevices: { max: 5, ttl: 2 * HOUR } };
    const app = await makeApp(t, target.client(), options);
    const noL1 = await makeApp(t, target.client(), { ...options, localCache: false });
    await cacheTrusted(app);

    const first = await login(app, 'dora');
    t.equal(first.newDevice, true, 'the first sign-in: a new device');
    const set = lines(first.res);
    t.equal(set.length, 2, 'two cookies: the session\'s, then the device\'s');
    t.ok(set[0].startsWith(`${COOKIE}=`), 'the session cookie first');
    t.match(set[1], new RegExp(`^${DEVICE.replace('.', '\\.')}=[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}; Max-Age=7200; Path=/; HttpOnly; ` +
      'Secure; SameSite=Lax$'), 'the device cookie: signed, Max-Age the ttl in seconds, Path=/, HttpOnly, Secure, SameSite=Lax, no Domain');
    t.notMatch(first.res.body, first.device!.slice(0, 22), 'the device id is not in the body');
    const hits = app.sessions.stats().l1Hits;
    t.equal((await meRaw(app, first.token)).newDevice, true, 'the L1 says newDevice');
    t.equal(app.sessions.stats().l1Hits, hits + 1, '(an L1 hit)');
    t.equal((await meRaw(noL1, first.token)).newDevice, true, 'and so does Redis');

    const second = await login(app, 'dora', first.device);
    t.equal(second.newDevice, false, 'again with the device cookie: a known device');
    t.equal(second.device!.slice(0, 22), first.device!.slice(0, 22), 'the same device id, its cookie set again');
    t.equal((await meRaw(app, second.token)).newDevice, false, 'the L1 says known');
    t.equal((await meRaw(noL1, second.token)).newDevice, false, 'Redis too');
    app.sessions.localCache.clear();
    t.equal((await meRaw(app, first.token)).newDevice, true, 'the first session still says new when read again from Redis');

    const list = new Map((await listed(app, second.token)).map((s) => [s.id, s.newDevice]));
    t.same([list.get(first.id), list.get(second.id)], [true, false], 'GET /sessions: newDevice per device');
    t.same(new Map((await listed(noL1, first.token)).map((s) => [s.id, s.newDevice])), list, 'the same from the other instance');

    // Another user on the same browser: the device is new to them.
    t.equal((await login(app, 'eli', first.device)).newDevice, true, 'known to one user is new to another');

    // At rest: the set holds a hash of the device id, never the id, with a TTL.
    const insp = await inspector(target);
    const key = app.sessions.store.knownDevicesKey(first.id.slice(0, TAG_LENGTH));
    const members = await insp.zrange(key, 0, -1);
    t.equal(members.length, 1, 'one device known for dora');
    t.equal(members[0].length, 22, 'a 22-character hash');
    t.not(members[0], first.device!.slice(0, 22), 'not the id itself');
    const pttl = await insp.pttl(key);
    t.ok(pttl > 2 * HOUR - 60_000 && pttl <= 2 * HOUR, `the set expires with the ttl (${pttl} ms)`);
    const keys = await target.keys(keyPrefix);
    t.notOk(keys.some((k) => k.includes(first.device!.slice(0, 22))), 'no key names the device id');
  });
});

t.test('a missing, malformed, tampered, foreign or duplicated device cookie is a new device and gets a fresh valid cookie, never an error',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true });
    const other = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true,
      secret: `${TEST_SECRET}-another-one` });
    const good = (await login(app, 'fay')).device!;
    t.equal((await login(app, 'fay', good)).newDevice, false, 'the genuine cookie is known');
    const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
    const foreign = (await login(other, 'fay')).device!;
    const cases: [string, string][] = [
      ['the signature tampered with', flip(good, 40)],
      ['the id tampered with', flip(good, 3)],
      ['a cookie signed with another secret', foreign],
      ['no signature', good.slice(0, 22)],
      ['too long', `${good}A`],
      ['not base64url', `${good.slice(0, 22)}.${'!'.repeat(43)}`],
      ['empty', ''],
    ];
    for (const [what, value] of cases) {
      const s = await login(app, 'fay', value);
      t.equal(s.newDevice, true, `${what}: a new device`);
      t.match(s.device, SHAPE, `${what}: a fresh device cookie`);
      t.not(s.device!.slice(0, 22), good.slice(0, 22), `${what}: with a fresh id`);
      t.notMatch(s.res.body, s.device!.slice(0, 22), `${what}: the new id is not in the body`);
    }
    const dup = await login(app, 'fay', undefined, `${DEVICE}=${good}; ${DEVICE}=${good}`);
    t.equal(dup.newDevice, true, 'a duplicated device cookie is ambiguous: a new device');
    const unset = await login(app, 'fay');
    t.equal(unset.newDevice, true, 'no device cookie: a new device');
    t.equal((await login(app, 'fay', unset.device)).newDevice, false, 'whose fresh cookie is known from then on');
  });
});

t.test('the set of known devices keeps the newest `max`, each for `ttl` after its last sign-in', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), now: () => clock,
      knownDevices: { max: 3, ttl: HOUR } });
    const insp = await inspector(target);
    const devices: string[] = [];
    let id = '';
    for (let i = 0; i < 5; i++) {
      clock += 1000;
      const s = await login(app, 'gus');
      devices.push(s.device!);
      id = s.id;
    }
    const key = app.sessions.store.knownDevicesKey(id.slice(0, TAG_LENGTH));
    t.equal(await insp.zcard(key), 3, 'five devices signed in, three kept');
    clock += 1000;
    t.equal((await login(app, 'gus', devices[4])).newDevice, false, 'the newest is known');
    t.equal((await login(app, 'gus', devices[2])).newDevice, false, 'so is the third newest');
    t.equal((await login(app, 'gus', devices[0])).newDevice, true, 'the oldest was dropped: new again');
    t.equal(await insp.zcard(key), 3, 'still three');
    // devices[1] was trimmed too; devices[4] signed in a second ago: past the ttl since, it is new.
    clock += HOUR + 1000;
    t.equal((await login(app, 'gus', devices[4])).newDevice, true, 'past the ttl since its last sign-in: new again');
    t.equal(await insp.zcard(key), 1, 'the members past the ttl are gone');
    t.ok(await insp.pttl(key) > 0, 'the set always has a TTL');
  });
});

t.test('with knownDevices off: no device cookie, no set, newDevice false everywhere', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix });
    const on = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true });
    const known = (await login(on, 'hal')).device!;
    for (const device of [undefined, known]) {
      const s = await login(app, 'hal', device);
      t.equal(s.newDevice, false, 'newDevice is false');
      t.same(lines(s.res).map((l) => l.slice(0, l.indexOf('='))), [COOKIE], 'the session cookie alone');
      t.equal((await meRaw(app, s.token)).newDevice, false);
      t.ok((await listed(app, s.token)).every((x) => x.newDevice === false), 'the device list says false');
    }
    const keys = await target.keys(keyPrefix);
    // (A session key may start `{bucket}k` too: the known-devices key is the one the store names.)
    t.notOk(keys.includes(knownDevicesKey(keyPrefix, app.sessions.tagOf('hal'))), `no known-devices key (${keys.length} keys)`);
    // The option off costs the create script nothing: the off app's sessions carry no `v`.
    const insp = await inspector(target);
    const s = await login(app, 'hal');
    t.equal(await insp.hget(app.sessions.store.sessionKey(s.id), 'v'), null, 'no v field');
  });
});

t.test('a device known under a rotated secret stays known, and its cookie is signed again with the new secret', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const old = await makeApp(t, target.client(), { keyPrefix, knownDevices: true });
    const before = await login(old, 'ivy');
    const NEW = `${TEST_SECRET}-rotated-in`;
    const rotated = await makeApp(t, target.client(), { keyPrefix, knownDevices: true, secret: [NEW, TEST_SECRET] });
    const after = await login(rotated, 'ivy', before.device);
    t.not(after.id.slice(0, TAG_LENGTH), before.id.slice(0, TAG_LENGTH), 'the new session has the new secret\'s tag');
    t.equal(after.newDevice, false, 'the device is known (under the older tag)');
    t.equal(after.device!.slice(0, 22), before.device!.slice(0, 22), 'the same device id');
    t.not(after.device, before.device, 'signed again, with the new secret');
    const only = await makeApp(t, target.client(), { keyPrefix, knownDevices: true, secret: NEW });
    t.equal((await login(only, 'ivy', after.device)).newDevice, false, 'the new cookie is known once the old secret is retired');
    t.equal((await login(only, 'ivy', before.device)).newDevice, true, 'the old cookie, signed by a retired secret, is not');
    t.equal((await login(rotated, 'ivy')).newDevice, true, 'and a device never seen is new during the rotation too');
  });
});

t.test('the audit event of a sign-in carries v=1 from a new device, nothing from a known one', async (t) => {
  const db = await PostgresServer.start();
  t.teardown(() => db.stop());
  const pool = db.pool({ max: 2 });
  await eachTarget(t, async (t, target) => {
    const schema = await db.freshSchema();
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true,
      audit: { pool, schema, consume: false } });
    const first = await login(app, 'jo');
    const second = await login(app, 'jo', first.device);
    const insp = await inspector(target);
    const entries = await insp.xrange(app.sessions.store.auditStream(first.id), '-', '+');
    const created = new Map(entries.map(([, f]) => f).filter((f) => f[1] === 'c').map((f) => {
      const o: Record<string, string> = {};
      for (let i = 0; i + 1 < f.length; i += 2) o[f[i]] = f[i + 1];
      return [o.s, o];
    }));
    t.equal(created.get(first.id)?.v, '1', 'the first sign-in\'s event: v=1');
    t.ok(created.has(second.id), 'the second sign-in has its event');
    t.equal(created.get(second.id)?.v, undefined, 'without v');
  }, { adapters: ['fastify'] });
});

t.test('a legacy takeover sets the device cookie and records the device without marking it new', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true,
      legacy: { cookie: 'old.sid', userId: () => 'lee', end: () => {} } });
    const res = await app.inject({ url: '/me-raw', headers: { cookie: 'old.sid=s%3Aanything' } });
    t.equal(res.statusCode, 200, 'the old cookie is taken over');
    t.equal(res.json().newDevice, false, 'the browser signed in before the cutover: not a new device');
    const device = tokenOf(res, DEVICE);
    t.match(device, SHAPE, 'and it gets a device cookie');
    t.equal((await login(app, 'lee', device)).newDevice, false, 'the device is known from then on');
    t.equal((await login(app, 'lee')).newDevice, true, 'another is new');
  }, { only: ['single'] });
});

t.test('the created event says newDevice as the session does, on both instances of the feed', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), knownDevices: true, events: { pollInterval: 20 } });
    const created = new Map<string, boolean>();
    app.face.events.on('created', (e) => { created.set(e.sessionId, e.newDevice); });
    const first = await login(app, 'gil');
    const second = await login(app, 'gil', first.device);
    await until('two created events', () => created.size === 2);
    t.same([created.get(first.id), created.get(second.id)], [true, false], 'new, then known');
  }, { adapters: ['fastify'] });
});
