import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ERR_CROSS_SITE, ERR_NO_SESSION, ERR_NOT_MOUNTED } from '../core/errors.js';
import { SessionFlows, guardMaxAge, type RequestFacts, type SignInOptions, type SignedIn } from '../core/flows.js';
import { LegacyTakeover, resolveLegacy, type LegacyOptions } from '../core/legacy.js';
import { consoleLogger, type Logger } from '../core/log.js';
import { SessionManager } from '../core/manager.js';
import type { TieredSessionOptions } from '../core/options.js';
import { resolveOptions } from '../core/resolve-options.js';
import { describe, fail } from '../core/validate.js';
import type { Session, SessionData } from '../core/session-data.js';
import { publicSessions, registerFace, type Sessions } from '../core/sessions-api.js';
import { deviceRoutes } from './routes.js';

/** The Express middleware's options: the shared ones, plus Express's way to opt requests out. */
export interface ExpressSessionOptions extends TieredSessionOptions {
  /**
   * Requests for which the middleware reads no cookie and never reaches Redis (public pages,
   * assets, health checks): `req.session` is null there, and `req.signIn()` / `req.signOut()`
   * still find the session they replace. Routes mounted before the middleware skip it too.
   */
  skip?: (req: Request) => boolean;
  /** Where the middleware logs (pino's call shape; `console` when absent). */
  logger?: Logger;
  /** Sign in the users of express-session without a new sign-in (docs/migrating.md). */
  legacy?: LegacyOptions<Request>;
}

/** `app.use(sessions)`: the middleware, with the guards, the device routes and the app-level API. */
export interface TieredSessionMiddleware extends RequestHandler, Sessions {
  /** The device routes, to mount where you like: `app.use('/sessions', sessions.routes)`. */
  readonly routes: RequestHandler;
  /** Route middleware: `next(err)` with a 401 error when the request has no session. */
  readonly requireSession: RequestHandler;
  /** Route middleware: `next(err)` with a 403 error for a cross-site state change (use it on your login). */
  readonly refuseCrossSite: RequestHandler;
  /**
   * Route middleware for sensitive actions: `next(err)` with 401 without a session, 403
   * `…_REAUTHENTICATION_REQUIRED` when the user last proved their credentials more than
   * `maxAgeMs` ago (re-check the password, call `req.confirmAuthentication()`, retry).
   */
  requireRecentAuthentication(maxAgeMs: number): RequestHandler;
  /** Resolves once the revocation channel has started (the local cache fills once it is confirmed). */
  ready(): Promise<void>;
  /** Flush pending writes and close the subscriber. The app's own Redis client is left open. */
  close(): Promise<void>;
}

declare global {
  namespace Express {
    interface Request {
      /** The resolved session, or null (set by the tiered-session middleware). */
      session: import('../core/session-data.js').Session | null;
      /** Sign `userId` in: a new session and cookie; any session the request carried is revoked. */
      signIn(userId: string, options?: import('../core/flows.js').SignInOptions): Promise<import('../core/flows.js').SignedIn>;
      /** Revoke the current session (if any) and clear the cookie. */
      signOut(): Promise<void>;
      /** New token for the current session (privilege change); the old token stops working. */
      rotateSession(): Promise<import('../core/session-data.js').Session>;
      /** Replace the current session's data (stored in Redis first). */
      updateSession(data: import('../core/session-data.js').SessionData): Promise<import('../core/session-data.js').Session>;
      /**
       * The user just re-proved their credentials: the session gets a new token (set as the cookie;
       * the old one stops working everywhere) and `authenticatedAt` becomes now.
       */
      confirmAuthentication(): Promise<import('../core/session-data.js').Session>;
    }
  }
}

/**
 * What the middleware knows of one request: the flows of the middleware that resolved it, its
 * session, and whether it was skipped (its cookie not read). Kept beside the request, not on it:
 * Express re-parents every request onto the app's prototype (`Object.setPrototypeOf`), and V8
 * then builds a new hidden class for each property added to it, which costs far more per
 * request than a WeakMap entry (benchmarks/README.md). `req.session` is an accessor on the app's
 * request prototype that reads the slot.
 */
