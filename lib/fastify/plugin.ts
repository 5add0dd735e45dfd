import type {
  FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions, onRequestHookHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import { ERR_CROSS_SITE, ERR_NO_SESSION } from '../core/errors.js';
import { SessionFlows, guardMaxAge, type SignInOptions, type SignedIn } from '../core/flows.js';
import { LegacyTakeover, resolveLegacy, type LegacyOptions } from '../core/legacy.js';
import type { Logger } from '../core/log.js';
import { SessionManager } from '../core/manager.js';
import type { TieredSessionOptions } from '../core/options.js';
import { resolveOptions } from '../core/resolve-options.js';
import { describe, fail, isPlainObject, orDefault } from '../core/validate.js';
// Aliased: inside `declare module 'fastify'` a plain `Session` would name the `Session` that
// @fastify/session adds to that module, and the app would see its type instead of ours.
import type { Session as TieredSession, SessionData as TieredSessionData } from '../core/session-data.js';
type Session = TieredSession;
type SessionData = TieredSessionData;
import { publicSessions, type Sessions } from '../core/sessions-api.js';
import { sessionRoutes } from './routes.js';

/** The Fastify plugin's options: the shared ones, plus where its routes live. */
export interface FastifySessionOptions extends TieredSessionOptions {
  /** The device routes; `false` registers none. @default { prefix: '/sessions' } */
  routes?: {
    /** Where the routes live. @default '/sessions' */
    prefix?: string;
  } | false;
  /** Sign in the users of @fastify/session without a new sign-in (docs/migrating.md). */
  legacy?: LegacyOptions<FastifyRequest>;
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
    /** Sessions outside a request: list / revoke / revokeAll for a user id, stats, metrics, health. */
    sessions: Sessions;
    /** Answers 401 when the request has no session. */
    requireSession: Guard;
    /** Answers 403 to cross-site requests (use on your own state-changing routes, e.g. login). */
    refuseCrossSite: Guard;
    /**
     * A guard for sensitive actions: 401 without a session, 403 `…_REAUTHENTICATION_REQUIRED`
     * when the user last proved their credentials more than `maxAgeMs` ago (re-check the
     * password, call `reply.confirmAuthentication()`, retry).
     */
    requireRecentAuthentication(maxAgeMs: number): Guard;
  }
  interface FastifyRequest {
    /** The resolved session, or null. */
    session: TieredSession | null;
    /** Replace the current session's data (stored in Redis first). */
    updateSession(data: TieredSessionData): Promise<TieredSession>;
  }
  interface FastifyReply {
    /** Sign `userId` in: a new session and cookie; any session the request carried is revoked. */
    signIn(userId: string, options?: SignInOptions): Promise<SignedIn>;
    /** Revoke the current session (if any) and clear the cookie. */
    signOut(): Promise<void>;
    /** New token for the current session (privilege change); the old token stops working. */
    rotateSession(): Promise<TieredSession>;
    /**
     * The user just re-proved their credentials: the session gets a new token (set as the cookie;
     * the old one stops working everywhere) and `authenticatedAt` becomes now.
     */
    confirmAuthentication(): Promise<TieredSession>;
  }
}

/** Register options Fastify defines for every plugin, accepted beside the plugin's own. */
const FASTIFY_KEYS = new Set(['routes', 'prefix', 'logLevel', 'logSerializers', 'legacy']);

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Fastify's logger, with the level the app gave the registration (`logLevel`). */
function loggerOf(fastify: FastifyInstance, logLevel: unknown): Logger {
  if (logLevel === undefined) return fastify.log;
  if (typeof logLevel !== 'string' || !LEVELS.includes(logLevel)) {
    throw fail('logLevel', `expected one of ${LEVELS.join(', ')}, got ${describe(logLevel)}`);
  }
  return fastify.log.child({}, { level: logLevel });
}

function resolveRoutes(v: unknown): { prefix: string } | false {
  if (v === false) return false;
  if (v !== undefined && !isPlainObject(v)) throw fail('routes', `expected false or { prefix }, got ${describe(v)}`);
  for (const k of Object.keys(v ?? {})) if (k !== 'prefix') throw fail(`routes.${k}`, 'unknown option');
  const prefix = orDefault((v as { prefix?: unknown } | undefined)?.prefix, '/sessions');
  if (typeof prefix !== 'string' || !/^(\/[A-Za-z0-9_\-.~]+)+$/.test(prefix)) {
    throw fail('routes.prefix', `expected a path such as "/sessions", got ${describe(prefix)}`);
  }
  return { prefix };
}

/** Facts of a Fastify request for the core's flows. */
const facts = (request: FastifyRequest) => ({ method: request.method, headers: request.headers, ip: request.ip });

