// Bad input: malformed, oversized, duplicated and forged cookies; tokens offered anywhere but the
// cookie; a flood of random well-formed tokens; hostile JSON bodies on the plugin's routes.
// Every answer is a 4xx, never a 500, and a value that cannot be a token never reaches Redis.
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { eachTarget, makeApp, tokenOf, cacheTrusted, type Target } from '../fixtures/targets.js';
import type { TestApp } from '../fixtures/targets.js';
import { parseDevice } from '../../lib/index.js';

/** Run `fn` on the single-server target only. */
const onSingle = (t: Test, fn: (t: Test, target: Target) => Promise<void>) => eachTarget(t, fn, { only: ['single'] });

const COOKIE = '__Host-sid';
const B64URL = /^[A-Za-z0-9_-]+$/;


/** A forced full GC, so heap measurements mean something. */
function gcFn(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** A random token of exactly the real shape: 38 base64url chars, '.', 43 base64url chars. */
function randomToken(): string {
  return `${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`;
}

const me = (app: TestApp, cookie: string, extra: Record<string, string> = {}) =>
  app.inject({ url: '/me', headers: { cookie, ...extra } });

interface Signed { token: string; id: string; secret: string }

async function signIn(app: TestApp, user: string): Promise<Signed> {
  const r = await app.inject({ method: 'POST', url: '/login', payload: { user } });
  if (r.statusCode !== 200) throw new Error(`login ${user}: ${r.statusCode} ${r.body}`);
  const token = tokenOf(r)!;
  return { token, id: r.json().id as string, secret: token.slice(token.indexOf('.') + 1) };
}

t.test('a real token has the documented shape, and the plugin takes a random token of that shape for a well-formed one (the tables below ' +
  'are built on both)', async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const { token, id, secret } = await signIn(app, 'shape');
    t.equal(id.length, 38, 'public id: 38 characters');
    t.equal(secret.length, 43, 'secret: 43 characters');
    t.equal(token, `${id}.${secret}`);
    t.match(id, B64URL);
    t.match(secret, B64URL);
    // The flood below is only a test of the Redis path if the plugin takes the generator's
    // tokens for well-formed ones: one Redis read each (a malformed value costs none).
    const reads = app.sessions.stats().redisReads;
    const r = await me(app, `${COOKIE}=${randomToken()}`);
    t.equal(r.statusCode, 401, 'a generated token is no session');
    t.equal(app.sessions.stats().redisReads, reads + 1, 'and the plugin took it for a well-formed token: it read Redis once');
  });
});

