// The audit trail (issue 14): session events buffered in Redis streams, kept in PostgreSQL.
export { AuditSink, AUDIT_GROUP, auditStreamKey, auditLeaseKey, sessionKeyOf, type AuditSinkOptions } from './sink.js';
export { AuditMetrics, auditPrometheus, type AuditMetricsSnapshot } from './metrics.js';
export {
  migrate, auditHistory, auditNames, DEFAULT_TABLE, END_REASONS, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT,
  type AuditPool, type AuditPoolClient, type AuditQueryResult, type AuditTableOptions, type AuditSessionRow,
  type HistoryQuery, type EndReason,
} from './sql.js';
export { parseEvent, mergeEvents, applyEvents, type AuditEvent } from './events.js';
