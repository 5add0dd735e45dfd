import { createHash } from 'node:crypto';
import type { SessionFlows, RequestFacts } from './flows.js';
import type { Logger } from './log.js';
import { describe, fail, isPlainObject } from './validate.js';
import type { Session } from './session-data.js';
import { readCookie } from './token.js';

/**
 * Moving signed-in users over from another session library (express-session, @fastify/session)
 * without a new sign-in. The old library stays mounted during the cutover and loads its session
 * as before; on a request that carries its cookie and none of ours, `userId` reads the user from
 * it, the user is signed in here (our cookie is set), and `end` ends the old session.
 */
export interface LegacyOptions<Req> {
  /**
   * The old library's cookie: its name (express-session: `'connect.sid'`, @fastify/session:
   * `'sessionId'`), or `{ name, path, domain }` when it was set with a path or domain (to clear it).
   */
  cookie: string | {
    /** The cookie's name. */
    name: string;
    /** The `Path` it was set with. @default '/' */
    path?: string;
    /** The `Domain` it was set with, if any. */
    domain?: string;
  };
  /**
   * The user the old session belongs to, read from the old library's session on the request
   * (e.g. `req.session.userId`); undefined or null when the old session has no signed-in user.
   * Only a session the old library loaded from its store (its signature checked) may vouch.
   */
  userId(req: Req): string | undefined | null | Promise<string | undefined | null>;
  /** End the old session: destroy it in the old store (e.g. `req.session.destroy()`). */
  end(req: Req): void | Promise<void>;
}

export interface ResolvedLegacy<Req> {
  readonly name: string;
  /** The Set-Cookie line that clears the old cookie. */
  readonly clear: string;
  readonly userId: LegacyOptions<Req>['userId'];
  readonly end: LegacyOptions<Req>['end'];
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;

/** Validate the `legacy` option (undefined when absent); errors name the option. */
export function resolveLegacy<Req>(v: unknown): ResolvedLegacy<Req> | undefined {
  if (v === undefined) return undefined;
  if (!isPlainObject(v)) throw fail('legacy', `expected { cookie, userId, end }, got ${describe(v)}`);
  for (const k of Object.keys(v)) if (k !== 'cookie' && k !== 'userId' && k !== 'end') throw fail(`legacy.${k}`, 'unknown option');
  const c = typeof v.cookie === 'string' ? { name: v.cookie } : v.cookie;
  if (!isPlainObject(c)) throw fail('legacy.cookie',
    `expected the old cookie's name (e.g. "connect.sid") or { name, path, domain }, got ${describe(v.cookie)}`);
  for (const k of Object.keys(c)) if (k !== 'name' && k !== 'path' && k !== 'domain') throw fail(`legacy.cookie.${k}`, 'unknown option');
  const { name, path = '/', domain } = c as { name: unknown; path?: unknown; domain?: unknown };
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) throw fail('legacy.cookie.name',
    `expected a cookie name, got ${describe(name)}`);
  if (typeof path !== 'string' || !/^\/[\x21-\x3a\x3c-\x7e]*$/.test(path)) throw fail('legacy.cookie.path',
    `expected a path starting with "/", got ${describe(path)}`);
  if (domain !== undefined && (typeof domain !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(domain))) {
    throw fail('legacy.cookie.domain', `expected a host name, got ${describe(domain)}`);
  }
  for (const k of ['userId', 'end'] as const) {
    if (typeof v[k] !== 'function') throw fail(`legacy.${k}`, `expected a function (req) => …, got ${describe(v[k])}`);
  }
  return Object.freeze({
    name,
    clear: `${name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=${path}${domain === undefined ? '' : `; Domain=${domain}`}`,
    userId: v.userId as LegacyOptions<Req>['userId'],
    end: v.end as LegacyOptions<Req>['end'],
  });
}

/** What a takeover gives the adapter: the new session, and the Set-Cookie lines to append. */
export interface TakenOver {
  readonly session: Session;
  readonly setCookies: readonly string[];
}

/** How long requests with the same old cookie share a takeover's result on this instance. */
const SHARE_MS = 10_000;

/** How long an old cookie stays claimed by the instance taking it over (across instances). */
const CLAIM_MS = 60_000;

