// The audit's consumer: one round reads, per stream, this consumer's own pending entries (cursor
// '0': after a failed batch, a lost reply, or a claim) or else new ones (cursor '>'); merges the
// events per session; applies them in ONE transaction (writer.ts); and only after COMMIT
// acknowledges and deletes the entries (XACK + XDEL in one script, so the stream's length is the
// buffer's depth). A failure anywhere leaves the entries pending: they are read again ('0') and
// applied again. A consumer that dies leaves its entries pending; once idle for `claimIdle`
// another instance takes them over (XAUTOCLAIM) and applies them. The table's merge is idempotent
// and order-insensitive, so an event applied twice, or two events of one session applied
// concurrently by two sinks in either order, give the same row: exactly-once in effect.
import { parseEvent, mergeEvents, type AuditEvent } from './events.js';
import type { AuditStages, AuditMetricsSnapshot } from './metrics.js';
import { AUDIT_GROUP, isNoGroup, type Loose, type StreamState } from './streams.js';
import type { CommitHook } from './writer.js';

interface ReadEntry {
  st: StreamState;
  id: string;
  ev: AuditEvent | null;
  /** Pending, but deleted from the stream. */
  lost: boolean;
}

const TRIMMED = 'tiered-session: audit sink: pending events were trimmed from their stream before being applied'
  + ' (the per-stream cap is too small for the backlog)';

export interface ConsumerSettings {
  /** This instance's name in the group. */
  readonly name: string;
  /** Entries read per stream per round (XREADGROUP COUNT). */
  readonly batchSize: number;
  /** How long an entry may sit pending on a consumer before another one takes it over, ms. */
  readonly claimIdle: number;
  readonly afterCommit: CommitHook | undefined;
}

export class AuditConsumer {
  #nextClaimAt = 0;

  constructor(private readonly c: AuditStages, private readonly s: ConsumerSettings) {}

  /**
   * One round: claims (when due), one read per stream, one transaction, then the acks.
   * Answers whether a stream had more to read. Throws after logging when PostgreSQL or Redis failed.
   */
  async round(): Promise<boolean> {
    const streams = this.c.streams;
    if (!streams.ready && !streams.everReady) return false; // still connecting at startup: not an outage
    const now = this.c.now();
    if (!this.c.writer.isDown && now >= this.#nextClaimAt) {
      const again = await this.#claim();
      this.#nextClaimAt = again ? 0 : now + Math.max(100, Math.floor(this.s.claimIdle / 3));
    }
    const batch = this.s.batchSize;
    const replies = await streams.perSlot('XREADGROUP', streams.all, (p, st) => {
      (p as unknown as Loose).xreadgroup('GROUP', AUDIT_GROUP, this.s.name, 'COUNT', batch, 'STREAMS', st.key, st.cursor);
    });
    let more = false;
    let redisError: unknown;
    const entries: ReadEntry[] = [];
    const drained: StreamState[] = [];
    for (const [st, [err, reply]] of replies) {
      if (err) {
        if (isNoGroup(err)) { st.absent = true; continue; }
        redisError ??= err;
        st.cursor = '0'; // the reply may have been lost after the entries were delivered to us
        continue;
      }
      st.absent = false;
      const list = ((reply as [string, [string, string[] | null][]][] | null)?.[0]?.[1]) ?? [];
      if (list.length >= batch) more = true;
      else if (st.cursor === '0') drained.push(st);
      for (const [id, fields] of list) {
        // null fields: pending but deleted from the stream (trimmed by the cap before anyone
        // applied it). Not an event either way: acknowledged with the batch, counted then.
        entries.push({ st, id, ev: fields === null ? null : parseEvent(fields), lost: fields === null });
      }
    }
    if (redisError !== undefined && entries.length === 0) throw streams.down(redisError);
    if (entries.length === 0) {
      if (redisError === undefined) streams.up();
      for (const st of drained) st.cursor = '>';
      if (this.c.writer.isDown) await this.c.writer.probe();
      // A stream that had nothing pending reads new entries in the next round, at once.
      return more || drained.length > 0;
    }
    const events = entries.filter((e) => e.ev !== null).map((e) => e.ev!);
    const touched = new Set(entries.map((e) => e.st));
    if (events.length > 0) {
      try {
        await this.c.writer.apply(mergeEvents(events), events.length);
        this.c.writer.up();
      } catch (err) {
        this.c.metrics.batchFailures++;
        for (const st of touched) st.cursor = '0';
        throw this.c.writer.down(err);
      }
      if (this.s.afterCommit) await this.s.afterCommit(events.length);
    }
    // Acknowledge and delete, per stream.
    const per = new Map<StreamState, { ids: string[]; applied: number; invalid: number; lost: number }>();
    for (const e of entries) {
      let g = per.get(e.st);
      if (!g) per.set(e.st, (g = { ids: [], applied: 0, invalid: 0, lost: 0 }));
      g.ids.push(e.id);
      if (e.ev !== null) g.applied++; else if (e.lost) g.lost++; else g.invalid++;
    }
    const acks = await streams.ack(per);
    let ackError: unknown;
    let lost = 0;
    for (const [st, [err]] of acks) {
      if (err) { ackError ??= err; st.cursor = '0'; continue; }
      const g = per.get(st)!;
      this.c.metrics.eventsApplied += g.applied;
      this.c.metrics.eventsInvalid += g.invalid;
      this.c.metrics.eventsLost += g.lost;
      lost += g.lost;
    }
    if (lost > 0) this.c.log.warn({ entries: lost }, TRIMMED);
    for (const st of drained) if (st.cursor === '0' && !acks.get(st)?.[0]) st.cursor = '>';
    if (events.length > 0) this.c.metrics.batches++;
    const failure = redisError ?? ackError;
    if (failure !== undefined) throw streams.down(failure);
    streams.up();
    // A stream that just finished its pending entries has new ones to read at once.
    return more || drained.length > 0;
  }

