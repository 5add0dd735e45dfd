// The public surface at run time: `app.sessions` on Fastify and the Express middleware object
// carry exactly the documented members and nothing of the machinery behind them; the package
// root exports exactly the shared parts. (The built package is checked by package.test.ts, the
// types by types.test.ts.)
import t from 'tap';
import * as root from '../../lib/index.js';
import { eachTarget, makeApp } from '../fixtures/targets.js';

const SESSIONS = ['events', 'healthy', 'history', 'list', 'prometheus', 'revoke', 'revokeAll', 'revokeEveryone', 'stats'];
const EXPRESS_ONLY = ['close', 'ready', 'refuseCrossSite', 'requireRecentAuthentication', 'requireSession', 'routes'];
/** Members of the manager (and the adapters' internals) that must not be reachable. */
const INTERNAL = [
  'store', 'resolve', 'create', 'invalidate', 'start', 'close', 'localCache', 'cacheTrusted', 'flushTouches', 'metrics',
  'tagOf', 'rotate', 'update', 'manager', 'flows', 'options', 'client', 'secret', 'channel', 'signIn', 'signOut',
];

t.test('app.sessions (Fastify) and the Express middleware expose exactly the documented members and nothing internal', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const face = app.face as unknown as Record<string | symbol, unknown>;
    const express = app.adapter !== 'fastify';
    const documented = express ? [...SESSIONS, ...EXPRESS_ONLY].sort() : SESSIONS;
    t.same(Object.keys(face).sort(), documented, `its own enumerable members are exactly ${documented.join(', ')}`);
    for (const k of documented) {
      t.equal(typeof face[k], k === 'events' ? 'object' : 'function', `${k} is ${k === 'events' ? 'an object' : 'a function'}`);
    }
    const events = face.events as Record<string, unknown>;
    t.same(Object.getOwnPropertyNames(events).sort(), ['off', 'on', 'parked', 'replay', 'stats'], 'events: exactly its documented methods');
    t.ok(Object.isFrozen(events) && Object.getPrototypeOf(events) === Object.prototype, 'events: a frozen plain object');
    t.same(Object.getOwnPropertySymbols(face), [], 'no symbol-keyed member');
    const hidden = INTERNAL.filter((k) => !(express && EXPRESS_ONLY.includes(k)) && k in face);
    t.same(hidden, [], 'no internal member is reachable, own or inherited');
    if (express) {
      t.same(Object.getOwnPropertyNames(face).filter((k) => !documented.includes(k)).sort(), ['length', 'name', 'prototype'],
        'beyond them only what every function declaration has');
      t.equal(Object.getPrototypeOf(face), Function.prototype, 'a plain function (the middleware)');
    } else {
      t.same(Object.getOwnPropertyNames(face).sort(), SESSIONS, 'no hidden own member either');
      t.equal(Object.getPrototypeOf(face), Object.prototype, 'a plain object');
      t.ok(Object.isFrozen(face), 'frozen: nothing can be added or replaced');
    }
    // The members work without their object (bound, not prototype methods).
    const { stats, list } = app.face;
    t.equal(typeof stats().l1Hits, 'number', 'stats() works detached');
    t.same(await list('nobody'), [], 'list() works detached');
  });
});

t.test('the package root exports exactly TieredSessionError, errors, migrateAuditTable, parseDevice and registerPromClient', async (t) => {
  t.same(Object.keys(root).sort(), ['TieredSessionError', 'errors', 'migrateAuditTable', 'parseDevice', 'registerPromClient']);
  t.equal(typeof root.parseDevice, 'function');
  t.ok(new root.errors.ERR_NO_SESSION() instanceof root.TieredSessionError, 'the error classes share the exported base class');
});
