// A revocation the user was told about survives a failover that lost it. Redis replication is
// asynchronous and WAIT does not make it consistent: a primary can have a revocation confirmed by
// one replica and then be replaced by another replica that never received it (under Sentinel, a
// primary stalled past the failover that comes back, takes writes, and is demoted). The instance
// that answered the revocation applies it again when its connection is interrupted, so the
// session stays signed out on the new primary. Clients with the options the README shows.
import t from 'tap';
import net from 'node:net';
import type { Test } from 'tap';
import { keepingAlive, withAdmin } from '../fixtures/replicas.js';
import { primaryWithTwoReplicas, readmeClient } from '../fixtures/two-replicas.js';
import { eachAdapter, makeApp, signIn, me, eventually, cacheTrusted, tokenOf, COOKIE } from '../fixtures/targets.js';

const prefixes = (() => { let n = 0; return () => `rp${process.pid}x${n++}:`; })();

/**
 * The address the app's client knows: a TCP forwarder whose target a "failover" moves. While
 * held it refuses new connections (the ones open stay); `cut` also closes the open ones.
 */
async function frontDoor(t: Test, port: number) {
  const sockets = new Set<net.Socket>();
  const door = {
    target: port, port: 0, held: false,
    hold() { door.held = true; },
    cut() { door.held = true; for (const s of sockets) s.destroy(); },
    move(to: number) { door.target = to; door.held = false; for (const s of sockets) s.destroy(); },
  };
  const server = net.createServer((c) => {
    if (door.held) { c.destroy(); return; }
    const up = net.connect(door.target, '127.0.0.1');
    for (const s of [c, up]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    c.pipe(up).pipe(c);
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  door.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  return door;
}



t.test('a sign-out confirmed by one replica stays signed out after a failover to a replica that never received it', async (t) => {
  await eachAdapter(t, async (t) => {
    const { primary, r2, link } = await primaryWithTwoReplicas(t);
    const door = await frontDoor(t, primary.port);

    const keyPrefix = prefixes();
    const a = await makeApp(t, readmeClient(t, door.port), { keyPrefix });
    await cacheTrusted(a);
    const s = await signIn(a, 'erin');
    const other = await signIn(a, 'frank');
    // Both replicas hold both sessions (a write of its own: WAIT counts its connection's writes;
    // a replica's first acknowledgement after its sync can take most of a second), then R2 stops
    // receiving anything.
    await withAdmin(primary.port, async (r) => { await r.set(`${keyPrefix}warm`, '1', 'PX', 10_000); await r.wait(2, 5000); }, 6000);
    link.pause();
    t.teardown(() => link.resume());
    // The instance's subscriber is down (closed, and kept from reconnecting): it does not hear
    // its own sign-out's broadcast, so what it keeps is what it answered.
    door.hold();
    await withAdmin(primary.port, (r) => r.client('KILL', 'TYPE', 'pubsub'));
    const out = await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } });
    t.equal(out.statusCode, 204, `signed out, confirmed by R1 (${out.statusCode} ${out.body})`);
    t.equal((await me(a, s.token)).statusCode, 401, 'refused at once');

    // The failover: R2 (which never got the sign-out) becomes the primary the app reaches.
    await withAdmin(r2.port, (r) => r.replicaof('NO', 'ONE'));
    t.equal(await withAdmin(r2.port, (r) => r.exists(a.sessions.store.sessionKey(s.id))), 1,
      'the new primary holds the signed-out session');
    door.move(r2.port);
    await keepingAlive(primary.stop());

    // The first answer from the new primary already refuses it: the instance knows what it
    // revoked, whether or not the replay has run yet.
    const first = await eventually(async () => (await me(a, s.token)).statusCode, (c) => c !== 503, 8000);
    t.equal(first, 401, 'the signed-out token is refused by the first answer after the failover');
    const status = await eventually(async () => (await me(a, s.token)).statusCode, (c) => c === 401, 8000);
    t.equal(status, 401, 'the signed-out token is refused on the new primary');
    const exists = () => withAdmin(r2.port, (r) => r.exists(a.sessions.store.sessionKey(s.id)));
    t.equal(await eventually(exists, (n) => n === 0, 8000), 0, 'the sign-out was applied again there');
    t.equal((await me(a, other.token)).statusCode, 200, 'a session nobody ended is untouched');
  });
});

