// Lua scripts: every multi-key operation is one script over the keys of one user, which share a
// hash tag, so each runs atomically on a single Redis and on Redis Cluster alike.
//
// Layout (a user's tag is <bucket><user>; base = `<prefix>{<bucket>}<user>`):
//   <base><random>             hash   one session: u user id, h sha256(secret) (22 chars),
//                                     c created, a last active, x absolute deadline, d device
//                                     (name, browser, os, type joined by \x1f), i ip, k country,
//                                     j data JSON, r '0' when not remembered, t last
//                                     authentication (absent: the sign-in, c), n rotations
//                                     (absent: none), v '1' when signed in from a device
//                                     the user had not signed in from (knownDevices); with audit on: l activity last told
//                                     to the audit
//   <prefix>{<bucket>}o        stream the audit trail's buffer for the bucket's users
//   <prefix>{<bucket>}u<user>  zset   the user's index: member <random>, score = that
//                                     session's expiry
//   <prefix>{<bucket>}k<user>  zset   the user's known devices (knownDevices): member the
//                                     hash of a device id, score its last sign-in
//   <base><random>z            list   a sign-in's undo stash: what its cap eviction removed,
//                                     until the sign-in is acknowledged or undone (CREATE)
// The bucket is the hash tag: every key of one user is in one slot.
// The key's own TTL is the session's current expiry, min(a + idleTimeout, x), as the instance
// that last wrote it computed; nothing else stores it. Every field and key name is short on
// purpose: a session is a small listpack, and a few bytes move it across an allocator class.
// Times are epoch milliseconds passed in by the caller (scripts stay deterministic).
// A revocation is published from the same script that deletes, as `<sentAt>|<id>,<id>…`, so
// no crash or timeout can separate the delete from its broadcast. What the change was rides
// after the time: `<sentAt>!` sessions ended (a sign-out, revoke one, log out everywhere, a cap
// eviction), `<sentAt>r<n>` the session's nth rotation, `<sentAt>+` sessions a timed-out
// sign-in's undo brought back from its cap eviction; unmarked, anything else (an update, a
// confirmation). A reader that knows no marker reads a time that is not a number, and still
// drops the ids. The PUBLISH is a pcall: a
// Redis user refused the channel by its ACL would otherwise fail the script after its writes
// (scripts are not rolled back), answering 503 for a change that was made. Such a user's
// channel is refused too, so its local cache is off and nothing needs the broadcast.

/**
 * The Lua pattern that splits one argument of `n` fields joined by '|' (string.match answers the
 * fields, '' for an empty one). The JS side joins only what cannot hold a '|'.
 */
const joined = (n: number): string => `'^${'([^|]*)|'.repeat(n - 1)}([^|]*)$'`;

/**
 * Shared helper: the audit trail's durable buffer and the event feed's. Every script takes one
 * trailing argument, four fields joined by '|' (key names and numbers: none holds one): the event
 * stream of the user's bucket (`<prefix>{<bucket>}v`, '' = events off), the audit stream of the
 * bucket (`<prefix>{<bucket>}o`, '' = audit off), their length cap, and their TTL. Both are in the
 * user's slot, so an event is written atomically with its change.
 * A stream and its consumer group (`audit`, `events`) are created together; the TTL is refreshed
 * on each append, so no key lacks one. One group per stream: each consumer deletes what it has
 * handled, and turning one off never strands entries the other has not read.
 * Events: `t` type (c created, a activity, r rotated, q re-authenticated, u updated, e ended),
 * `s` public id, `u` user id, `w` when, and per type: c `d` device `i` ip `k` country `x` absolute
 * deadline `p` expiry `m` '0' when not remembered `v` '1' from a new device; a `a` last active
 * `p` expiry; r and q `n` rotation count; e `y` reason. The audit hears c, a, r, e; the feed
 * every type but a (activity), and `expired` ends from its sweep.
 * With the feed on, `<prefix>{<bucket>}x` schedules every live session's expiry (member: public
 * id then user id, score: expiry), so the sweep can tell of a session that expired, whose hash
 * and index are gone by then.
 */