class Slot {
  session: Session | null = null;
  readonly flows: SessionFlows;
  /**
   * @param below the slot of a middleware that ran earlier on the same request (a second realm
   *   mounted on an overlapping path): its guards and routes still find their own session.
   */
  constructor(readonly owner: Owner, public skipped: boolean, readonly below: Slot | undefined) { this.flows = owner.flows; }
}
/** The request's latest slot: what `req.session` and the request helpers use. */
const slots = new WeakMap<object, Slot>();

/**
 * One middleware instance. Its guards and routes act only on the session it resolved itself,
 * never on `req.session`, which a middleware running later may replace (express-session, or a
 * second realm on an overlapping path); that replacement is logged once per instance.
 */
class Owner {
  #warned = false;
  constructor(readonly flows: SessionFlows, readonly keyPrefix: string, readonly log: Logger) {}

  /** This instance's slot on `req`, or undefined when it did not run for the request. */
  slotOf(req: object): Slot | undefined {
    for (let s = slots.get(req); s !== undefined; s = s.below) if (s.owner === this) return s;
    return undefined;
  }

  /** The session this instance resolved for `req` (null when none, or when it did not run). */
  sessionOf(req: object): Session | null {
    return this.slotOf(req)?.session ?? null;
  }

  overwritten(by: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.log.warn({ keyPrefix: this.keyPrefix },
      `tiered-session: req.session was replaced by ${by}, after the tiered-session middleware (keyPrefix ` +
        `${JSON.stringify(this.keyPrefix)}) resolved it. ` +
      'Its guards and routes keep acting on the session it resolved; route handlers that read req.session get the other value. ' +
      'Mount one session middleware per path (said once)');
  }
}

const facts = (req: Request): RequestFacts => ({ method: req.method, headers: req.headers, ip: req.ip });

function slotOf(req: Request): Slot {
  const s = slots.get(req);
  if (s === undefined) throw new ERR_NOT_MOUNTED();
  return s;
}

/** The request's session; undefined when the middleware skipped it (the flows then read the cookie). */
const current = (slot: Slot) => (slot.skipped ? undefined : slot.session);

/**
 * `req.session` (or `requestProperty`): the slot's session; undefined where no middleware ran (as
 * an unset property). Assigning null clears the slot; assigning anything but the slot's own
 * session (express-session creating its session) shadows the accessor on this request and leaves
 * the slot as it was.
 */
const accessor = (prop: string): PropertyDescriptor => ({
  get(this: object) { return slots.get(this)?.session; },
  set(this: object, v: Session | null) {
    const s = slots.get(this);
    if (s !== undefined && (v === null || v === s.session)) {
      s.session = v;
      return;
    }
    if (s !== undefined) s.owner.overwritten('another value (express-session mounted after it?)');
    Object.defineProperty(this, prop, { value: v, writable: true, enumerable: true, configurable: true });
  },
  enumerable: false,
  configurable: true,
});

/** The helpers live on the app's request prototype (installed once per prototype), not on every request. */
const HELPERS = {
  async signIn(this: Request, userId: string, options?: SignInOptions): Promise<SignedIn> {
    const slot = slotOf(this);
    const carried = current(slot);
    slot.session = null;
    slot.skipped = false;
    const { session, setCookie, deviceCookie } = await slot.flows.signIn(facts(this), carried, userId, options);
    this.res!.append('Set-Cookie', setCookie);
    if (deviceCookie !== undefined) this.res!.append('Set-Cookie', deviceCookie);
    slot.session = session;
    return session;
  },
  async signOut(this: Request): Promise<void> {
    const slot = slotOf(this);
    const carried = current(slot);
    slot.session = null;
    slot.skipped = false;
    this.res!.append('Set-Cookie', await slot.flows.signOut(facts(this), carried));
  },
  async rotateSession(this: Request): Promise<Session> {
    const slot = slotOf(this);
    const { session, setCookie } = await slot.flows.rotate(slot.session);
    this.res!.append('Set-Cookie', setCookie);
    return session;
  },
  async updateSession(this: Request, data: SessionData): Promise<Session> {
    const slot = slotOf(this);
    slot.session = await slot.flows.update(slot.session, data);
    return slot.session;
  },
  async confirmAuthentication(this: Request): Promise<Session> {
    const slot = slotOf(this);
    const { session, setCookie } = await slot.flows.confirmAuthentication(slot.session);
    this.res!.append('Set-Cookie', setCookie);
    slot.session = session;
    return session;
  },
};
const installed = new WeakMap<object, Set<string>>();