t.test('a rotation confirmed by one replica stays in force after a failover to a replica that never received it', async (t) => {
  await eachAdapter(t, async (t) => {
    const { primary, r2, link } = await primaryWithTwoReplicas(t);
    const door = await frontDoor(t, primary.port);

    const keyPrefix = prefixes();
    const a = await makeApp(t, readmeClient(t, door.port), { keyPrefix });
    await cacheTrusted(a);
    const s = await signIn(a, 'grace');
    await withAdmin(primary.port, async (r) => { await r.set(`${keyPrefix}warm`, '1', 'PX', 10_000); await r.wait(2, 5000); }, 6000);
    link.pause();
    t.teardown(() => link.resume());
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s.token } });
    t.equal(rot.statusCode, 200, `rotated, confirmed by R1 (${rot.statusCode} ${rot.body})`);
    const rotated = tokenOf(rot) ?? '';
    t.not(rotated, '', 'a new token');
    t.equal((await me(a, s.token)).statusCode, 401, 'the old token is refused at once');
    const key = a.sessions.store.sessionKey(s.id);
    const newHash = await withAdmin(primary.port, (r) => r.hget(key, 'h'));

    await withAdmin(r2.port, (r) => r.replicaof('NO', 'ONE'));
    t.not(await withAdmin(r2.port, (r) => r.hget(key, 'h')), newHash, 'the new primary holds the old secret');
    door.move(r2.port);
    await keepingAlive(primary.stop());

    const first = await eventually(async () => (await me(a, s.token)).statusCode, (c) => c !== 503, 8000);
    t.equal(first, 401, 'the old token is refused by the first answer after the failover');
    const fresh = await eventually(async () => (await me(a, rotated)).statusCode, (c) => c === 200, 8000);
    t.equal(fresh, 200, 'the new token works again: the rotation was applied again on the new primary');
    t.equal(await withAdmin(r2.port, (r) => r.hget(key, 'h')), newHash, 'the new primary holds the new secret');
    t.equal((await me(a, s.token)).statusCode, 401, 'and the old token stays refused');
  });
});

t.test('a replayed rotation never overwrites a later one', async (t) => {
  await eachAdapter(t, async (t) => {
    const { primary } = await primaryWithTwoReplicas(t);
    const keyPrefix = prefixes();
    const door = await frontDoor(t, primary.port);
    const a = await makeApp(t, readmeClient(t, door.port), { keyPrefix });
    const b = await makeApp(t, readmeClient(t, primary.port), { keyPrefix });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const s = await signIn(a, 'heidi');
    // Both replicas acknowledge before the rotations (a replica's first acknowledgement after its
    // sync can take most of a second, longer than the default WAIT).
    await withAdmin(primary.port, async (r) => { await r.set(`${keyPrefix}warm`, '1', 'PX', 10_000); await r.wait(2, 5000); }, 6000);
    const first = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s.token } });
    t.equal(first.statusCode, 200, `rotated on A (${first.statusCode} ${first.body})`);
    // A is cut off from Redis (its client and its subscriber), so it does not hear B's rotation
    // and still holds its own to apply again.
    door.cut();
    const second = await b.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: tokenOf(first) ?? '' } });
    t.equal(second.statusCode, 200, 'rotated again on B');
    const latest = tokenOf(second) ?? '';
    // A reconnects: it applies its rotation again, which must find B's later one.
    door.move(primary.port);
    await new Promise((r) => setTimeout(r, 1500));
    t.equal((await eventually(async () => (await me(a, latest)).statusCode, (c) => c !== 503, 8000)), 200, 'the latest token works on A');
    t.equal((await me(b, latest)).statusCode, 200, 'and on B');
    t.equal((await me(a, tokenOf(first) ?? '')).statusCode, 401, 'the token A made is still refused');
  });
});

t.test('an instance that heard a revocation or a rotation refuses what a failover lost, without the instance that made it', async (t) => {
  await eachAdapter(t, async (t) => {
    const { primary, r2, link } = await primaryWithTwoReplicas(t);
    // A never reaches the new primary (it cannot apply anything again); B follows the failover.
    const doorA = await frontDoor(t, primary.port);
    const doorB = await frontDoor(t, primary.port);
    const keyPrefix = prefixes();
    const a = await makeApp(t, readmeClient(t, doorA.port), { keyPrefix });
    const b = await makeApp(t, readmeClient(t, doorB.port), { keyPrefix });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const s = await signIn(a, 'ivan');
    const r = await signIn(a, 'judy');
    await withAdmin(primary.port, async (x) => { await x.set(`${keyPrefix}warm`, '1', 'PX', 10_000); await x.wait(2, 5000); }, 6000);
    link.pause();
    t.teardown(() => link.resume());
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204, 'signed out on A');
    t.equal((await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: r.token } })).statusCode, 200, 'rotated on A');
    t.equal(await eventually(async () => (await me(b, s.token)).statusCode, (c) => c === 401, 2000), 401, 'B refuses the signed-out token');
    t.equal((await me(b, r.token)).statusCode, 401, 'and the rotated-away one');

    await withAdmin(r2.port, (x) => x.replicaof('NO', 'ONE'));
    doorB.move(r2.port);
    await keepingAlive(primary.stop());

    const first = await eventually(async () => (await me(b, s.token)).statusCode, (c) => c !== 503, 8000);
    t.equal(first, 401, 'B refuses the signed-out token the new primary still holds');
    t.equal((await me(b, r.token)).statusCode, 401, 'and the token the lost rotation ended');
    const exists = () => withAdmin(r2.port, (x) => x.exists(b.sessions.store.sessionKey(s.id)));
    t.equal(await eventually(exists, (n) => n === 0, 8000), 0, 'B applied the revocation again');
  });
});
