import { ERR_INVALID_ARGUMENT, ERR_NOT_FOUND } from './errors.js';
import type { EventFeed } from './events/feed.js';
import type { EventFeedStats, ParkedEvent, SessionEventHandler, SessionEventType } from './events/types.js';
import type { SessionManager } from './manager.js';
import type { StatsSnapshot } from './metrics.js';
import type { SessionInfo } from './session-data.js';
import type { AuditSessionRow, HistoryQuery } from './audit/history.js';

export type { AuditSessionRow, HistoryQuery };

/**
 * What the app can do with sessions outside a request: `app.sessions` on Fastify, the
 * middleware's own methods on Express. This interface is the whole promise; the machinery
 * behind it is internal.
 */
export interface Sessions {
  /** A user's live sessions, most recently active first. */
  list(userId: string): Promise<SessionInfo[]>;
  /**
   * Revoke one session by its public id; with `owner`, only if it belongs to that user.
   * Resolves false for an unknown, malformed or (with `owner`) foreign id.
   */
  revoke(sessionId: string, options?: { owner?: string }): Promise<boolean>;
  /** Revoke every session of a user (log out everywhere, password change, ban), optionally keeping one. */
  revokeAll(userId: string, options?: { keep?: string }): Promise<number>;
  /**
   * Revoke every session of every user under this key prefix (a breach, a forced sign-out of
   * all); sessions signed in while it runs may stay. Resolves to how many it ended.
   */
  revokeEveryone(): Promise<number>;
  /** Counters and gauges. */
  stats(): StatsSnapshot;
  /** The same, as Prometheus text. */
  prometheus(): string;
  /** Redis answers within the command timeout. */
  healthy(): Promise<boolean>;
  /**
   * With `audit` on: a user's sessions live at any moment in [from, to] (epoch ms), most recent
   * first, from PostgreSQL. Rejects with ERR_TIERED_SESSION_NOT_FOUND when audit is off.
   */
  history(userId: string, query?: HistoryQuery): Promise<AuditSessionRow[]>;
  /** The event feed (the `events` option; docs/events.md). Its methods throw ERR_TIERED_SESSION_INVALID_ARGUMENT when it is off. */
  readonly events: SessionEvents;
}

/** Session events, delivered at least once to the handlers of the instances that consume. */
export interface SessionEvents {
  /**
   * Call `handler` with every event of `type` (`'*'`: every type). The first handler starts
   * delivery on this instance. Every instance sharing the key prefix shares the work: register
   * the same handlers on each. A handler that throws (or rejects) is tried again with backoff;
   * after `events.maxAttempts` tries its event is parked.
   */
  on<T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>): void;
  /** Remove a handler `on` registered (delivery goes on: an event no handler takes is acknowledged). */
  off<T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>): void;
  /** Counters and gauges of this instance's delivery. */
  stats(): EventFeedStats;
  /** Events whose handlers kept failing, oldest first (at most `limit`, default 100). */
  parked(options?: { limit?: number }): Promise<ParkedEvent[]>;
  /** Deliver parked events again, their ids unchanged: one by its `parkedId`, or every one. Resolves to how many. */
  replay(parkedId?: string): Promise<number>;
}

function feedOf(m: SessionManager): EventFeed {
  if (m.events === undefined) throw new ERR_INVALID_ARGUMENT('events', 'the event feed is off: set the events option');
  return m.events;
}

function eventsOf(m: SessionManager): SessionEvents {
  return Object.freeze({
    on: <T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>) => feedOf(m).on(type, handler),
    off: <T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>) => feedOf(m).off(type, handler),
    stats: () => feedOf(m).stats(),
    parked: (options: { limit?: number } = {}) => feedOf(m).parked(options.limit),
    replay: (parkedId?: string) => feedOf(m).replay(parkedId),
  });
}

const managers = new WeakMap<object, SessionManager>();

/** The public face of a manager: bound methods only, nothing else reachable. */
export function publicSessions(m: SessionManager): Sessions {
  const s: Sessions = Object.freeze({
    list: (userId: string) => m.list(userId),
    revoke: (sessionId: string, options: { owner?: string } = {}) => m.revoke(sessionId, options.owner),
    revokeAll: (userId: string, options: { keep?: string } = {}) => m.revokeAll(userId, options),
    revokeEveryone: () => m.revokeEveryone(),
    stats: () => m.stats(),
    prometheus: () => m.prometheus(),
    healthy: () => m.healthy(),
    history: (userId: string, query: HistoryQuery = {}) => m.history(userId, query) ?? Promise.reject(new ERR_NOT_FOUND()),
    events: eventsOf(m),
  });
  managers.set(s, m);
  return s;
}

/** The manager behind a public face (the test suite's way in; not exported by the package). */
export function managerOf(s: object): SessionManager {
  const m = managers.get(s);
  if (m === undefined) throw new ERR_INVALID_ARGUMENT('managerOf', 'not a tiered-session Sessions object');
  return m;
}

/** Register another object (an Express middleware) as a face of the same manager. */
export function registerFace(face: object, m: SessionManager): void {
  managers.set(face, m);
}
