// The event feed's public types, and how a stream entry reads as one of them.
//
// A feed entry's fields (all strings; times are epoch ms in decimal; scripts.ts writes them):
//   t  type: c created, r rotated, q re-authenticated, u updated, e ended
//   s  public id   u  user id   w  when (the change's time; for an expiry, the session's expiry)
//   c: d device record, i ip, k country ('' = none), x absolute deadline, p expiry,
//      m '0' when not remembered, v '1' when signed in from a device new to the user
//   r, q: n the session's rotation count after this change
//   e: y reason
//   K  the idempotency key an event carried before it was parked and replayed (absent: its own)
import { decodeDevice } from '../session-data.js';
import type { DeviceInfo } from '../device.js';
import { isPublicId } from '../token.js';

/** Why a session ended. */
export type SessionEndReason = 'sign-out' | 'revoked' | 'everywhere' | 'cap' | 'replaced' | 'expired';

/** What every event carries. Never a token. Times are epoch ms. */
export interface SessionEventBase {
  /**
   * The event's idempotency key: the same on every delivery of this event (a retry, a takeover
   * by another instance, a replay after it was parked), different for every other event.
   */
  readonly id: string;
  /** The session's public id (as in the device list). */
  readonly sessionId: string;
  /** The user the session belongs to. */
  readonly userId: string;
  /** When the change was made (an expiry: when the session expired). */
  readonly at: number;
}

/** A sign-in. */
export interface SessionCreatedEvent extends SessionEventBase {
  /** The kind of event. */
  readonly type: 'created';
  /** The device parsed from the User-Agent at sign-in. */
  readonly device: DeviceInfo;
  /** The client address at sign-in (null when unknown). */
  readonly ip: string | null;
  /** The country from the `countryHeader` at sign-in, or null. */
  readonly country: string | null;
  /** False for a sign-in without "remember me". */
  readonly remembered: boolean;
  /** Signed in from a device not seen for this user (the `knownDevices` option; false without it). */
  readonly newDevice: boolean;
  /** When it expires unless used (idle timeout). */
  readonly expiresAt: number;
  /** When it ends however much it is used (absolute timeout). */
  readonly absoluteExpiresAt: number;
}

/** The session's token was replaced by a new one (`session.rotate()`). */
export interface SessionRotatedEvent extends SessionEventBase {
  /** The kind of event. */
  readonly type: 'rotated';
  /** How often the session's token was replaced, this time included. */
  readonly rotations: number;
}

/** The user proved their credentials again (`confirmAuthentication()`; the token was replaced too). */
export interface SessionReauthenticatedEvent extends SessionEventBase {
  /** The kind of event. */
  readonly type: 'reauthenticated';
  /** How often the session's token was replaced, this time included. */
  readonly rotations: number;
}

/** The session's data changed. */
export interface SessionUpdatedEvent extends SessionEventBase {
  /** The kind of event. */
  readonly type: 'updated';
}

/** The session ended. */
export interface SessionEndedEvent extends SessionEventBase {
  /** The kind of event. */
  readonly type: 'ended';
  /** Signed out, revoked by id, log out everywhere, evicted by a cap, replaced by a sign-in over its cookie, or expired. */
  readonly reason: SessionEndReason;
}

/** Any session event; `type` tells which. */
export type SessionEvent =
  | SessionCreatedEvent | SessionRotatedEvent | SessionReauthenticatedEvent | SessionUpdatedEvent | SessionEndedEvent;

/** The kinds of session event. */
export type SessionEventType = SessionEvent['type'];

/** What a handler hears besides the event. */
export interface EventDelivery {
  /** 1 on the first try; more on a retry on this instance after its handlers failed. */
  readonly attempt: number;
}

/** A handler of one type of event, or of every type (`'*'`). It may return a promise; a throw or a rejection is retried. */
export type SessionEventHandler<T extends SessionEventType | '*'> =
  (event: T extends SessionEventType ? Extract<SessionEvent, { type: T }> : SessionEvent, delivery: EventDelivery) => unknown;

/** An event whose handlers kept failing, set aside until an operator replays it. */
export interface ParkedEvent {
  /** Pass it to `replay()`. */
  readonly parkedId: string;
  /** The event, as its handlers saw it (its `id` unchanged). */
  readonly event: SessionEvent;
  /** The last failure's message. */
  readonly error: string;
  /** How often its handlers were tried. */
  readonly attempts: number;
  /** When it was parked (epoch ms). */
  readonly parkedAt: number;
}

/** The feed's counters and gauges on this instance. */
export interface EventFeedStats {
  /** Consuming: events are on, consume is not false, and a handler was registered. */
  readonly running: boolean;
  /** Redis answered the feed's last calls. */
  readonly redisUp: boolean;
  /** Events whose handlers all returned, acknowledged. */
  readonly delivered: number;
  /** Tries that failed and were scheduled again. */
  readonly retried: number;
  /** Events set aside after `maxAttempts` failed tries. */
  readonly parked: number;
  /** Entries that were not well-formed events (acknowledged and dropped). */
  readonly invalid: number;
  /** Pending entries found trimmed from their stream before being delivered. */
  readonly lost: number;
  /** Entries taken over from an instance that stopped. */
  readonly claimed: number;
  /** Sessions the expiry sweep found expired (their `ended` events). */
  readonly expired: number;
  /** Events waiting in the streams (read every few seconds). */
  readonly pending: number;
  /** Age in seconds of the oldest event not yet delivered (0: none). */
  readonly lagSeconds: number;
}

const REASONS: ReadonlySet<string> = new Set(['sign-out', 'revoked', 'everywhere', 'cap', 'replaced', 'expired']);

function time(v: string | undefined): number | undefined {
  return v !== undefined && /^\d{1,16}$/.test(v) ? Number(v) : undefined;
}

const orNull = (v: string | undefined) => (v === undefined || v === '' ? null : v);

/** Field/value pairs as a record. */
export function fieldsOf(list: readonly string[]): Record<string, string> {
  const f: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < list.length; i += 2) f[list[i]] = list[i + 1];
  return f;
}

/** The event an entry of a bucket's stream holds, or null when it is not a well-formed one. */
export function parseSessionEvent(f: Record<string, string>, bucket: string, entryId: string): SessionEvent | null {
  const sessionId = f.s;
  const userId = f.u;
  const at = time(f.w);
  if (!isPublicId(sessionId) || !userId || at === undefined) return null;
  const base = { id: f.K ?? `${bucket}.${entryId}`, sessionId, userId, at };
  switch (f.t) {
    case 'c': {
      const x = time(f.x);
      const p = time(f.p);
      if (x === undefined || p === undefined) return null;
      return {
        type: 'created', ...base, device: decodeDevice(f.d), ip: orNull(f.i), country: orNull(f.k),
        remembered: f.m !== '0', newDevice: f.v === '1', expiresAt: p, absoluteExpiresAt: x,
      };
    }
    case 'r':
    case 'q': {
      const n = f.n !== undefined && /^\d{1,9}$/.test(f.n) ? Number(f.n) : 0;
      if (n < 1) return null;
      return { type: f.t === 'r' ? 'rotated' : 'reauthenticated', ...base, rotations: n };
    }
    case 'u':
      return { type: 'updated', ...base };
    case 'e':
      return REASONS.has(f.y) ? { type: 'ended', ...base, reason: f.y as SessionEndReason } : null;
    default:
      return null;
  }
}
