// The planted bugs, one entry per mutant. Each is a realistic single-point bug in lib/:
// `find` must occur exactly once in `file` (run.mjs refuses to run otherwise), `replace` is what
// it becomes, and `tests` are the test files expected to kill it (run on both targets unless
// `env` narrows them). When lib/ moves, re-point `file` and, if the code changed, `find`.
//
// `--list` prints this table; `--only <id>[,<id>…]` runs some of it.

export const MUTANTS = [
  // ---- Lua scripts -------------------------------------------------------------------------
  {
    id: 'revoke-script-no-owner',
    description: 'The revoke script deletes without comparing the stored user with the owner it was given.',
    file: 'lib/store/scripts.ts',
    find: "if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'u') ~= ARGV[3] then return 0 end\n",
    replace: '',
    tests: ['test/routes.test.ts'],
  },
  {
    id: 'touch-recreates-missing-key',
    description: 'The touch script treats a missing session as one with no deadline and writes it back.',
    file: 'lib/store/scripts.ts',
    find: [
      'if not f[1] then return 0 end',
      '-- An older write arriving late never moves last-active (or the expiry) backwards.',
      'if tonumber(f[2]) >= now then return 0 end',
      'local exp = math.min(now + idle, tonumber(f[1]))',
    ].join('\n'),
    replace: [
      '-- An older write arriving late never moves last-active (or the expiry) backwards.',
      'if (tonumber(f[2]) or 0) >= now then return 0 end',
      'local exp = math.min(now + idle, tonumber(f[1]) or (now + idle))',
    ].join('\n'),
    tests: ['test/invariants.test.ts'],
  },
  {
    id: 'cap-evicts-most-recent',
    description: 'At the per-user cap the create script evicts the most recently active session.',
    file: 'lib/store/scripts.ts',
    find: 'table.sort(live, function(p, q) return p[2] < q[2] end)',
    replace: 'table.sort(live, function(p, q) return p[2] > q[2] end)',
    tests: ['test/routes.test.ts', 'test/coherence.test.ts'],
  },
  {
    id: 'revoke-all-no-publish',
    description: 'Log-out-everywhere deletes the sessions but publishes no revocation.',
    file: 'lib/store/scripts.ts',
    find: "if #revoked > 0 then redis.call('PUBLISH', ARGV[5], ARGV[6] .. '|' .. table.concat(revoked, ',')) end\n",
    replace: '',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'first-index-no-pexpire',
    description: "A user's first sign-in creates the index without a TTL.",
    file: 'lib/store/scripts.ts',
    find: "if card == 0 then redis.call('PEXPIRE', KEYS[2], ttl) else extend_index(KEYS[2], ttl) end",
    replace: 'if card ~= 0 then extend_index(KEYS[2], ttl) end',
    tests: ['test/lifecycle.test.ts', 'test/invariants.test.ts'],
  },
  {
    id: 'update-no-exists',
    description: 'The update script (data, rotation) writes to a session that no longer exists.',
    file: 'lib/store/scripts.ts',
    find: "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n",
    replace: '',
    tests: ['test/invariants.test.ts'],
  },

  // ---- the store's decoding and arguments -----------------------------------------------------
  {
    id: 'decode-accepts-longer-hash',
    description: 'decodeSession accepts a stored secret hash longer than 22 characters.',
    file: 'lib/store/redis-store.ts',
    find: 'if (!h.u || h.h?.length !== HASH_LENGTH || !h.x) return null;',
    replace: 'if (!h.u || (h.h?.length ?? 0) < HASH_LENGTH || !h.x) return null;',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'keep-id-tag-not-stripped',
    description: 'Log-out-everywhere with keepCurrent passes the kept public id with its tag, so nothing is kept.',
    file: 'lib/store/redis-store.ts',
    find: 'const keep = keepPublicId && keepPublicId.startsWith(tag) ? keepPublicId.slice(TAG_LENGTH) : \'\';',
    replace: 'const keep = keepPublicId && keepPublicId.startsWith(tag) ? keepPublicId : \'\';',
    tests: ['test/routes.test.ts'],
  },

  // ---- the manager: L1 ---------------------------------------------------------------------------
  {
    id: 'l1-any-secret',
    description: 'An L1 hit accepts any secret for a cached public id.',
    file: 'lib/manager.ts',
    find: '        if (!proven) return null;\n',
    replace: '',
    tests: ['test/bad-input.test.ts', 'test/coherence.test.ts'],
  },
  {
    id: 'l1-ignores-absolute-deadline',
    description: 'An L1 hit checks the idle deadline only, not the absolute one.',
    file: 'lib/manager.ts',
    find: 'if (since < this.#o.idleTimeout && now < e.session.absoluteExpiresAt) {',
    replace: 'if (since < this.#o.idleTimeout) {',
    tests: ['test/expiry.test.ts', 'test/invariants.test.ts'],
  },
  {
    id: 'touch-on-every-hit',
    description: 'Every L1 hit queues a last-active write, whatever the touchInterval.',
    file: 'lib/manager.ts',
    find: 'if (since >= this.#o.touchInterval) this.#queueTouch(e, now);',
    replace: 'this.#queueTouch(e, now);',
    tests: ['test/expiry.test.ts'],
  },
  {
    id: 'miss-fills-l1-untrusted',
    description: 'A Redis miss fills L1 while the revocation channel is not confirmed.',
    file: 'lib/manager.ts',
    find: 'if (f.valid && this.#l1 !== undefined && this.cacheTrusted) this.#l1.set(e.session.id, e);',
    replace: 'if (f.valid && this.#l1 !== undefined) this.#l1.set(e.session.id, e);',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'inflight-read-not-spoiled',
    description: 'An invalidation does not spoil a Redis read of the same id that is in flight.',
    file: 'lib/manager.ts',
    find: 'if (f !== undefined) { f.valid = false; this.#inflight.delete(id); }',
    replace: 'if (f !== undefined) { this.#inflight.delete(id); }',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'prewarm-ignores-spoiled',
    description: 'Pre-warm fills ids invalidated while its reads were in flight.',
    file: 'lib/manager.ts',
    find: 'if (s === null || spoiled.has(id) || now >= s.absoluteAt',
    replace: 'if (s === null || now >= s.absoluteAt',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'interrupt-keeps-l1',
    description: 'A channel interruption does not clear L1.',
    file: 'lib/manager.ts',
    find: 'onInterrupted: () => this.#clearL1(),',
    replace: 'onInterrupted: () => {},',
    tests: ['test/coherence.test.ts', 'test/faults.test.ts'],
  },
  {
    id: 'revoke-keeps-own-l1',
    description: 'revoke() does not drop the id from its own L1 (it waits for its own broadcast).',
    file: 'lib/manager.ts',
    find: '    this.invalidate([publicId]);\n    return ok;\n',
    replace: '    return ok;\n',
    tests: ['test/lifecycle.test.ts', 'test/routes.test.ts'],
  },

  // ---- the revocation channel --------------------------------------------------------------------
  {
    id: 'heartbeat-failure-no-interrupt',
    description: 'A missed heartbeat (#broken) reconnects the subscriber without calling the interrupt handler.',
    file: 'lib/store/channel.ts',
    find: '    this.#interrupt(reason);\n',
    replace: '',
    tests: ['test/coherence.test.ts'],
  },
  {
    id: 'heartbeat-failure-no-interrupt-single',
    description: 'The same bug, on the single-server target alone (the socket close used to hide it there).',
    file: 'lib/store/channel.ts',
    find: '    this.#interrupt(reason);\n',
    replace: '',
    tests: ['test/coherence.test.ts'],
    env: { TS_TARGETS: 'single' },
  },
  {
    id: 'any-heartbeat-confirms',
    description: "Any heartbeat on the channel confirms it, not only this subscriber's own current one.",
    file: 'lib/store/channel.ts',
    find: 'if (this.#pending && msg.endsWith(this.#pending.token)) this.#pending.resolve();',
    replace: 'if (this.#pending) this.#pending.resolve();',
    tests: ['test/coherence.test.ts'],
  },

  // ---- cookie, sign-in, routes, cross-site -----------------------------------------------------
  {
    id: 'duplicate-cookie-takes-first',
    description: 'A duplicated session cookie resolves to its first value instead of no session.',
    file: 'lib/token.ts',
    find: 'if (found !== undefined) return null;',
    replace: 'if (found !== undefined) return found;',
    tests: ['test/bad-input.test.ts'],
  },
  {
    id: 'signin-keeps-carried-session',
    description: 'Sign-in does not revoke the session the request carried (fixation).',
    file: 'lib/plugin.ts',
    find: '      await manager.revoke(carried.id);\n',
    replace: '',
    tests: ['test/lifecycle.test.ts'],
  },
  {
    id: 'cookie-without-httponly',
    description: 'The Set-Cookie line never carries HttpOnly.',
    file: 'lib/plugin.ts',
    find: "if (c.httpOnly) line += '; HttpOnly';",
    replace: '',
    tests: ['test/lifecycle.test.ts', 'test/options.test.ts'],
  },
  {
    id: 'delete-route-no-owner',
    description: 'DELETE /sessions/:id revokes without naming the owner.',
    file: 'lib/routes.ts',
    find: 'if (!(await manager.revoke(id, current.userId))) throw new ERR_NOT_FOUND();',
    replace: 'if (!(await manager.revoke(id))) throw new ERR_NOT_FOUND();',
    tests: ['test/routes.test.ts'],
  },
  {
    id: 'origin-null-accepted',
    description: '`Origin: null` passes the cross-site check.',
    file: 'lib/cross-site.ts',
    find: 'if (origin === undefined) return false;',
    replace: "if (origin === undefined || origin === 'null') return false;",
    tests: ['test/routes.test.ts'],
  },
  {
    id: 'sec-fetch-site-ignored',
    description: 'The `Sec-Fetch-Site: cross-site` check is removed.',
    file: 'lib/cross-site.ts',
    find: "  if (request.headers['sec-fetch-site'] === 'cross-site') return true;\n",
    replace: '',
    tests: ['test/routes.test.ts'],
  },
];
