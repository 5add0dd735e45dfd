import type { IncomingHttpHeaders } from 'node:http';
import { setCookieLine } from './cookie.js';
import { isCrossSite } from './cross-site.js';
import { DeviceCookies } from './known-devices.js';
import { parseDevice, type DeviceInfo } from './device.js';
import { ERR_BAD_BODY, ERR_BAD_QUERY, ERR_INVALID_ARGUMENT, ERR_NO_SESSION, ERR_NOT_FOUND,
  ERR_REAUTHENTICATION_REQUIRED } from './errors.js';
import { describe } from './validate.js';
import type { Resolving } from './resolving.js';
import type { SessionManager } from './manager.js';
import type { Metrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { Session, SessionData } from './session-data.js';
import { readCookie, tokenAt } from './token.js';

/** What a flow reads of a request: plain values every framework has. */
export interface RequestFacts {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The client address as the framework determined it (its proxy trust settings apply). */
  readonly ip: string | undefined;
}

/** Options of `signIn()` on both adapters. */
export interface SignInOptions {
  /** Initial session data (plain JSON, at most `maxDataBytes`). */
  data?: SessionData;
  /**
   * `false`: "remember me" unticked. The cookie is a browser-session cookie (no Max-Age: it ends
   * with the browser) and the session gets the `shortSession` lifetimes. @default true
   */
  remember?: boolean;
}

/** What signing in answers: the new session and the device parsed from its User-Agent. */
export interface SignedIn extends Session {
  /** The device parsed from the request's User-Agent. */
  readonly device: DeviceInfo;
}

/** Headers every response of the device routes carries, errors included. */
export const ROUTE_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'cache-control': 'no-store' });

/** A guard's maxAge, checked when the guard is made (at route definition, not per request). */
export function guardMaxAge(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new ERR_INVALID_ARGUMENT('requireRecentAuthentication(maxAgeMs)', `expected a whole number of milliseconds, got ${describe(v)}`);
  }
  return v;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Device list entry as the routes answer it (a fixed allow-list of fields). */
export interface ListedSession {
  id: string;
  current: boolean;
  device: DeviceInfo;
  ip: string | null;
  country: string | null;
  createdAt: string;
  lastActiveAt: string;
  expiresAt: string;
  remembered: boolean;
  /** Signed in from a device new to the user (knownDevices; false with it off). */
  newDevice: boolean;
}

/**
 * The request-level flows and the device routes' semantics, on plain inputs: an adapter reads
 * the request into `RequestFacts`, calls one of these, and writes the status, `Set-Cookie` line
 * and JSON body it is given. Nothing here knows Fastify or Express, and nothing about these
 * behaviours lives in an adapter.
 */
export class SessionFlows {
  readonly manager: SessionManager;
  /** The manager's reads: the hot path calls them directly. */
  readonly #resolving: Resolving;
  readonly #o: ResolvedOptions;
  readonly cookieName: string;
  /** The manager's counters (the sampling countdown lives there). */
  readonly #metrics: Metrics;
  /** The device cookie (knownDevices on), else undefined. */
  readonly #devices: DeviceCookies | undefined;

  constructor(o: ResolvedOptions, manager: SessionManager) {
    this.#o = o;
    this.manager = manager;
    this.#resolving = manager.resolving;
    this.#metrics = manager.metrics;
    this.cookieName = o.cookie.name;
    this.#devices = o.knownDevices === undefined ? undefined : new DeviceCookies(o.knownDevices, o.secrets, o.cookie);
  }

  /** The session cookie's value when there is exactly one, else undefined. */
  tokenOf(headers: IncomingHttpHeaders): string | undefined {
    const header = headers.cookie;
    if (header === undefined) return undefined;
    const token = readCookie(header, this.cookieName);
    return typeof token === 'string' ? token : undefined;
  }

