import type { Logger } from '../log.js';
import { plainExposition } from '../observe/exposition.js';
import type { AuditStreams } from './streams.js';
import type { AuditWriter } from './writer.js';

/** What every stage of the audit shares: its counters, its logger and its clock. */
export interface AuditContext {
  readonly metrics: AuditMetrics;
  readonly log: Logger;
  readonly now: () => number;
}

/** The two stages the consumer and the maintenance work through. */
export interface AuditStages extends AuditContext {
  readonly streams: AuditStreams;
  readonly writer: AuditWriter;
}

/** The audit sink's counters and gauges: plain fields, rendered on demand. */
export class AuditMetrics {
  /** Stream entries in PostgreSQL: acknowledged after their batch committed (a redelivery counts again). */
  eventsApplied = 0;
  /** Entries that were not well-formed events: acknowledged and dropped. */
  eventsInvalid = 0;
  /** Pending entries found deleted from their stream (trimmed by the cap before they were applied). */
  eventsLost = 0;
  /** Entries taken over from a consumer idle longer than claimIdle (XAUTOCLAIM). */
  eventsClaimed = 0;
  /** Batches committed. */
  batches = 0;
  /** Batches that failed (PostgreSQL or Redis); their entries stay pending and are retried. */
  batchFailures = 0;
  /** Sweeps run by this instance (as the lease holder). */
  sweeps = 0;
  /** Rows the sweep ended as 'expired', and rows it found still live in Redis and extended. */
  sweptExpired = 0;
  sweptExtended = 0;
  /** Rows deleted by retention. */
  retentionDeleted = 0;
  /** Entries in the streams (sum of XLEN): applied entries are deleted, so this is the buffer's depth. */
  bufferEvents = 0;
  /** Age in seconds of the oldest entry still in a stream (0 when empty). */
  lagSeconds = 0;
  /** When bufferEvents and lagSeconds were last read (epoch ms; 0 = never). */
  statsAt = 0;
  postgresUp = true;
  redisUp = true;
  leaseHeld = false;

  snapshot(): AuditMetricsSnapshot {
    return {
      up: this.postgresUp && this.redisUp,
      postgresUp: this.postgresUp,
      redisUp: this.redisUp,
      leaseHeld: this.leaseHeld,
      bufferEvents: this.bufferEvents,
      lagSeconds: this.lagSeconds,
      statsAt: this.statsAt,
      eventsApplied: this.eventsApplied,
      eventsInvalid: this.eventsInvalid,
      eventsLost: this.eventsLost,
      eventsClaimed: this.eventsClaimed,
      batches: this.batches,
      batchFailures: this.batchFailures,
      sweeps: this.sweeps,
      sweptExpired: this.sweptExpired,
      sweptExtended: this.sweptExtended,
      retentionDeleted: this.retentionDeleted,
    };
  }
}

export interface AuditMetricsSnapshot {
  /** PostgreSQL and Redis both answered the sink's last calls. */
  up: boolean;
  postgresUp: boolean;
  redisUp: boolean;
  leaseHeld: boolean;
  bufferEvents: number;
  lagSeconds: number;
  statsAt: number;
  eventsApplied: number;
  eventsInvalid: number;
  eventsLost: number;
  eventsClaimed: number;
  batches: number;
  batchFailures: number;
  sweeps: number;
  sweptExpired: number;
  sweptExtended: number;
  retentionDeleted: number;
}

/** Prometheus text exposition of a snapshot (append it to the plugin's own metrics text). */
export function auditPrometheus(s: AuditMetricsSnapshot): string {
  return plainExposition([
    ['gauge', 'tiered_session_audit_sink_up', 'Whether the audit sink reaches PostgreSQL and Redis (1) or is retrying (0).', s.up],
    ['gauge', 'tiered_session_audit_buffer_events', 'Audit events waiting in the Redis streams (sum of XLEN).', s.bufferEvents],
    ['gauge', 'tiered_session_audit_lag_seconds', 'Age of the oldest audit event not yet in PostgreSQL.', s.lagSeconds],
    ['gauge', 'tiered_session_audit_lease_held', 'Whether this instance holds the sweep and retention lease.', s.leaseHeld],
    ['counter', 'tiered_session_audit_events_applied_total', 'Audit events written to PostgreSQL and acknowledged.', s.eventsApplied],
    ['counter', 'tiered_session_audit_events_invalid_total', 'Stream entries that were not well-formed events (dropped).',
      s.eventsInvalid],
    ['counter', 'tiered_session_audit_events_lost_total', 'Pending events trimmed from a stream by its cap before they were applied.',
      s.eventsLost],
    ['counter', 'tiered_session_audit_events_claimed_total', 'Events taken over from a consumer that stopped (XAUTOCLAIM).',
      s.eventsClaimed],
    ['counter', 'tiered_session_audit_batches_total', 'Batches committed to PostgreSQL.', s.batches],
    ['counter', 'tiered_session_audit_batch_failures_total', 'Batches that failed and were left pending for a retry.', s.batchFailures],
    ['counter', 'tiered_session_audit_sweeps_total', 'Expiry sweeps run by this instance.', s.sweeps],
    ['counter', 'tiered_session_audit_swept_expired_total', 'Sessions the sweep recorded as expired.', s.sweptExpired],
    ['counter', 'tiered_session_audit_swept_extended_total', 'Sessions the sweep found still live and extended.', s.sweptExtended],
    ['counter', 'tiered_session_audit_retention_deleted_total', 'Rows deleted by retention.', s.retentionDeleted],
  ]);
}
