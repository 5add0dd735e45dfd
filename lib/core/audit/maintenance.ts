// Keeping the audit table honest, by one instance at a time (the lease holder): the expiry sweep
// (rows whose session expired in Redis without an event saying so), retention (rows ended long
// ago), and forgetting consumers of instances long gone.
import { sessionKey } from '../store/keys.js';
import type { AuditStages } from './metrics.js';
import { sweepSelectSql, sweepExpireSql, sweepExtendSql, retentionSql, type AuditNames } from './sql.js';

const MAX_SWEEP_BATCHES = 20;
const MAX_RETENTION_BATCHES = 50;
const SWEEP_BATCH = 500;
const RETENTION_BATCH = 1000;
const DAY = 86_400_000;

export interface MaintenanceSettings {
  /** The lease holder's name (this instance's consumer name). */
  readonly name: string;
  readonly prefix: string;
  readonly names: AuditNames;
  /** How often the lease holder runs, ms; the lease lives 2 × this + 10 s. */
  readonly sweepInterval: number;
  /** The sweep's margin for clock skew between instances and Redis, ms. */
  readonly sweepGrace: number;
  readonly retentionDays: number;
  /** Consumers idle longer than this with nothing pending are forgotten, ms. */
  readonly reapIdle: number;
}

export class AuditMaintenance {
  #runs = 0;

  constructor(private readonly c: AuditStages, private readonly s: MaintenanceSettings) {}

  /** One turn of the lease holder: take or keep the lease, and if held sweep, retain, and now and then reap. */
  async run(): Promise<void> {
    if (!(await this.#holdLease())) return;
    await this.sweep();
    await this.retain();
    if (this.#runs++ % 10 === 0) await this.c.streams.reap(this.s.reapIdle, '');
  }

  /** Give the lease up (at close), if held. */
  async release(): Promise<void> {
    if (!this.c.metrics.leaseHeld) return;
    await this.c.streams.release(this.s.name);
    this.c.metrics.leaseHeld = false;
  }

  async #holdLease(): Promise<boolean> {
    try {
      this.c.metrics.leaseHeld = await this.c.streams.lease(this.s.name, 2 * this.s.sweepInterval + 10_000);
    } catch (err) {
      this.c.metrics.leaseHeld = false;
      throw this.c.streams.down(err);
    }
    return this.c.metrics.leaseHeld;
  }

  /**
   * The expiry sweep: rows not ended whose expiry passed more than sweepGrace ago, checked
   * against Redis. Session key gone → ended at its expiry, 'expired' (unless an explicit end got
   * there first; one arriving later still replaces it). Key still there → activity the buffer
   * has not delivered yet: expires_at = now + PTTL. At most 20 × 500 rows per run; the rest
   * waits for the next.
   */
  async sweep(): Promise<{ expired: number; extended: number }> {
    const n = this.s.names;
    const prefix = this.s.prefix;
    const cutoff = this.c.now() - this.s.sweepGrace;
    let after: [number, string] = [0, ''];
    let expired = 0;
    let extended = 0;
    for (let b = 0; b < MAX_SWEEP_BATCHES; b++) {
      const rows = (await this.c.writer.statement(sweepSelectSql(n), [cutoff, after[0], after[1], SWEEP_BATCH, prefix])).rows;
      if (rows.length === 0) break;
      const items = rows.map((r) => {
        const id = String(r.id);
        return { id, slot: this.c.streams.slotOf(id) };
      });
      const ttls = await this.c.streams.perSlot('PTTL', items, (p, it) => { p.pttl(sessionKey(prefix, it.id)); });
      const gone: string[] = [];
      const liveIds: string[] = [];
      const liveUntil: number[] = [];
      const at = this.c.now();
      let redisErr: unknown;
      for (const it of items) {
        const [err, v] = ttls.get(it)!;
        if (err) { redisErr ??= err; continue; }
        const pttl = Number(v);
        if (pttl === -2) gone.push(it.id);
        else if (pttl >= 0) { liveIds.push(it.id); liveUntil.push(at + pttl); }
        // -1 (a session key without a TTL) does not happen; such a row is left as it is.
      }
      if (redisErr !== undefined) throw this.c.streams.down(redisErr);
      this.c.streams.up();
      if (gone.length > 0) expired += (await this.c.writer.statement(sweepExpireSql(n), [gone, prefix])).rowCount ?? 0;
      if (liveIds.length > 0) extended += (await this.c.writer.statement(sweepExtendSql(n), [liveIds, liveUntil, prefix])).rowCount ?? 0;
      const last = rows[rows.length - 1];
      after = [Number(last.expires_ms), String(last.id)];
      if (rows.length < SWEEP_BATCH) break;
    }
    this.c.metrics.sweeps++;
    this.c.metrics.sweptExpired += expired;
    this.c.metrics.sweptExtended += extended;
    return { expired, extended };
  }

  /** Retention: delete rows ended more than retentionDays ago, 1000 per statement. */
  async retain(): Promise<number> {
    const cutoff = this.c.now() - this.s.retentionDays * DAY;
    let total = 0;
    for (let b = 0; b < MAX_RETENTION_BATCHES; b++) {
      const n = (await this.c.writer.statement(retentionSql(this.s.names), [cutoff, RETENTION_BATCH, this.s.prefix])).rowCount ?? 0;
      total += n;
      if (n < RETENTION_BATCH) break;
    }
    this.c.metrics.retentionDeleted += total;
    return total;
  }
}