t.test('malformed, oversized and duplicated session cookies mean "no session" (401), never a 500 and never a Redis read', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    await cacheTrusted(app);
    const real = await signIn(app, 'victim');
    const other = await signIn(app, 'other');
    const T = real.token;
    const c = (v: string) => `${COOKIE}=${v}`;
    // Replace the character at `i` (negative from the end) with `ch`, keeping the length.
    const swap = (s: string, i: number, ch: string) => { const k = i < 0 ? s.length + i : i; return s.slice(0, k) + ch + s.slice(k + 1); };
    const cases: [string, string][] = [
      ['an empty value', c('')],
      ['a lone dot', c('.')],
      ['"a." (an id without a secret)', c('a.')],
      ['".b" (a secret without an id)', c('.b')],
      ['"a.b.c" (three parts)', c('a.b.c')],
      ['1,000 dots', c('.'.repeat(1000))],
      ['a token-length value of non-base64url characters', c(`${'+'.repeat(38)}.${'/'.repeat(43)}`)],
      ['the real token with a "+" in its id', c(swap(T, 5, '+'))],
      ['the real token with a "/" in its secret', c(swap(T, -5, '/'))],
      ['the real token with "=" padding in place of its last character', c(swap(T, -1, '='))],
      ['the real token with its dot moved one place left', c(`${real.id.slice(0, -1)}.${real.id.slice(-1)}${real.secret}`)],
      ['the real token with its dot replaced by a letter', c(swap(T, 38, 'A'))],
      ['"%00"', c('%00')],
      ['the real token with "%00" in place of its last three characters', c(T.slice(0, -3) + '%00')],
      ['the real token with a percent-encoded dot', c(`${real.id}%2E${real.secret}`)],
      ['the real token in double quotes', c(`"${T}"`)],
      ['the real token with a non-ASCII last character', c(swap(T, -1, 'é'))],
      ['a 3 KB value', c('a'.repeat(3072))],
      ['a 3 KB value that starts with the real token', c(T + 'A'.repeat(3072 - T.length))],
      ['"__proto__.x"', c('__proto__.x')],
      ['the real id with a secret one character short', c(`${real.id}.${real.secret.slice(0, -1)}`)],
      ['the real id with a secret one character long', c(`${T}A`)],
      ['the real id with no secret at all', c(`${real.id}.`)],
      ['the real id alone', c(real.id)],
      ['the real token twice', `${c(T)}; ${c(T)}`],
      ['the real token twice without a space', `${c(T)};${c(T)}`],
      ['the real token and then a forged one', `${c(T)}; ${c(randomToken())}`],
      ['a forged token and then the real one', `${c(randomToken())}; ${c(T)}`],
      ['two different real tokens', `${c(T)}; ${c(other.token)}`],
      ['the real token and an empty session cookie', `${c(T)}; ${c('')}`],
      ['the real token under the cookie name in lower case', `__host-sid=${T}`],
      ['the real token under a longer cookie name', `${COOKIE}x=${T}`],
      ['the real token under a shorter cookie name', `__Host-si=${T}`],
      ['the real token with a space before "="', `${COOKIE} =${T}`],
    ];
    for (const [what, header] of cases) {
      const before = await target.commandCalls('hgetall');
      const r = await me(app, header);
      const pub = await app.inject({ url: '/public', headers: { cookie: header } });
      const after = await target.commandCalls('hgetall');
      t.equal(r.statusCode, 401, `${what}: /me answers 401`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_NO_SESSION', `${what}: with the no-session code`);
      t.same([pub.statusCode, pub.json()], [200, { signedIn: false }], `${what}: /public sees no session`);
      t.equal(after - before, 0, `${what}: no Redis read`);
    }
    t.equal((await me(app, c(T))).statusCode, 200, 'the real token itself still works (the cases above were refused for their form)');
  });
});

t.test('well-formed but forged tokens are refused with 401 after at most one Redis read, with or without the local cache', async (t) => {
  await onSingle(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const cached = await makeApp(t, target.client(), { keyPrefix });
    const uncached = await makeApp(t, target.client(), { keyPrefix, localCache: false });
    await cacheTrusted(cached);
    const real = await signIn(cached, 'victim');
    const other = await signIn(cached, 'other');
    t.equal((await me(cached, `${COOKIE}=${real.token}`)).statusCode, 200, 'the real token works on the cached app');
    t.equal((await me(uncached, `${COOKIE}=${real.token}`)).statusCode, 200, 'and on the uncached one');
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const cases: [string, string][] = [
      ['the real id with a random secret', `${real.id}.${randomBytes(32).toString('base64url')}`],
      ['the real id with its secret\'s first character changed', `${real.id}.${flip(real.secret)}`],
      ['the real id with another user\'s secret', `${real.id}.${other.secret}`],
      ['another user\'s id with the real secret', `${other.id}.${real.secret}`],
      ['the real user tag with another session\'s random part', `${real.id.slice(0, 22)}${other.id.slice(22)}.${real.secret}`],
      ['a random token', randomToken()],
      ['"__proto__" padded to the token shape (well-formed base64url)', `__proto__${'_'.repeat(29)}.${'x'.repeat(43)}`],
      ['"constructor" padded to the token shape', `constructor${'A'.repeat(27)}.${'A'.repeat(43)}`],
    ];
    for (const app of [cached, uncached]) {
      const which = app === cached ? 'cached' : 'uncached';
      for (const [what, token] of cases) {
        const before = await target.commandCalls('hgetall');
        const r = await me(app, `${COOKIE}=${token}`);
        const reads = await target.commandCalls('hgetall') - before;
        t.equal(r.statusCode, 401, `${which} app, ${what}: 401`);
        t.ok(reads <= 1, `${which} app, ${what}: at most one Redis read (${reads})`);
      }
    }
    const before = await target.commandCalls('hgetall');
    await me(uncached, `${COOKIE}=${randomToken()}`);
    t.equal(await target.commandCalls('hgetall') - before, 1,
      'control: an unknown well-formed token is looked up in Redis (the counter works)');
    t.equal((await me(cached, `${COOKIE}=${real.token}`)).statusCode, 200, 'the real session is unharmed');
  });
});