const AUDIT = `
local E_STREAM, A_STREAM, A_CAP, A_TTL = string.match(ARGV[#ARGV], ${joined(4)})
local E_SCHED = E_STREAM == '' and '' or string.sub(E_STREAM, 1, -2) .. 'x'
local function append(stream, group, ...)
  if redis.call('EXISTS', stream) == 0 then redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM') end
  redis.call('XADD', stream, 'MAXLEN', '~', A_CAP, '*', ...)
  redis.call('PEXPIRE', stream, A_TTL)
end
-- After a revocation is made: under maxmemory with noeviction the append may be refused, and a
-- revocation must still happen (it frees memory); its event is then lost (README: audit).
local function append_after(stream, group, ...)
  redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  if redis.pcall('XADD', stream, 'MAXLEN', '~', A_CAP, '*', ...) then redis.pcall('PEXPIRE', stream, A_TTL) end
end
-- To the audit and the feed.
local function audit(...)
  if A_STREAM ~= '' then append(A_STREAM, 'audit', ...) end
  if E_STREAM ~= '' then append(E_STREAM, 'events', ...) end
end
local function audit_after(...)
  if A_STREAM ~= '' then append_after(A_STREAM, 'audit', ...) end
  if E_STREAM ~= '' then append_after(E_STREAM, 'events', ...) end
end
-- To the feed alone.
local function event_after(...)
  if E_STREAM ~= '' then append_after(E_STREAM, 'events', ...) end
end
-- The feed's expiry schedule: a session's expiry (it outlives the session by a day, for the sweep).
local function schedule(id, user, exp, ttl)
  if E_SCHED == '' then return end
  redis.pcall('ZADD', E_SCHED, exp, id .. user)
  local cur = redis.call('PTTL', E_SCHED)
  if cur < ttl + 86400000 then redis.pcall('PEXPIRE', E_SCHED, ttl + 86400000) end
end
local function unschedule(id, user)
  if E_SCHED ~= '' and user then redis.call('ZREM', E_SCHED, id .. user) end
end
local function ms(v) return string.format('%.0f', math.floor(tonumber(v))) end
`;

/**
 * Shared helper: drop the undo stashes of the user's sessions. A sign-in that timed out keeps
 * what its cap eviction removed in a stash (its session key + 'z') so its undo can put it back;
 * a revocation made in between (one, everywhere, a later cap eviction) must not be undone by
 * that undo, so every revocation drops the stashes of every session in the index (the sign-in
 * whose undo is pending is one of them). Deletes only: nothing maxmemory could refuse.
 */
const DROP_STASHES = `
local function drop_stashes(idx, base)
  for _, id in ipairs(redis.call('ZRANGE', idx, 0, -1)) do redis.call('DEL', base .. id .. 'z') end
end
`;

/** Shared helper: stretch the index TTL to cover `ttl` ms (never shorten it, never leave it unset). */
const EXTEND_INDEX = `
-- Drop index members whose session is gone. Expiry scores only pick the candidates: the
-- caller's clock may run ahead of the instance that last touched a session, so a member
-- leaves the index only when its hash no longer exists (a live session is always indexed).
local function prune_index(idx, base, now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', now)) do
    if redis.call('EXISTS', base .. id) == 0 then redis.call('ZREM', idx, id) end
  end
end

local function extend_index(idx, ttl)
  local cur = redis.call('PTTL', idx)
  -- PTTL is -1 for a key without TTL and -2 for none: both are below any positive ttl.
  if cur < ttl then redis.call('PEXPIRE', idx, ttl) end
end
`;

/**
 * create: KEYS[1] session, KEYS[2] index, KEYS[3] the user's known devices.
 * ARGV[1]: what the package makes, joined by '|' (none of it can hold one: numbers, base64url,
 * key names of [A-Za-z0-9_:.{}-], device types of [a-z0-9-]): random, now, ttl, total cap (0 =
 * none), the new session's device type's cap (0 = none), that type ('' when uncapped), channel,
 * tag, base, secret hash, absolute deadline, remembered ('0' = not, '' = yes), the cap policy
 * ('refuse', or '' to evict), then the known devices: the device's member (the hash of its id;
 * '' = knownDevices off, KEYS[3] untouched), how many the set keeps, its TTL (ms), '1' when the
 * device is known already (under an older secret's tag, or a takeover) or ''.
 * ARGV[2..6]: what the app gives, each an argument of its own (any character): user id, device,
 * ip, country, data ('' = field absent). Then the audit and event argument.
 * One joined argument instead of sixteen: the client encodes each argument on its own, about
 * 0.3 µs apiece, the most of a sign-in's own CPU after its HMAC (benchmarks/README.md).
 * The field names live here, not on the wire.
 * Returns { new device ('1' | '0'), the public ids evicted by the caps… }, or -1 when the policy
 * refuses a sign-in at a cap (nothing written). A new device is one not in the set within its
 * TTL: the session gets `v` '1' and its audit event `v` '1'; the set then holds the device
 * (score now), trimmed to the newest, with its TTL. An undone create (UNCREATE) leaves the
 * device known: its sign-in did reach the password check.
 */
