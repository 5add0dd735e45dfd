// `tiered-session`: what both adapters share. The Fastify plugin is `tiered-session/fastify`,
// the Express middleware `tiered-session/express`.
export type { Session, SessionData, SessionInfo } from './core/session-data.js';
export type { Sessions } from './core/sessions-api.js';
export type { SignInOptions, SignedIn } from './core/flows.js';
export type { DeviceInfo } from './core/device.js';
export type { LegacyOptions } from './core/legacy.js';
export type {
  TieredSessionOptions, CookieOptions, LocalCacheOptions, RedisClient, Milliseconds, ShortSessionOptions, SessionCaps,
  ConfirmOptions, AuditOptions, EventOptions, KnownDevicesOptions,
} from './core/options.js';
export type { SessionEvents } from './core/sessions-api.js';
export type {
  SessionEvent, SessionEventType, SessionEventBase, SessionCreatedEvent, SessionRotatedEvent, SessionReauthenticatedEvent,
  SessionUpdatedEvent, SessionEndedEvent, SessionEndReason, SessionEventHandler, EventDelivery, ParkedEvent, EventFeedStats,
} from './core/events/types.js';
export type { AuditSessionRow, HistoryQuery } from './core/audit/history.js';
export type { AuditPool, AuditPoolClient, AuditQueryResult, AuditTableOptions } from './core/audit/sql.js';
export type { TieredSessionErrorClass } from './core/errors.js';
export type { StatsSnapshot, Quantiles, RedisOperation } from './core/metrics.js';
export type { TelemetryOptions } from './core/options.js';
export type {
  OpenTelemetryProviders, OtelTracerProvider, OtelMeterProvider, OtelTracer, OtelMeter, OtelHistogram, OtelSpan, OtelObservable,
    OtelBatchResult,
} from './core/observe/otel.js';
export type { PromRegistry, PrometheusSource } from './core/observe/prom-client.js';
/** Register the package's metrics in a prom-client registry (the app's, or prom-client's default). */
export { registerPromClient } from './core/observe/prom-client.js';
export { parseDevice } from './core/device.js';
export { TieredSessionError } from './core/errors.js';
/** Create the audit table and its indexes (idempotent); `audit.migrate` does it at start by default. */
export { migrate as migrateAuditTable } from './core/audit/sql.js';
export * as errors from './core/errors.js';