t.test('the session cookie is found among other cookies', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const { token } = await signIn(app, 'among');
    const many = Array.from({ length: 50 }, (_, i) => `c${i}=${randomBytes(8).toString('hex')}`).join('; ');
    const cases: [string, string][] = [
      ['between two others', `a=1; ${COOKIE}=${token}; b=2`],
      ['between two others, without spaces', `a=1;${COOKIE}=${token};b=2`],
      ['first', `${COOKIE}=${token}; theme=dark`],
      ['last, after 50 others', `${many}; ${COOKIE}=${token}`],
      ['next to cookies whose names contain its own', `x${COOKIE}=junk; ${COOKIE}x=junk; ${COOKIE}=${token}; __Host-si=junk`],
      ['next to an empty cookie and a quoted one', `empty=; q="v"; ${COOKIE}=${token}`],
      ['with a trailing space', `${COOKIE}=${token} `],
    ];
    for (const [what, header] of cases) {
      const r = await me(app, header);
      t.equal(r.statusCode, 200, `${what}: 200`);
      t.equal(r.json().userId, 'among', `${what}: the right user`);
    }
  });
});

t.test('a user id, data and user agent holding \'|\' (the create script joins its own fields with it) come back as given, ' +
  'with every joined field in use (a device type\'s cap, known devices)', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), {
      keyPrefix: target.prefix(), localCache: false, knownDevices: true, maxSessionsPerUser: { total: 3, mobile: 1 },
    });
    const user = '|a||b|';
    const data = { note: '|x|y|', list: ['|', '||'] };
    // A mobile user agent (the type has a cap) with '|' where a parser keeps what it finds.
    const ua = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 ' +
      'Mobile/15E148 Safari/604.1 |x|';
    const signIn = async (device = '') => {
      const r = await app.inject({ method: 'POST', url: '/login', payload: { user, data },
        headers: { 'user-agent': ua, ...(device ? { cookie: device } : {}) } });
      t.equal(r.statusCode, 200, 'signed in');
      const set = ([] as string[]).concat(r.headers['set-cookie'] as string[]);
      return { token: tokenOf(r)!, id: r.json().id as string, device: set.find((l) => !l.startsWith(`${COOKIE}=`))!.split(';')[0] };
    };
    const first = await signIn();
    // Read back from Redis (no local cache): what the script wrote.
    const m = await me(app, `${COOKIE}=${first.token}`);
    t.same(m.json(), { id: first.id, userId: user, data }, 'the user id and the data, as given');
    const rows = (await app.inject({ url: '/sessions', headers: { cookie: `${COOKIE}=${first.token}` } })).json().sessions;
    t.same(rows.map((r: { id: string; device: unknown; newDevice: boolean }) => [r.id, r.device, r.newDevice]),
      [[first.id, parseDevice(ua, 512), true]], 'the device as parsed, the first sign-in from it: new');
    const second = await signIn(first.device);
    t.equal((await me(app, `${COOKIE}=${first.token}`)).statusCode, 401, 'the mobile cap (1) evicted the first');
    const again = (await app.inject({ url: '/sessions', headers: { cookie: `${COOKIE}=${second.token}` } })).json().sessions;
    t.same(again.map((r: { id: string; newDevice: boolean }) => [r.id, r.newDevice]), [[second.id, false]],
      'one session left, from a device now known (the device cookie came back)');
  });
});