  /**
   * Take over entries idle longer than claimIdle (a consumer that died), and give lost groups
   * back to streams that exist without one. Claimed entries are read with the next '0' read.
   * Answers whether some stream has more to claim.
   */
  async #claim(): Promise<boolean> {
    const streams = this.c.streams;
    const present = streams.all.filter((s) => !s.absent);
    const absent = streams.all.filter((s) => s.absent);
    let again = false;
    const claims = await streams.perSlot('XAUTOCLAIM', present, (p, st) => {
      (p as unknown as Loose).xautoclaim(st.key, AUDIT_GROUP, this.s.name, this.s.claimIdle, st.claimCursor, 'COUNT', this.s.batchSize,
        'JUSTID');
    });
    for (const [st, [err, reply]] of claims) {
      if (err) { if (isNoGroup(err)) st.absent = true; continue; }
      const [next, claimed, deleted] = reply as [string, string[], string[]?];
      st.claimCursor = next;
      if (next !== '0-0') again = true;
      if (claimed.length > 0) {
        st.cursor = '0';
        this.c.metrics.eventsClaimed += claimed.length;
        this.c.log.info({ stream: st.key, entries: claimed.length },
          'tiered-session: audit sink: took over entries left pending by a stopped consumer');
      }
      if (deleted && deleted.length > 0) {
        this.c.metrics.eventsLost += deleted.length;
        this.c.log.warn({ stream: st.key, entries: deleted.length }, TRIMMED);
      }
    }
    // A stream that exists without the group (it expired and something recreated it): the
    // group again, at 0, never MKSTREAM (only the scripts create streams, with their TTL).
    if (absent.length > 0) {
      const made = await streams.perSlot('XGROUP', absent, (p, st) => {
        (p as unknown as Loose).xgroup('CREATE', st.key, AUDIT_GROUP, '0');
      });
      for (const [st, [err]] of made) {
        if (!err || /BUSYGROUP/.test(err.message)) {
          st.absent = false;
          st.cursor = '0';
          if (!err) this.c.log.warn({ stream: st.key }, 'tiered-session: audit sink: stream had no consumer group; created it at 0');
        }
      }
    }
    return again;
  }

  /** Read buffer depth (sum of XLEN) and lag (age of the oldest entry left in any stream). */
  async refreshStats(): Promise<AuditMetricsSnapshot> {
    const replies = await this.c.streams.perSlot('XLEN', this.c.streams.all, (p, st) => {
      p.xlen(st.key);
      p.xrange(st.key, '-', '+', 'COUNT', 1);
    }, 2);
    let depth = 0;
    let oldest = Infinity;
    let failed = false;
    for (const [, [[e1, n], [e2, r]]] of replies) {
      if (e1 || e2) { failed = true; continue; }
      depth += Number(n);
      const id = (r as [string, string[]][])[0]?.[0];
      if (id) oldest = Math.min(oldest, Number(id.slice(0, id.indexOf('-'))));
    }
    if (!failed) {
      this.c.metrics.bufferEvents = depth;
      this.c.metrics.lagSeconds = oldest === Infinity ? 0 : Math.max(0, (this.c.now() - oldest) / 1000);
      this.c.metrics.statsAt = this.c.now();
    }
    return this.c.metrics.snapshot();
  }
}
