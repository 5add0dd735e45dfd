// What every benchmark server shares: the route shapes, the listen + IPC protocol, settings.
// A server is started by benchmarks/run.ts as a child process (one alive at a time), listens on
// a free loopback port, sends { type: 'ready', port }, answers { type: 'probe' } with its CPU
// time, and closes on { type: 'stop' }.
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';

/** The user every GET answers with (servers without sessions answer it as a constant). */
export const USER = 'user-000001';

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

/** Listen on a free loopback port and speak the IPC protocol until told to stop. */
export async function serve(app: FastifyInstance, probe: () => object = () => ({}), onClose: () => Promise<void> = async () => {}): Promise<void> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await app.close();
    await onClose();
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'probe') process.send!({ type: 'probe', cpu: process.cpuUsage(), rss: process.memoryUsage().rss, ...probe() });
    else if (m?.type === 'stop') void stop();
  });
  // The orchestrator went away: do not linger.
  process.on('disconnect', () => { void stop(); });
  process.send!({ type: 'ready', port, pid: process.pid });
}