t.test('a token offered anywhere but the session cookie is ignored', async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const { token } = await signIn(app, 'elsewhere');
    for (const q of [COOKIE, 'sid', 'token', 'session', 'access_token']) {
      const r = await app.inject({ url: `/me?${q}=${encodeURIComponent(token)}` });
      t.equal(r.statusCode, 401, `in the query string as "${q}": 401`);
    }
    for (const [name, value] of [
      ['authorization', `Bearer ${token}`], ['authorization', token], ['authorization', `${COOKIE}=${token}`],
      ['x-session-token', token], ['x-session-id', token], ['cookie2', `${COOKIE}=${token}`], ['set-cookie', `${COOKIE}=${token}`],
    ]) {
      const r = await app.inject({ url: '/me', headers: { [name]: value } });
      t.equal(r.statusCode, 401, `in a "${name}" header: 401`);
    }
    for (const body of [{ [COOKIE]: token }, { token }, { sid: token }, { session: token }, { cookie: `${COOKIE}=${token}` }]) {
      const r = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', payload: body });
      t.equal(r.statusCode, 401, `in a JSON body ${JSON.stringify(Object.keys(body))}: 401`);
    }
    const r = await app.inject({ method: 'POST', url: `/sessions/logout-everywhere?${COOKIE}=${token}` });
    t.equal(r.statusCode, 401, 'in the query string of the log-out-everywhere route: 401');
    t.equal((await me(app, `${COOKIE}=${token}`)).statusCode, 200, 'and the session was not revoked by any of them');
  });
});

t.test('10,000 random well-formed tokens: all 401, no key created, bounded memory, at most one Redis command each', async (t) => {
  await onSingle(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix });
    await cacheTrusted(app);
    const gc = gcFn();
    const N = 10_000;
    const CONCURRENCY = 50;
    const statuses = new Map<number, number>();
    const run = async (n: number) => {
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) {
          next++;
          const r = await me(app, `${COOKIE}=${randomToken()}`);
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        }
      }));
    };
    await run(200); // warm up (JIT, connection, schema compilation)
    statuses.clear();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const commandsBefore = await target.totalCommands();
    const missesBefore = app.sessions.stats().l1Misses;
    const started = Date.now();
    await run(N);
    const took = Date.now() - started;
    const commands = await target.totalCommands() - commandsBefore;
    gc();
    const grew = process.memoryUsage().heapUsed - heapBefore;
    t.same(Object.fromEntries(statuses), { 401: N }, `all ${N} answered 401 (in ${took} ms)`);
    t.equal(app.sessions.stats().l1Misses - missesBefore, N, 'each was a local-cache miss');
    t.equal(app.sessions.stats().l1Size, 0, 'none was put in the local cache');
    // Heartbeats (one PUBLISH a second) and the INFO calls of this test add a few.
    t.ok(commands <= N + 100, `${commands} Redis commands for ${N} tokens: no retries or amplification`);
    t.same(await target.keys(keyPrefix), [], 'no key was created under the prefix');
    t.ok(grew < 20 * 1024 * 1024, `heapUsed grew by ${(grew / 1048576).toFixed(1)} MB (< 20 MB)`);
  });
});