  /**
   * The hot path: the session a Cookie header carries. Synchronous on an L1 hit; a promise on a
   * miss; null without I/O for a header with no usable session cookie (absent, duplicated,
   * malformed).
   */
  resolveHeader(header: string): Session | null | Promise<Session | null> {
    const at = tokenAt(header, this.cookieName);
    if (at < 0) return null;
    // One resolve in `sampleEvery` is timed: the others pay a decrement, and read no clock.
    if (--this.#metrics.countdown === 0) return this.#timed(header, at);
    return this.#resolving.resolveAt(header, at);
  }

  /** resolveHeader() of a sampled request: its duration goes to `tiered_session_resolve_seconds`. */
  #timed(header: string, at: number): Session | null | Promise<Session | null> {
    const m = this.#metrics;
    m.countdown = m.sampleEvery;
    const t0 = performance.now();
    const r = this.#resolving.resolveAt(header, at);
    if (!(r instanceof Promise)) {
      m.resolveTime.observe((performance.now() - t0) / 1000);
      return r;
    }
    const took = () => m.resolveTime.observe((performance.now() - t0) / 1000);
    return r.then((s) => { took(); return s; }, (err: unknown) => { took(); throw err; });
  }

  /**
   * The hot path as both adapters run it: resolve the Cookie header into `into.session`, then
   * call `done` (synchronously on an L1 hit or without a usable cookie; with the error when
   * Redis fails, which the framework answers 503).
   */
  resolveInto(header: string | undefined, into: { session: Session | null }, done: (err?: Error) => void): void {
    if (header === undefined) return done();
    const r = this.resolveHeader(header);
    if (r === null) return done();
    if (!(r instanceof Promise)) {
      into.session = r;
      return done();
    }
    r.then((s) => {
      into.session = s;
      done();
    }, done);
  }

  /** The request's session from its cookie (for a route that did not resolve it on the way in). */
  async sessionOf(headers: IncomingHttpHeaders): Promise<Session | null> {
    const token = this.tokenOf(headers);
    return token === undefined ? null : this.manager.resolve(token);
  }

  isCrossSite(r: RequestFacts): boolean {
    const h = r.headers;
    return isCrossSite({
      method: r.method,
      origin: one(h.origin),
      secFetchSite: one(h['sec-fetch-site']),
      host: one(h.host) ?? one(h[':authority']),
    }, this.#o.allowedOrigins);
  }

  #country(headers: IncomingHttpHeaders): string | null {
    const name = this.#o.countryHeader;
    if (name === undefined) return null;
    const v = headers[name];
    return typeof v === 'string' && /^[A-Za-z]{2}$/.test(v) && !/^(xx|t1)$/i.test(v) ? v.toUpperCase() : null;
  }

  /**
   * Sign `userId` in: a new session and its cookie, and with knownDevices the device cookie
   * (`deviceCookie`, set after the session's). Whatever session the request arrived with ends
   * here, whoever it belonged to (fixation). `current` is the session the adapter resolved, or
   * undefined when it did not resolve one (a route that opted out): then the cookie is read now.
   * `takeover` (a legacy session carried over): the device is recorded, never marked new.
   */
  async signIn(r: RequestFacts, current: Session | null | undefined, userId: string,
    options: SignInOptions = {}, takeover = false): Promise<{ session: SignedIn; setCookie: string; deviceCookie: string | undefined }> {
    if (typeof options !== 'object' || options === null) throw new ERR_INVALID_ARGUMENT('signIn',
      `expected an options object, got ${describe(options)}`);
    if (options.remember !== undefined && typeof options.remember !== 'boolean') {
      throw new ERR_INVALID_ARGUMENT('signIn', `option "remember" must be a boolean, got ${describe(options.remember)}`);
    }
    const ending = this.#endCarried(r, current, 'replaced');
    if (ending !== undefined) await ending;
    const device = parseDevice(one(r.headers['user-agent']), this.#o.maxUserAgentLength);
    const known = this.#devices?.of(one(r.headers.cookie));
    const { session, token } = await this.manager.create(userId, {
      device,
      ip: r.ip ?? null,
      country: this.#country(r.headers),
      data: options.data,
      remember: options.remember,
      knownDevice: known === undefined ? undefined : { member: known.member, known: takeover },
    });
    // Field by field: a spread of a frozen object takes V8's slow path (~1 µs a sign-in).
    const { id, data, createdAt, absoluteExpiresAt, remembered, authenticatedAt, newDevice } = session;
    return {
      session: Object.freeze({ id, userId, data, createdAt, absoluteExpiresAt, remembered, authenticatedAt, newDevice, device }),
      setCookie: this.#cookieFor(session, token, session.createdAt),
      deviceCookie: known?.setCookie,
    };
  }

  /** Revoke the request's session (if any); the answer's cookie line clears the cookie. */
  async signOut(r: RequestFacts, current: Session | null | undefined): Promise<string> {
    await this.#endCarried(r, current, 'sign-out');
    return this.clearCookie();
  }

  /**
   * End the request's session: the one it resolved (or signed in earlier in the same request)
   * by id; else the one its cookie's token opens, checked against the secret on the primary.
   * A token whose session the request did not find may still sit in the stash of a sign-in
   * being undone (its cap evicted it): the check drops that stash, so the undo cannot bring
   * back a session this request was told is signed out.
   */
  #endCarried(r: RequestFacts, current: Session | null | undefined, reason: 'replaced' | 'sign-out'): Promise<unknown> | undefined {
    if (current != null) return this.manager.revoke(current.id, undefined, reason);
    const token = this.tokenOf(r.headers);
    // Nothing to end (a first sign-in): undefined, so the caller does not wait a turn for nothing.
    return token === undefined ? undefined : this.manager.revokeToken(token, reason);
  }

