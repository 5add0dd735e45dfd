// The audit's PostgreSQL side: every statement runs in a transaction of its own on a pooled
// client, bounded by postgresTimeout on both sides; a batch of merged events goes in as one
// multi-row upsert (sql.ts), retried at once on a deadlock or serialization failure. It also
// keeps PostgreSQL's up/down state, logged once each way.
import type { AuditContext } from './metrics.js';
import {
  upsertSql, upsertParams, type AuditNames, type AuditPool, type AuditPoolClient, type AuditQueryResult, type SessionDelta,
} from './sql.js';

const isRetryable = (err: unknown) => {
  const code = (err as { code?: unknown })?.code;
  return code === '40P01' || code === '40001';
};

/** Awaited after the upsert, before COMMIT (the test seam's pause point). */
export type CommitHook = (events: number) => Promise<void> | void;

export interface WriterSettings {
  readonly pool: AuditPool;
  readonly names: AuditNames;
  /** The plugin's keyPrefix: the realm of the rows. */
  readonly prefix: string;
  /** Bound on each transaction, ms. */
  readonly postgresTimeout: number;
  readonly beforeCommit: CommitHook | undefined;
}

export class AuditWriter {
  #downSince = 0;

  constructor(private readonly c: AuditContext, private readonly s: WriterSettings) {}

  get isDown(): boolean { return this.#downSince !== 0; }

  /** The batch, in one transaction: BEGIN, statement_timeout, the upsert, COMMIT. */
  async apply(deltas: SessionDelta[], events: number): Promise<void> {
    const sql = upsertSql(this.s.names);
    const params = upsertParams(deltas, this.s.prefix);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#transaction(async (c) => {
          await c.query(sql, params);
          if (this.s.beforeCommit) await this.s.beforeCommit(events);
        });
        return;
      } catch (err) {
        // Deadlock or serialization failure: nothing was written; try again at once (the rows
        // go in id order, so two sinks do not deadlock each other; something else might).
        if (attempt < 3 && isRetryable(err)) continue;
        throw err;
      }
    }
  }

  /** One statement in its own bounded transaction; PostgreSQL's up/down state follows the outcome. */
  async statement(sql: string, params: unknown[]): Promise<AuditQueryResult> {
    try {
      const v = await this.#transaction((c) => c.query(sql, params));
      this.up();
      return v;
    } catch (err) {
      throw this.down(err);
    }
  }

  /** While PostgreSQL is down: does it answer again? */
  async probe(): Promise<void> {
    try {
      await this.#transaction(async (c) => { await c.query('SELECT 1'); });
      this.up();
    } catch { /* still down */ }
  }

  /** Record a failure (logged once per outage); answers it, to be thrown. */
  down(err: unknown): unknown {
    this.c.metrics.postgresUp = false;
    if (this.#downSince === 0) {
      this.#downSince = this.c.now();
      this.c.log.error({ err, table: this.s.names.display },
        'tiered-session: audit sink: PostgreSQL unavailable; events stay buffered in the Redis streams and are retried with backoff');
    }
    return err;
  }

  up(): void {
    this.c.metrics.postgresUp = true;
    if (this.#downSince !== 0) {
      this.c.log.info({ downMs: this.c.now() - this.#downSince, table: this.s.names.display },
        'tiered-session: audit sink: PostgreSQL reachable again; applying the buffered events');
      this.#downSince = 0;
    }
  }

  /**
   * Run `fn` in a transaction on a pooled client, bounded by postgresTimeout on both sides:
   * statement_timeout in the server, and a client-side guard that destroys the connection (so
   * the server rolls back) if the server does not answer at all.
   */
  async #transaction<T>(fn: (c: AuditPoolClient) => Promise<T>): Promise<T> {
    const limit = this.s.postgresTimeout;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let client: AuditPoolClient | undefined;
    let released = false;
    const release = (destroy: boolean) => {
      if (client && !released) {
        released = true;
        client.removeListener?.('error', onError);
        client.release(destroy);
      }
    };
    const onError = () => { /* the query in flight fails too; handled there */ };
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        release(true);
        reject(new Error(`PostgreSQL did not answer within ${limit} ms`));
      }, limit + 1000);
      timer.unref();
    });
    const work = (async (): Promise<T> => {
      const c = await this.s.pool.connect();
      if (timedOut) { c.release(true); throw new Error('PostgreSQL connection came too late'); }
      client = c;
      // A checked-out pg client has no 'error' listener: a connection dying between two queries
      // would otherwise crash the process.
      c.on?.('error', onError);
      let ok = false;
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('statement_timeout', $1, true)", [String(limit)]);
        const v = await fn(c);
        await c.query('COMMIT');
        ok = true;
        return v;
      } finally {
        if (!ok && !timedOut) await c.query('ROLLBACK').catch(() => {});
        release(!ok);
      }
    })();
    try {
      return await Promise.race([work, guard]);
    } finally {
      clearTimeout(timer);
      work.catch(() => {});
    }
  }
}