export const CREATE = `${EXTEND_INDEX}${DROP_STASHES}${AUDIT}
local rnd, now_s, ttl_s, max_s, tcap_s, ttype, channel, tag, base, hash, absat, rem, policy, dev, dev_max, dev_ttl, dev_known =
  string.match(ARGV[1], ${joined(17)})
local now, ttl, max, tcap = tonumber(now_s), tonumber(ttl_s), tonumber(max_s), tonumber(tcap_s)
local user, device, ip, country, data = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local exp = now + ttl
-- Refused at a cap: counted before anything is written, the live sessions only.
if policy == 'refuse' then
  local card = redis.call('ZCARD', KEYS[2])
  if (max > 0 and card >= max) or (tcap > 0 and card >= tcap) then
    local n, nt = 0, 0
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local d = redis.call('HGET', base .. id, 'd')
      if d then
        n = n + 1
        if tcap > 0 and string.match(d, '[^\\31]*$') == ttype then nt = nt + 1 end
      end
    end
    if (max > 0 and n >= max) or (tcap > 0 and nt >= tcap) then return -1 end
  end
end
-- Known devices: members last seen longer than the TTL ago are forgotten first.
local newdev = {}
if dev ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(dev_ttl))
  if dev_known ~= '1' and not redis.call('ZSCORE', KEYS[3], dev) then newdev = { 'v', '1' } end
end
local f = { 'u', user, 'h', hash, 'c', now_s, 'a', now_s, 'x', absat, 'd', device, unpack(newdev) }
if ip ~= '' then f[#f + 1] = 'i'; f[#f + 1] = ip end
if country ~= '' then f[#f + 1] = 'k'; f[#f + 1] = country end
if data ~= '' then f[#f + 1] = 'j'; f[#f + 1] = data end
-- 'r' = '0' marks a session signed in without "remember me" (its own, shorter lifetimes).
if rem ~= '' then f[#f + 1] = 'r'; f[#f + 1] = rem end
-- The audit event first, then the session: under maxmemory + noeviction the first write is
-- the one refused, before anything has been touched, so a session never lacks its event.
audit('t', 'c', 's', tag .. rnd, 'u', user, 'w', now_s, 'd', device, 'i', ip, 'k', country, 'x', absat, 'p', ms(exp),
  'm', rem == '' and '1' or '0', unpack(newdev))
redis.call('HSET', KEYS[1], unpack(f))
redis.call('PEXPIRE', KEYS[1], ttl)
schedule(tag .. rnd, user, exp, ttl)
local evicted = {}
-- Below every cap nothing needs pruning yet (LIST drops dead members, and the index expires
-- with its last session); at a cap, expired members leave before live sessions are counted.
local card = redis.call('ZCARD', KEYS[2])
local over = (max > 0 and card >= max) or (tcap > 0 and card >= tcap)
if max == 0 or over then prune_index(KEYS[2], base, now) end
if over then
  local live, oftype = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local h = redis.call('HMGET', base .. id, 'a', 'd', 'h')
    if h[1] then
      local e = { id, tonumber(h[1]), h[3] }
      live[#live + 1] = e
      -- The device type is the record's last field.
      if tcap > 0 and string.match(h[2] or '', '[^\\31]*$') == ttype then oftype[#oftype + 1] = e end
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
  -- Least recently active first; the new session is not in the index yet.
  local by_activity = function(p, q) return p[2] < q[2] end
  local gone = {}
  -- What an eviction removes is kept for a while beside the new session (its key + 'z'): if
  -- this create turns out to be one its caller gave up on (a timeout after sending), the
  -- cleanup puts the evicted sessions back (UNCREATE). Deleted by the caller once acknowledged.
  local stash = KEYS[1] .. 'z'
  local function evict(e)
    gone[e[1]] = true
    local pttl = redis.call('PTTL', base .. e[1])
    if pttl > 0 then
      -- The secret hash too: a sign-out with the evicted session's token finds it here (REVOKE).
      redis.call('RPUSH', stash, e[1], redis.call('DUMP', base .. e[1]), pttl, redis.call('ZSCORE', KEYS[2], e[1]) or '0', e[3] or '')
      redis.call('PEXPIRE', stash, 600000)
    end
    redis.call('DEL', base .. e[1])
    redis.call('ZREM', KEYS[2], e[1])
    evicted[#evicted + 1] = tag .. e[1]
    unschedule(tag .. e[1], user)
    audit_after('t', 'e', 's', tag .. e[1], 'u', user, 'w', now_s, 'y', 'cap')
  end
  -- Past the type's cap: its least recently active sessions go first.
  if tcap > 0 and #oftype >= tcap then
    table.sort(oftype, by_activity)
    for i = 1, #oftype - tcap + 1 do evict(oftype[i]) end
  end
  -- Past the total: the least recently active of all that are left.
  local left = #live - #evicted
  if max > 0 and left >= max then
    table.sort(live, by_activity)
    local n = left - max + 1
    for _, e in ipairs(live) do
      if n == 0 then break end
      if not gone[e[1]] then evict(e); n = n - 1 end
    end
  end
  -- An eviction is a revocation: no pending undo of an earlier sign-in may reverse it (the new
  -- session is not in the index yet, so its own stash stays).
  if #evicted > 0 then drop_stashes(KEYS[2], base) end
end
redis.call('ZADD', KEYS[2], exp, rnd)
-- An index that had no member did not exist, so it has no TTL to compare with (a user's first
-- session: most sign-ins).
if card == 0 then redis.call('PEXPIRE', KEYS[2], ttl) else extend_index(KEYS[2], ttl) end
if #evicted > 0 then redis.pcall('PUBLISH', channel, now_s .. '!|' .. table.concat(evicted, ',')) end
if dev ~= '' then
  redis.call('ZADD', KEYS[3], now, dev)
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(dev_max) + 1))
  redis.call('PEXPIRE', KEYS[3], dev_ttl)
end
table.insert(evicted, 1, #newdev > 0 and '1' or '0')
return evicted
`;