  clearCookie(): string { return setCookieLine(this.#o.cookie, '', 0); }

  /** A remembered session's cookie lasts its remaining absolute lifetime; any other ends with the browser. */
  #cookieFor(session: Session, token: string, now: number): string {
    return setCookieLine(this.#o.cookie, token, session.remembered ? session.absoluteExpiresAt - now : null);
  }

  /**
   * The user re-proved their credentials: a new token (the old one stops working everywhere) and
   * `authenticatedAt` moves to now.
   */
  async confirmAuthentication(current: Session | null): Promise<{ session: Session; setCookie: string }> {
    if (current === null) throw new ERR_NO_SESSION();
    const { session, token } = await this.manager.reauthenticate(current);
    return { session, setCookie: this.#cookieFor(session, token, this.#o.now()) };
  }

  /**
   * The recent-authentication rule: no session → 401; an authentication older than `maxAgeMs` →
   * 403 REAUTHENTICATION_REQUIRED (the app prompts for the password, confirms, and retries).
   */
  checkRecentAuthentication(current: Session | null, maxAgeMs: number): void {
    if (current === null) throw new ERR_NO_SESSION();
    if (this.#o.now() - current.authenticatedAt > maxAgeMs) {
      throw Object.assign(new ERR_REAUTHENTICATION_REQUIRED(maxAgeMs), { maxAge: maxAgeMs });
    }
  }

  /**
   * With `reauthenticateToRevoke`, ending another session needs a recent authentication (ASVS
   * 5.0 7.5.2): whoever holds a stolen cookie cannot sign the owner's other devices out without
   * the password. Signing out the caller's own session never asks.
   */
  #recentToRevoke(current: Session): void {
    if (this.#o.reauthenticateToRevoke > 0) this.checkRecentAuthentication(current, this.#o.reauthenticateToRevoke);
  }

  /** A new secret for the current session (privilege change); the old token stops working. */
  async rotate(current: Session | null): Promise<{ session: Session; setCookie: string }> {
    if (current === null) throw new ERR_NO_SESSION();
    const token = await this.manager.rotate(current.id);
    return { session: current, setCookie: this.#cookieFor(current, token, this.#o.now()) };
  }

  async update(current: Session | null, data: SessionData): Promise<Session> {
    if (current === null) throw new ERR_NO_SESSION();
    return this.manager.update(current, data);
  }

  // ---- the device routes -----------------------------------------------------------------

  /** Whether the history route exists (audit on). */
  get historyEnabled(): boolean { return this.#o.audit !== undefined; }

  /**
   * GET /sessions/history?days=N: the caller's own sessions live at any moment in the last N
   * days (default 30, at most the retention), most recent first. 404 when audit is off.
   */
  async history(current: Session, days: unknown): Promise<{ sessions: HistoryEntry[] }> {
    const audit = this.#o.audit;
    if (audit === undefined) throw new ERR_NOT_FOUND();
    let n = 30;
    if (days !== undefined) {
      n = typeof days === 'string' && /^\d{1,5}$/.test(days) ? Number(days) : NaN;
      if (!(n >= 1 && n <= audit.retentionDays)) throw new ERR_BAD_QUERY(`days must be a whole number from 1 to ${audit.retentionDays}`);
    }
    const now = this.#o.now();
    const rows = (await this.manager.history(current.userId, { from: now - n * 24 * 3600_000, to: now })) ?? [];
    return {
      sessions: rows.map((r) => ({
        id: r.id,
        current: r.id === current.id,
        device: { name: r.device.name ?? 'Unknown device', browser: r.device.browser, os: r.device.os, type: r.device.type },
        ip: r.ip,
        country: r.country,
        createdAt: isoOrNull(r.createdAt),
        lastActiveAt: isoOrNull(r.lastActiveAt),
        expiresAt: isoOrNull(r.expiresAt),
        endedAt: isoOrNull(r.endedAt),
        endReason: r.endReason,
      })),
    };
  }

  /** GET /sessions: the caller's live sessions, current first, then most recently active. */
  async list(current: Session): Promise<{ sessions: ListedSession[] }> {
    const list = await this.manager.list(current.userId);
    const mine = list.findIndex((s) => s.id === current.id);
    if (mine > 0) list.unshift(...list.splice(mine, 1));
    return {
      sessions: list.map((s) => ({
        id: s.id,
        current: s.id === current.id,
        device: { name: s.device.name, browser: s.device.browser, os: s.device.os, type: s.device.type },
        ip: s.ip,
        country: s.country,
        createdAt: iso(s.createdAt),
        lastActiveAt: iso(s.lastActiveAt),
        expiresAt: iso(s.expiresAt),
        remembered: s.remembered,
        newDevice: s.newDevice,
      })),
    };
  }

  /**
   * DELETE /sessions/:id → 204. Unknown, foreign and malformed ids are one answer (404): no
   * oracle, and no Redis call for an id that cannot exist or carries another user's tag.
   * Revoking the current session also clears the cookie.
   */
  async revoke(current: Session, id: unknown): Promise<{ setCookie: string | undefined }> {
    const reason = id === current.id ? 'sign-out' : 'revoked';
    if (reason === 'revoked') this.#recentToRevoke(current);
    if (typeof id !== 'string' || !(await this.manager.revoke(id, current.userId, reason))) throw new ERR_NOT_FOUND();
    return { setCookie: id === current.id ? this.clearCookie() : undefined };
  }

  /**
   * POST /sessions/logout-everywhere → 200 { revoked }. Body: nothing, or exactly `{ keepCurrent?: boolean }`.
   * Without keepCurrent the caller's own session goes too, and its cookie is cleared.
   */
  async everywhere(current: Session, body: unknown): Promise<{ body: { revoked: number }; setCookie: string | undefined }> {
    let keepCurrent = false;
    if (body !== undefined && body !== null && body !== '') {
      if (typeof body !== 'object' || Array.isArray(body)) throw new ERR_BAD_BODY();
      // Only `keepCurrent`: any other key (an own "__proto__" or "constructor" that a plain
      // JSON.parse leaves behind, a typo) is refused, whichever body parser ran.
      const k = (body as { keepCurrent?: unknown }).keepCurrent;
      if (Object.keys(body).some((x) => x !== 'keepCurrent') || (k !== undefined && typeof k !== 'boolean')) throw new ERR_BAD_BODY();
      keepCurrent = k === true;
    }
    this.#recentToRevoke(current);
    const revoked = await this.manager.revokeAll(current.userId, keepCurrent ? { keep: current.id } : {});
    return { body: { revoked }, setCookie: keepCurrent ? undefined : this.clearCookie() };
  }
}

/** A header's single value (a repeated header is ambiguous: treated as absent). */
function one(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A row of the caller's history as the route answers it. */
export interface HistoryEntry extends Omit<ListedSession, 'remembered' | 'newDevice' | 'createdAt' | 'lastActiveAt' | 'expiresAt'> {
  createdAt: string | null;
  lastActiveAt: string | null;
  expiresAt: string | null;
  endedAt: string | null;
  endReason: string | null;
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