/**
 * The takeover, framework-neutral: the adapter calls `run` on a request that resolved no session
 * of ours. At most one session is made per old cookie: requests on this instance within
 * SHARE_MS of the first share its result (and get the same cookie), and a claim in Redis keeps
 * other instances out (a request there is answered without a session). A failure of the old library
 * (its store, the app's callbacks) is logged and answered as no session, never as an error;
 * a failure of our own Redis fails as every other request does (503).
 */
export class LegacyTakeover<Req> {
  readonly #l: ResolvedLegacy<Req>;
  readonly #flows: SessionFlows;
  readonly #log: Logger;
  /** Takeovers by old cookie (hashed): in flight, or done within SHARE_MS (`done` set). */
  readonly #recent = new Map<string, { readonly p: Promise<TakenOver | null>; done?: TakenOver }>();

  constructor(l: ResolvedLegacy<Req>, flows: SessionFlows, log: Logger) {
    this.#l = l;
    this.#flows = flows;
    this.#log = log;
  }

  /**
   * Both adapters' resolve step with a takeover: the cookie resolved into `into`, then, when it
   * held no session of ours, the takeover (its cookie lines through `setCookie`). `done` as the
   * framework's hook callback.
   */
  resolveInto(r: RequestFacts, req: Req, into: { session: Session | null }, setCookie: (line: string) => void, done: (err?: Error) =>
    void): void {
    this.#flows.resolveInto(r.headers.cookie, into, (err?: Error) => {
      const t = err === undefined && into.session === null ? this.run(r, req) : null;
      if (t === null) return done(err);
      t.then((taken) => {
        if (taken !== null) {
          into.session = taken.session;
          for (const line of taken.setCookies) setCookie(line);
        }
        done();
      }, done);
    });
  }

  /** Null without I/O unless the request carries the old cookie and none of ours. */
  run(r: RequestFacts, req: Req): Promise<TakenOver | null> | null {
    const header = r.headers.cookie;
    if (header === undefined || readCookie(header, this.#flows.cookieName) !== undefined) return null;
    const old = readCookie(header, this.#l.name);
    if (typeof old !== 'string' || old === '') return null;
    const key = createHash('sha256').update(old).digest('base64url');
    const seen = this.#recent.get(key);
    if (seen !== undefined) return seen.done === undefined ? seen.p : this.#again(seen.done);
    const entry: { p: Promise<TakenOver | null>; done?: TakenOver } = { p: this.#takeOver(r, req, key) };
    this.#recent.set(key, entry);
    // A success is kept a little while: a request the browser sent with the old cookie before the
    // answer with the new one arrived gets the same session. Nothing else is kept.
    const forget = () => this.#recent.delete(key);
    entry.p.then((taken) => {
      if (taken === null) return forget();
      entry.done = taken;
      setTimeout(forget, SHARE_MS).unref();
    }, forget);
    return entry.p;
  }

  /** A finished takeover's session again, if it is still live (not signed out meanwhile). */
  async #again(done: TakenOver): Promise<TakenOver | null> {
    const line = done.setCookies[0]!;
    const session = await this.#flows.sessionOf({ cookie: line.slice(0, line.indexOf(';')) });
    return session === null ? null : { session, setCookies: done.setCookies };
  }

  async #takeOver(r: RequestFacts, req: Req, key: string): Promise<TakenOver | null> {
    let userId: unknown;
    try {
      userId = await this.#l.userId(req);
    } catch (err) {
      this.#log.warn({ err }, 'tiered-session: legacy.userId failed; the request has no session');
      return null;
    }
    if (userId === undefined || userId === null) return null;
    if (typeof userId !== 'string' || userId === '') {
      this.#log.warn({}, `tiered-session: legacy.userId returned ${describe(userId)}, not a user id; the request has no session`);
      return null;
    }
    if (!(await this.#flows.manager.claim(key, CLAIM_MS))) return null;
    const { session, setCookie, deviceCookie } = await this.#flows.signIn(r, null, userId, {}, true);
    try {
      await this.#l.end(req);
    } catch (err) {
      this.#log.warn({ err }, 'tiered-session: legacy.end failed; the old session may still be in its store');
    }
    return { session, setCookies: deviceCookie === undefined ? [setCookie, this.#l.clear] : [setCookie, this.#l.clear, deviceCookie] };
  }
}