/**
 * touch: KEYS[1] session, KEYS[2] index. ARGV: random, now, idleTimeout, the short idle timeout
 * (sessions signed in without "remember me"), publicId, the audit activity interval, then the
 * audit and event arguments. The audit hears of activity at most once per interval (field `l`: when it
 * last did), not of every touch.
 * Moves last-active to `now` and the expiry to min(now + idle, x).
 * Returns 1 when written, 0 when the session is gone or the write is stale.
 */
export const TOUCH = `${EXTEND_INDEX}${AUDIT}
local now = tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'x', 'a', 'r', 'u', 'l', 'c')
-- Revoked or expired: a queued or replayed touch must not recreate the key.
if not f[1] then return 0 end
-- An older write arriving late never moves last-active (or the expiry) backwards.
if tonumber(f[2]) >= now then return 0 end
local idle = tonumber(f[3] == '0' and ARGV[4] or ARGV[3])
local exp = math.min(now + idle, tonumber(f[1]))
if exp <= now then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[2])
redis.call('PEXPIRE', KEYS[1], exp - now)
-- The hash exists, so the session is live and belongs in the index (a revoke removes hash
-- and member together): a plain ZADD also restores a member pruned by a clock running ahead.
redis.call('ZADD', KEYS[2], exp, ARGV[1])
extend_index(KEYS[2], exp - now)
schedule(ARGV[5], f[4], exp, exp - now)
-- Activity is the audit's alone (the feed tells changes, not requests).
if A_STREAM ~= '' and now - tonumber(f[5] or f[6]) >= tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'l', ARGV[2])
  append_after(A_STREAM, 'audit', 't', 'a', 's', ARGV[5], 'u', f[4], 'w', ARGV[2], 'a', ARGV[2], 'p', ms(exp))
end
return 1
`;