function install(proto: object, prop: string): void {
  const props = installed.get(proto) ?? new Set();
  installed.set(proto, props.add(prop));
  if (!Object.prototype.hasOwnProperty.call(proto, prop)) Object.defineProperty(proto, prop, accessor(prop));
  for (const [name, fn] of Object.entries(HELPERS)) {
    if (!Object.prototype.hasOwnProperty.call(proto, name)) {
      Object.defineProperty(proto, name, { value: fn, writable: true, configurable: true, enumerable: false });
    }
  }
}

const EXPRESS_KEYS = new Set(['skip', 'logger', 'legacy']);

function resolveLogger(v: unknown): Logger {
  if (v === undefined) return consoleLogger;
  const l = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || !['debug', 'info', 'warn', 'error'].every((k) => typeof l[k] === 'function')) {
    throw fail('logger', `expected an object with debug, info, warn and error methods (pino's shape), got ${describe(v)}`);
  }
  return v as Logger;
}

/**
 * Create the Express middleware. Options are validated here (a bad one throws a coded error
 * naming it); the revocation channel starts at once.
 *
 * ```ts
 * const sessions = tieredSession({ client, secret });
 * app.use(sessions);
 * app.use('/sessions', sessions.routes);
 * ```
 */
export function tieredSession(options: ExpressSessionOptions): TieredSessionMiddleware {
  const o = resolveOptions(options, EXPRESS_KEYS);
  const skip = (options as { skip?: unknown }).skip;
  if (skip !== undefined && typeof skip !== 'function') throw fail('skip', `expected a function (req) => boolean, got ${describe(skip)}`);
  const log = resolveLogger((options as { logger?: unknown }).logger);
  const legacy = resolveLegacy<Request>((options as { legacy?: unknown }).legacy);
  const prop = o.requestProperty;
  const manager = new SessionManager(o, log);
  const flows = new SessionFlows(o, manager);
  for (const w of o.warnings) log.warn({}, `tiered-session: ${w}`);
  const started = manager.start();
  const owner = new Owner(flows, o.keyPrefix, log);
  const takeover = legacy === undefined ? undefined : new LegacyTakeover(legacy, flows, log);

  let seen: object | undefined;
  function tieredSessionMiddleware(req: Request, res: Response, next: NextFunction): void {
    const proto = Object.getPrototypeOf(req) as object;
    if (proto !== seen) {
      if (installed.get(proto)?.has(prop) !== true) install(proto, prop);
      seen = proto;
    }
    const before = slots.get(req);
    if (before !== undefined && before.owner !== owner) before.owner.overwritten(`a second tiered-session middleware (keyPrefix ` +
      `${JSON.stringify(o.keyPrefix)})`);
    if (skip !== undefined && (skip as (req: Request) => boolean)(req)) {
      slots.set(req, new Slot(owner, true, before));
      return next();
    }
    const slot = new Slot(owner, false, before);
    slots.set(req, slot);
    if (takeover === undefined) return flows.resolveInto(req.headers.cookie, slot, next);
    takeover.resolveInto(facts(req), req, slot, (line) => res.append('Set-Cookie', line), next);
  }

  const face = Object.assign(tieredSessionMiddleware, publicSessions(manager), {
    routes: deviceRoutes(flows, (req) => owner.slotOf(req)),
    requireSession(req: Request, _res: Response, next: NextFunction): void {
      next(owner.sessionOf(req) === null ? new ERR_NO_SESSION() : undefined);
    },
    refuseCrossSite(req: Request, _res: Response, next: NextFunction): void {
      next(flows.isCrossSite(facts(req)) ? new ERR_CROSS_SITE() : undefined);
    },
    requireRecentAuthentication(maxAgeMs: number): RequestHandler {
      const maxAge = guardMaxAge(maxAgeMs);
      return function recentAuthentication(req: Request, _res: Response, next: NextFunction): void {
        try {
          flows.checkRecentAuthentication(owner.sessionOf(req), maxAge);
          next();
        } catch (err) {
          next(err);
        }
      };
    },
    ready: () => started,
    close: () => manager.close(),
  });
  registerFace(face, manager);
  return face;
}
