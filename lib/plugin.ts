import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import fp from 'fastify-plugin';
import { parseDevice, type DeviceInfo } from './device.js';
import { isCrossSite } from './cross-site.js';
import { ERR_CROSS_SITE, ERR_NO_SESSION } from './errors.js';
import { SessionManager, type Session, type SessionData } from './manager.js';
import { resolveOptions, type ResolvedOptions, type TieredSessionOptions } from './options.js';
import { sessionRoutes } from './routes.js';
import { readCookie } from './token.js';

export interface SignInOptions {
  /** Initial session data. */
  data?: SessionData;
}

/** What `reply.signIn()` answers: the new session and the device parsed from its User-Agent. */
export interface SignedIn extends Session {
  readonly device: DeviceInfo;
}

/** A guard usable as `onRequest` or `preHandler`. */
export type Guard = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false` on a route that never needs the session (public pages, assets, health checks): the
     * plugin does not read its cookie, `request.session` stays null, and no request to it ever
     * reaches Redis. `reply.signIn()` and `reply.signOut()` still find the session they replace.
     */
    session?: boolean;
  }
  interface FastifyInstance {
    /** The session manager: list / revoke / revokeAll for a user id, stats, metrics. */
    sessions: SessionManager;
    /** Answers 401 when the request has no session. */
    requireSession: Guard;
    /** Answers 403 to cross-site requests (use on your own state-changing routes, e.g. login). */
    refuseCrossSite: Guard;
  }
  interface FastifyRequest {
    /** The resolved session, or null. */
    session: Session | null;
    /** Replace the current session's data (stored in Redis first). */
    updateSession(data: SessionData): Promise<Session>;
  }
  interface FastifyReply {
    /** Sign `userId` in: a new session and cookie; any session the request carried is revoked. */
    signIn(userId: string, options?: SignInOptions): Promise<SignedIn>;
    /** Revoke the current session (if any) and clear the cookie. */
    signOut(): Promise<void>;
    /** New token for the current session (privilege change); the old token stops working. */
    rotateSession(): Promise<Session>;
  }
}

function countryOf(request: FastifyRequest, header: string | undefined): string | null {
  if (header === undefined) return null;
  const v = request.headers[header];
  return typeof v === 'string' && /^[A-Za-z]{2}$/.test(v) && !/^(xx|t1)$/i.test(v) ? v.toUpperCase() : null;
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

/**
 * The session cookie's Set-Cookie line. Every part is already validated (the name is a token,
 * the value is base64url or empty, path and domain are checked by resolveOptions), so no
 * encoding is needed, and no cookie plugin has to run an onSend hook on every reply.
 */
function setCookieLine(o: ResolvedOptions, value: string, maxAgeMs: number): string {
  const c = o.cookie;
  const maxAge = Math.max(0, Math.floor(maxAgeMs / 1000));
  let line = `${c.name}=${value}; Max-Age=${maxAge}; Path=${c.path}`;
  if (maxAge === 0) line += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  if (c.domain !== undefined) line += `; Domain=${c.domain}`;
  if (c.httpOnly) line += '; HttpOnly';
  if (c.secure) line += '; Secure';
  return `${line}; SameSite=${SAME_SITE[c.sameSite]}`;
}

async function tieredSession(fastify: FastifyInstance, options: TieredSessionOptions): Promise<void> {
  const o = resolveOptions(options);
  const manager = new SessionManager(o);
  manager.onBackgroundError = (err, what) => fastify.log.debug({ err }, `tiered-session: ${what} failed`);
  const cookieName = o.cookie.name;
  for (const w of o.warnings) fastify.log.warn(`tiered-session: ${w}`);

  fastify.decorate('sessions', manager);
  fastify.decorateRequest('session', null);

  const optedOut = (request: FastifyRequest) => request.routeOptions.config.session === false;

  function onRequestSession(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const header = request.headers.cookie;
    if (header === undefined || optedOut(request)) return done();
    const token = readCookie(header, cookieName);
    if (typeof token !== 'string') return done();
    const r = manager.resolve(token);
    if (r === null) return done();
    if (!(r instanceof Promise)) {
      request.session = r.session;
      return done();
    }
    r.then((e) => {
      if (e !== null) request.session = e.session;
      done();
    }, done);
  }
  fastify.addHook('onRequest', onRequestSession);

  /** The request's session; on a route with `session: false`, resolved now from its cookie. */
  async function sessionOf(request: FastifyRequest): Promise<Session | null> {
    if (request.session !== null || !optedOut(request)) return request.session;
    const token = readCookie(request.headers.cookie ?? '', cookieName);
    if (typeof token !== 'string') return null;
    return (await manager.resolve(token))?.session ?? null;
  }

  fastify.decorate('requireSession', function requireSession(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(request.session === null ? new ERR_NO_SESSION() : undefined);
  });
  fastify.decorate('refuseCrossSite', function refuseCrossSite(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(isCrossSite(request, o.allowedOrigins) ? new ERR_CROSS_SITE() : undefined);
  });

  fastify.decorateReply('signIn', async function signIn(this: FastifyReply, userId: string, opts: SignInOptions = {}) {
    const request = this.request;
    const carried = request.session ?? await sessionOf(request);
    // Fixation: whatever session the request arrived with ends here, whoever it belonged to.
    if (carried !== null) {
      request.session = null;
      await manager.revoke(carried.id);
    }
    const device = parseDevice(request.headers['user-agent'], o.maxUserAgentLength);
    const { session, token } = await manager.create(userId, {
      device,
      ip: request.ip ?? null,
      country: countryOf(request, o.countryHeader),
      data: opts.data,
    });
    this.header('set-cookie', setCookieLine(o, token, session.absoluteExpiresAt - session.createdAt));
    request.session = session;
    return Object.freeze({ ...session, device });
  });

  fastify.decorateReply('signOut', async function signOut(this: FastifyReply) {
    const s = this.request.session ?? await sessionOf(this.request);
    if (s !== null) {
      await manager.revoke(s.id);
      this.request.session = null;
    }
    this.header('set-cookie', setCookieLine(o, '', 0));
  });

  fastify.decorateReply('rotateSession', async function rotateSession(this: FastifyReply) {
    const s = this.request.session;
    if (s === null) throw new ERR_NO_SESSION();
    const token = await manager.rotate(s.id);
    this.header('set-cookie', setCookieLine(o, token, s.absoluteExpiresAt - o.now()));
    return s;
  });

  fastify.decorateRequest('updateSession', async function updateSession(this: FastifyRequest, data: SessionData) {
    const s = this.session;
    if (s === null) throw new ERR_NO_SESSION();
    this.session = await manager.update(s, data);
    return this.session;
  });

  fastify.addHook('onReady', async () => { await manager.start(); });
  fastify.addHook('onClose', async () => { await manager.close(); });

  if (o.routes !== false) {
    await fastify.register(sessionRoutes, { prefix: o.routes.prefix, manager });
  }
}

/** The plugin: `app.register(tieredSession, { client })`. */
export const fastifyTieredSession = fp(tieredSession, { fastify: '5.x', name: 'fastify-tiered-session' });