/**
 * revoke: KEYS[1] session, KEYS[2] index. ARGV: random, publicId, owner ('' = anyone), channel,
 * now (the broadcast's send time), end reason (sign-out | revoked | replaced), the change's time
 * by the app's clock (what the audit records), the secret hash of the token that asks ('' = by
 * id: the caller checked), then the audit and event arguments.
 * Returns 1 when a live session was revoked, 0 when unknown, owned by someone else, or (by
 * token) another secret's.
 */
export const REVOKE = `${DROP_STASHES}${AUDIT}
local f = redis.call('HMGET', KEYS[1], 'u', 'h')
local u = f[1]
if ARGV[3] ~= '' and u ~= ARGV[3] then return 0 end
local base = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
if ARGV[8] ~= '' then
  -- By token (sign-out, sign-in over a carried cookie), checked here on the primary, whatever a
  -- cache or replica said. A session gone may sit in the stash of a sign-in whose undo is
  -- pending (its cap evicted it): that stash goes, so the undo cannot bring it back.
  if not u then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local st = base .. id .. 'z'
      local s = redis.call('LRANGE', st, 0, -1)
      for i = 1, #s, 5 do
        if s[i] == ARGV[1] and s[i + 4] == ARGV[8] then redis.call('DEL', st); break end
      end
    end
    return 0
  end
  if f[2] ~= ARGV[8] then return 0 end
end
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
-- Also when the session is already gone: a pending undo could otherwise bring it back after
-- this revocation was answered.
drop_stashes(KEYS[2], base)
if n == 1 then
  redis.pcall('PUBLISH', ARGV[4], ARGV[5] .. '!|' .. ARGV[2])
  unschedule(ARGV[2], u)
  audit_after('t', 'e', 's', ARGV[2], 'u', u, 'w', ms(ARGV[7]), 'y', ARGV[6])
end
return n
`;

/**
 * revokeAll: KEYS[1] index. ARGV: base, tag, keep random ('' = none), owner, channel, now (the
 * broadcast's send time), the change's time by the app's clock (what the audit records), '1' to
 * end every session in the index whoever it belongs to (ending every user's sessions: no owner
 * is known) or '', then the audit and event arguments. Returns the public ids of the live sessions it
 * revoked.
 */
export const REVOKE_ALL = `${DROP_STASHES}${AUDIT}
local base, tag, keep, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
drop_stashes(KEYS[1], base)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local revoked = {}
for _, id in ipairs(ids) do
  if id ~= keep then
    local k = base .. id
    -- The owner check guards the index against anything but this user's sessions.
    local u = redis.call('HGET', k, 'u')
    if u and (u == owner or ARGV[8] == '1') then
      redis.call('DEL', k)
      revoked[#revoked + 1] = tag .. id
      unschedule(tag .. id, u)
      audit_after('t', 'e', 's', tag .. id, 'u', u, 'w', ms(ARGV[7]), 'y', 'everywhere')
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
if #revoked > 0 then redis.pcall('PUBLISH', ARGV[5], ARGV[6] .. '!|' .. table.concat(revoked, ',')) end
return revoked
`;

/**
 * update: KEYS[1] session. ARGV: field, value ('' deletes the field), publicId, channel, now (the
 * broadcast's send time), the change's time by the app's clock (what the audit records), for a
 * rotation replayed the count it made ('' otherwise), then the audit and event arguments. Used for session
 * data (`j`) and for rotation (a new secret hash `h`, told to the audit); a rotation's value may
 * carry a confirmation of the user's credentials as `<hash>:<t>`, set with the new hash in one
 * step (a re-authentication gets a new token, as a sign-in does). Rotations are counted in `n`:
 * a replayed rotation applies only where the session's count is below its own (it was lost, e.g.
 * with a demoted primary), never over a later one. Conditional on the key existing, so an update
 * that races a revoke cannot bring the session back. Returns 0 when nothing was changed, the
 * rotation count for `h`, 1 otherwise.
 */