t.test('hostile JSON bodies on POST /sessions/logout-everywhere answer 400, pollute nothing and revoke nothing', async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const mine = await signIn(app, 'proto');
    const second = await signIn(app, 'proto');
    const cookies = { [COOKIE]: mine.token };
    const post = (payload: string, contentType = 'application/json') => app.inject({
      method: 'POST', url: '/sessions/logout-everywhere', cookies, headers: { 'content-type': contentType }, payload,
    });
    const pollution: string[] = [
      '{"__proto__":{"polluted":"yes"}}',
      '{"keepCurrent":true,"__proto__":{"polluted":"yes"}}',
      '{"keepCurrent":{"__proto__":{"polluted":"yes"}}}',
      '{"constructor":{"prototype":{"polluted":"yes"}}}',
      '{"keepCurrent":false,"constructor":{"prototype":{"polluted":"yes"}}}',
      '[{"__proto__":{"polluted":"yes"}}]',
      '{"a":{"b":{"__proto__":{"polluted":"yes"}}}}',
    ];
    for (const body of pollution) {
      const r = await post(body);
      t.equal(r.statusCode, 400, `${body}: 400`);
    }
    const plain = {} as Record<string, unknown>;
    t.equal(plain.polluted, undefined, '({}).polluted is undefined');
    t.equal((Object.prototype as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');

    const shapes: [string, string][] = [
      ['[]', 'an array'], ['"everything"', 'a string'], ['5', 'a number'], ['true', 'a boolean'],
      ['{"keepCurrent":"yes"}', 'keepCurrent as a string'], ['{"keepCurrent":1}', 'keepCurrent as a number'],
      ['{"keepCurrent":null}', 'keepCurrent null'], ['{"keepCurrent":[true]}', 'keepCurrent as an array'],
    ];
    for (const [body, what] of shapes) {
      const r = await post(body);
      t.equal(r.statusCode, 400, `${what} (${body}): 400`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_BAD_BODY', `${what}: with the bad-body code`);
    }
    for (const [body, type, what] of [
      ['{', 'application/json', 'truncated JSON'],
      ['{"keepCurrent":tru}', 'application/json', 'invalid JSON'],
      ['keepCurrent=true', 'application/x-www-form-urlencoded', 'a form body'],
      ['x'.repeat(2 * 1024 * 1024), 'application/json', 'a 2 MB body'],
    ]) {
      const r = await post(body, type);
      t.ok(r.statusCode >= 400 && r.statusCode < 500, `${what}: a 4xx (${r.statusCode})`);
    }
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'the caller is still signed in: nothing was revoked');
    t.equal((await app.inject({ url: '/me', cookies: { [COOKIE]: second.token } })).statusCode, 200, 'and so is the other device');
    t.equal((await app.sessions.list('proto')).length, 2, 'both sessions are listed');
  });
});

t.test('malformed and foreign ids on DELETE /sessions/:id answer a 4xx (404 for a well-formed id), never a 500, and never reach Redis',
  async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const mine = await signIn(app, 'deleter');
    const theirs = await signIn(app, 'someone-else');
    const cookies = { [COOKIE]: mine.token };
    const ids: [string, string][] = [
      ['__proto__', '"__proto__"'],
      ['constructor', '"constructor"'],
      ['%00', 'a NUL byte'],
      ['..%2F..%2Fetc', 'an encoded path'],
      [encodeURIComponent(mine.token), 'my own token instead of an id'],
      [`${mine.id}x`, 'my id plus one character'],
      [mine.id.slice(0, -1), 'my id minus one character'],
      ['*', 'a glob'],
      ['A'.repeat(300), 'a 300-character id'],
      [theirs.id, 'another user\'s real id'],
      [`${mine.id.slice(0, 22)}${'A'.repeat(16)}`, 'an unknown id under my own tag'],
    ];
    for (const [id, what] of ids) {
      const scripts = (await target.commandCalls('evalsha')) + (await target.commandCalls('eval'));
      const r = await app.inject({ method: 'DELETE', url: `/sessions/${id}`, cookies });
      const after = (await target.commandCalls('evalsha')) + (await target.commandCalls('eval'));
      t.ok(r.statusCode >= 400 && r.statusCode < 500, `${what}: a 4xx (${r.statusCode})`);
      if (r.statusCode !== 414) t.equal(r.json().statusCode, r.statusCode, `${what}: a JSON error body`);
      if (/^[A-Za-z0-9_-]{38}$/.test(id)) t.equal(r.statusCode, 404, `${what}: 404, like any unknown id`);
      if (what !== 'an unknown id under my own tag') t.equal(after - scripts, 0, `${what}: no Redis script ran`);
    }
    t.equal((await app.inject({ url: '/me', cookies: { [COOKIE]: theirs.token } })).statusCode, 200, 'the other user\'s session survived');
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'and mine');
  });
});
