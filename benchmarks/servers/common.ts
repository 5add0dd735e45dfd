// What every benchmark server shares: the route shapes, the listen + IPC protocol, settings.
// A server is started by benchmarks/run.ts as a child process (one alive at a time), listens on
// a free loopback port, sends { type: 'ready', port }, answers { type: 'probe' } with its CPU
// time, and closes on { type: 'stop' }. Fastify servers call `serve(app)`; Express servers call
// `serveHttp(app)` (a plain node:http server around the Express app), which speaks the same
// protocol.
import Fastify, { type FastifyInstance } from 'fastify';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerformanceObserver, constants } from 'node:perf_hooks';

/**
 * Garbage collections since the server started (what `--trace-gc` prints, counted): scavenges
 * (the young generation) and mark-compacts (the whole heap), with their pause times.
 */
const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.major++;
      gc.majorMs += e.duration;
    } else {
      gc.minor++;
      gc.minorMs += e.duration;
    }
    gc.maxMs = Math.max(gc.maxMs, e.duration);
  }
}).observe({ entryTypes: ['gc'] });

/** The user every GET answers with (servers without sessions answer it as a constant). */
export const USER = 'user-000001';
/** The User-Agent every load generator sends (a desktop Chrome). */
export const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** The `secret` option of this package's servers (at least 32 characters). */
export const SECRET = 'a benchmark secret that is at least 32 characters long';

/** A session id of the length this package's ids have, for the servers that make none. */
export const FAKE_SESSION_ID = 'x'.repeat(38);

/** GET /hello → { hello: 'world', user }. 401 (same shape, user null) when there is no session. */
export const helloSchema = {
  response: {
    200: { type: 'object', properties: { hello: { type: 'string' }, user: { type: 'string' } } },
    401: { type: 'object', properties: { hello: { type: 'string' }, user: { type: 'null' } } },
  },
} as const;

/** POST /login { user } → { userId, sessionId }. */
export const loginSchema = {
  body: {
    type: 'object', required: ['user'], additionalProperties: false,
    properties: { user: { type: 'string', minLength: 1, maxLength: 64 } },
  },
  response: {
    200: { type: 'object', properties: { userId: { type: 'string' }, sessionId: { type: 'string' } } },
  },
} as const;

export interface LoginBody { user: string }

/**
 * The Express servers' check of the login body, the same rules as `loginSchema` (Express has no
 * schema validation of its own): the user id, or undefined for a body to answer 400.
 */
export function loginUser(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const keys = Object.keys(body);
  const user = (body as { user?: unknown }).user;
  return keys.length === 1 && typeof user === 'string' && user.length >= 1 && user.length <= 64 ? user : undefined;
}

export function env(name: string): string {
  const v = process.env[name];
  if (!v) {
    console.error(`${process.argv[1]}: ${name} is not set (the servers are started by benchmarks/run.ts)`);
    process.exit(2);
  }
  return v;
}

export function createApp(): FastifyInstance {
  return Fastify({ logger: false });
}

/** Wait until a connecting ioredis client is ready. */
export function whenReady(client: { status: string; once(event: 'ready', f: () => void): unknown }): Promise<void> {
  return new Promise<void>((resolve) => { if (client.status === 'ready') resolve(); else client.once('ready', () => resolve()); });
}

/**
 * The L1 is filled only once the revocation channel is proven: wait for it, as a real deployment
 * would be after its first second.
 */
export async function untilTrusted(manager: { readonly cacheTrusted: boolean }, who: string): Promise<void> {
  const until = Date.now() + 10_000;
  while (!manager.cacheTrusted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  if (!manager.cacheTrusted) console.error(`${who}: revocation channel not confirmed after 10 s; L1 stays empty`);
}

/** The IPC protocol once listening on `port`; `close` shuts the server down. */
function speak(port: number, close: () => Promise<void>, probe: () => object, onClose: () => Promise<void>): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close();
    await onClose();
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'probe') {
      process.send!({ type: 'probe', cpu: process.cpuUsage(), rss: process.memoryUsage().rss, gc: { ...gc }, ...probe() });
      gc.maxMs = 0;
    }
    else if (m?.type === 'stop') void stop();
  });
  // The orchestrator went away: do not linger.
  process.on('disconnect', () => { void stop(); });
  process.send!({ type: 'ready', port, pid: process.pid });
}

/** Fastify: listen on a free loopback port and speak the IPC protocol until told to stop. */
export async function serve(
  app: FastifyInstance, probe: () => object = () => ({}), onClose: () => Promise<void> = async () => {},
): Promise<void> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  speak(port, () => app.close(), probe, onClose);
}

/**
 * Express (or any request listener): a node:http server on a free loopback port, the same IPC
 * protocol. Keep-alive connections are closed on stop, as Fastify's close does.
 */
export async function serveHttp(
  handler: RequestListener, probe: () => object = () => ({}), onClose: () => Promise<void> = async () => {},
): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  speak(port, close, probe, onClose);
}