export const UPDATE = `${AUDIT}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 1
if ARGV[1] == 'h' then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  if ARGV[7] ~= '' and cur >= tonumber(ARGV[7]) then return 0 end
  n = ARGV[7] == '' and cur + 1 or tonumber(ARGV[7])
  redis.call('HSET', KEYS[1], 'n', n)
  local c = string.find(ARGV[2], ':', 1, true)
  if c then
    redis.call('HSET', KEYS[1], 'h', string.sub(ARGV[2], 1, c - 1), 't', string.sub(ARGV[2], c + 1))
  else
    redis.call('HSET', KEYS[1], 'h', ARGV[2])
  end
elseif ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.pcall('PUBLISH', ARGV[4], ARGV[5] .. (ARGV[1] == 'h' and 'r' .. n or '') .. '|' .. ARGV[3])
local u = redis.call('HGET', KEYS[1], 'u')
if ARGV[1] == 'h' then
  -- A confirmation rotates too: the audit counts a rotation, the feed tells a re-authentication.
  local e = { 's', ARGV[3], 'u', u, 'w', ms(ARGV[6]), 'n', tostring(n) }
  if A_STREAM ~= '' then append_after(A_STREAM, 'audit', 't', 'r', unpack(e)) end
  if E_STREAM ~= '' then append_after(E_STREAM, 'events', 't', string.find(ARGV[2], ':', 1, true) and 'q' or 'r', unpack(e)) end
else
  event_after('t', 'u', 's', ARGV[3], 'u', u, 'w', ms(ARGV[6]))
end
return n
`;

/**
 * uncreate: KEYS[1] session, KEYS[2] index. ARGV: random, publicId, channel, now (the
 * broadcast's send time), base, at (the app's clock, for the audit), then the audit and event
 * arguments. Undoes a create whose caller gave up (it timed out after sending): the session
 * goes (broadcast, audit 'revoked'), and sessions its cap eviction removed come back from the
 * stash with the expiry they had left, unless they exist again. Returns 1 when the session
 * existed.
 */
export const UNCREATE = `${AUDIT}
local u = redis.call('HGET', KEYS[1], 'u')
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local stash = KEYS[1] .. 'z'
local s = redis.call('LRANGE', stash, 0, -1)
local tag = string.sub(ARGV[2], 1, #ARGV[2] - #ARGV[1])
local back = {}
for i = 1, #s, 5 do
  local k = ARGV[5] .. s[i]
  if redis.call('EXISTS', k) == 0 then
    redis.call('RESTORE', k, tonumber(s[i + 2]), s[i + 1])
    redis.call('ZADD', KEYS[2], s[i + 3], s[i])
    back[#back + 1] = tag .. s[i]
    schedule(tag .. s[i], redis.call('HGET', k, 'u'), tonumber(s[i + 3]), tonumber(s[i + 2]))
  end
end
redis.call('DEL', stash)
-- The sessions back were told ended (the eviction's broadcast): now they are not.
if #back > 0 then redis.pcall('PUBLISH', ARGV[3], ARGV[4] .. '+|' .. table.concat(back, ',')) end
if n == 1 then
  redis.pcall('PUBLISH', ARGV[3], ARGV[4] .. '!|' .. ARGV[2])
  unschedule(ARGV[2], u)
  audit_after('t', 'e', 's', ARGV[2], 'u', u, 'w', ms(ARGV[6]), 'y', 'revoked')
end
return n
`;

/**
 * list: KEYS[1] index. ARGV: base, now.
 * Returns { random, HGETALL… } for every live session and drops members whose session is gone.
 */
export const LIST = `
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', ARGV[1] .. id)
  if #h > 0 then out[#out + 1] = { id, h } else redis.call('ZREM', KEYS[1], id) end
end
return out
`;

/**
 * present: KEYS[1] a session just created. 1 when it exists on this node, with its expiry set
 * again to the same instant: a write that always replicates, so the WAIT after it on the same
 * connection counts replicas that have everything up to it (the create, and the evictions of the
 * same script). 0 when the node does not have it (the create was lost to a failover).
 */
export const PRESENT = `
local t = redis.call('PTTL', KEYS[1])
if t <= 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], t)
return 1
`;

/** read: KEYS[1] session. HGETALL on the master (a script never runs on a replica). */
export const READ = `return redis.call('HGETALL', KEYS[1])`;