async function tieredSessionPlugin(fastify: FastifyInstance, options: FastifySessionOptions): Promise<void> {
  const o = resolveOptions(options, FASTIFY_KEYS);
  const raw = options as unknown as Record<string, unknown>;
  if (raw.prefix !== undefined) {
    throw fail('prefix', 'the plugin is not encapsulated (its decorators serve the whole app), so a register prefix would not move its ' +
      'routes; use routes: { prefix } instead');
  }
  const routes = resolveRoutes(raw.routes);
  const legacy = resolveLegacy<FastifyRequest>(raw.legacy);
  if (fastify.hasRequestDecorator(o.requestProperty)) {
    throw fail('requestProperty', `request.${o.requestProperty} is already decorated (by @fastify/session?); give tiered-session another ` +
      `name, such as requestProperty: 'account'`);
  }
  const log = loggerOf(fastify, raw.logLevel);
  const manager = new SessionManager(o, log);
  const flows = new SessionFlows(o, manager);
  for (const w of o.warnings) log.warn({}, `tiered-session: ${w}`);

  fastify.decorate('sessions', publicSessions(manager));
  const prop = o.requestProperty;
  fastify.decorateRequest(prop, null);
  /** The request's session, under `requestProperty`. */
  const at = (request: FastifyRequest) => request as unknown as { session: Session | null };
  const get = prop === 'session' ? at : (request: FastifyRequest) => ({
    get session() { return (request as unknown as Record<string, Session | null>)[prop]!; },
    set session(v: Session | null) { (request as unknown as Record<string, Session | null>)[prop] = v; },
  });
  const takeover = legacy === undefined ? undefined : new LegacyTakeover(legacy, flows, log);

  // The hot path: resolve the cookie before the route's own hooks. Attached per route (in
  // onRoute below), so a route with `config: { session: false }` has no hook at all and no
  // request pays for a per-request check.
  function resolveSession(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const into = get(request);
    if (takeover === undefined) return flows.resolveInto(request.headers.cookie, into, done);
    takeover.resolveInto(facts(request), request, into, (line) => reply.header('set-cookie', line), done);
  }
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if ((route.config as { session?: boolean } | undefined)?.session === false) return;
    const own = route.onRequest;
    route.onRequest = own === undefined ? [resolveSession] : [resolveSession as onRequestHookHandler,
      ...(Array.isArray(own) ? own : [own])];
  });

  /** The request's session; undefined when the route opted out (the flows then read the cookie). */
  const current = (request: FastifyRequest) =>
    get(request).session ?? (request.routeOptions.config.session === false ? undefined : null);

  fastify.decorate('requireSession', function requireSession(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(get(request).session === null ? new ERR_NO_SESSION() : undefined);
  });
  fastify.decorate('refuseCrossSite',
    function refuseCrossSite(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(flows.isCrossSite(facts(request)) ? new ERR_CROSS_SITE() : undefined);
  });

  fastify.decorate('requireRecentAuthentication', function requireRecentAuthentication(maxAgeMs: number): Guard {
    const maxAge = guardMaxAge(maxAgeMs);
    return function recentAuthentication(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
      try {
        flows.checkRecentAuthentication(get(request).session, maxAge);
        done();
      } catch (err) {
        done(err as Error);
      }
    };
  });

  fastify.decorateReply('signIn', async function signIn(this: FastifyReply, userId: string, opts?: SignInOptions) {
    const request = this.request;
    const carried = current(request);
    get(request).session = null;
    const { session, setCookie, deviceCookie } = await flows.signIn(facts(request), carried, userId, opts);
    this.header('set-cookie', setCookie);
    if (deviceCookie !== undefined) this.header('set-cookie', deviceCookie);
    get(request).session = session;
    return session;
  });

  fastify.decorateReply('signOut', async function signOut(this: FastifyReply) {
    const request = this.request;
    const carried = current(request);
    get(request).session = null;
    this.header('set-cookie', await flows.signOut(facts(request), carried));
  });

  fastify.decorateReply('rotateSession', async function rotateSession(this: FastifyReply) {
    const { session, setCookie } = await flows.rotate(get(this.request).session);
    this.header('set-cookie', setCookie);
    return session;
  });

  fastify.decorateReply('confirmAuthentication', async function confirmAuthentication(this: FastifyReply) {
    const into = get(this.request);
    const { session, setCookie } = await flows.confirmAuthentication(into.session);
    this.header('set-cookie', setCookie);
    into.session = session;
    return session;
  });

  fastify.decorateRequest('updateSession', async function updateSession(this: FastifyRequest, data: SessionData) {
    const into = get(this);
    into.session = await flows.update(into.session, data);
    return into.session;
  });

  fastify.addHook('onReady', async () => { await manager.start(); });
  fastify.addHook('onClose', async () => { await manager.close(); });

  if (routes !== false) sessionRoutes(fastify, routes.prefix, flows, get);
}

/** The plugin: `app.register(tieredSession, { client, secret })`. */
export const tieredSession = fp(tieredSessionPlugin, { fastify: '5.x', name: 'tiered-session' });
