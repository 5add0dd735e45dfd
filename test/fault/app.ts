// One app instance of the fault check, in its own process (so a cell can SIGKILL it): the package
// registered with the README's options on the README's clients (examples/redis-client.ts), on
// Fastify or Express 5, with the routes a real app has (sign-in, sign-out, rotate, confirm
// authentication, /me) plus the package's device routes. Configured by FAULT_APP (JSON, see
// AppConfig); prints `listening <port>` once it serves.
import Fastify from 'fastify';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Redis, Cluster } from 'ioredis';
import pg from 'pg';
import { appendFileSync } from 'node:fs';
import { tieredSession as fastifyPlugin } from '../../lib/fastify/index.js';
import { tieredSession as expressMiddleware } from '../../lib/express/index.js';
import type { TieredSessionOptions } from '../../lib/index.js';
import { clients } from './clients.js';

/** A topology as the app is told it: the addresses its README client needs. */
export type Endpoint =
  | { kind: 'single'; url: string; readFromUrl?: string }
  | { kind: 'sentinel'; sentinels: { host: string; port: number }[]; name: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[] };

export interface AppConfig {
  adapter: 'fastify' | 'express';
  endpoint: Endpoint;
  keyPrefix: string;
  secret: string;
  maxSessionsPerUser: number;
  /** PostgreSQL connection string: the audit trail on. */
  auditUrl?: string;
  /** The control run's weakened setting (never set in the real matrix). */
  confirmRevocations?: false;
}

const config = JSON.parse(process.env.FAULT_APP!) as AppConfig;
const make = await clients();
let client: Redis | Cluster;
let readFrom: Redis | undefined;
const ep = config.endpoint;
if (ep.kind === 'single') {
  client = make.redisClient(ep.url);
  if (ep.readFromUrl) readFrom = make.redisClient(ep.readFromUrl);
} else if (ep.kind === 'sentinel') {
  client = make.sentinelClient(ep.sentinels, ep.name);
} else {
  client = make.clusterClient(ep.nodes);
}
client.on('error', () => {});
readFrom?.on('error', () => {});
// FAULT_TRACE=<dir>: this instance's client events and the package's warnings, one line each,
// in <dir>/<pid>.log (for reading a violation's story; never set in the check itself).
const trace = process.env.FAULT_TRACE
  ? (line: string) => appendFileSync(`${process.env.FAULT_TRACE}/${process.pid}-${config.adapter}.log`, `${Date.now()} ${line}\n`)
  : undefined;
if (trace) {
  const where = () => { const s = (client as Redis).stream; return s ? `${s.remotePort}` : '?'; };
  for (const ev of ['ready', 'close', 'reconnecting', 'end']) client.on(ev, () => trace(`client ${ev} ${where()}`));
}
const traceLogger = trace && {
  debug: (o: object, m: string) => trace(`debug ${m} ${JSON.stringify(o)}`),
  info: (o: object, m: string) => trace(`info ${m} ${JSON.stringify(o)}`),
  warn: (o: object, m: string) => trace(`warn ${m} ${JSON.stringify(o)}`),
  error: (o: object, m: string) => trace(`error ${m} ${JSON.stringify(o)}`),
};
let pool: pg.Pool | undefined;
if (config.auditUrl) {
  pool = new pg.Pool({ connectionString: config.auditUrl });
  pool.on('error', () => {});
}

const options: TieredSessionOptions = {
  client,
  secret: config.secret,
  keyPrefix: config.keyPrefix,
  maxSessionsPerUser: config.maxSessionsPerUser,
  ...(readFrom ? { readFrom } : {}),
  ...(pool ? { audit: { pool } } : {}),
  ...(config.confirmRevocations === false ? { confirmRevocations: false } : {}),
};

let port: number;
if (config.adapter === 'fastify') {
  const app = Fastify(trace ? { logger: { level: 'info', file: `${process.env.FAULT_TRACE}/${process.pid}-fastify.pino` } } : {});
  await app.register(fastifyPlugin, options);
  app.post<{ Body: { user: string } }>('/login', async (request, reply) => ({ id: (await reply.signIn(request.body.user)).id }));
  app.post('/logout', async (_request, reply) => { await reply.signOut(); reply.code(204).send(); });
  app.post('/rotate', { preHandler: app.requireSession }, async (_request, reply) => ({ id: (await reply.rotateSession()).id }));
  app.post('/reauth', { preHandler: app.requireSession },
    async (_request, reply) => { await reply.confirmAuthentication(); reply.code(204).send(); });
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ id: request.session!.id }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
} else {
  const sessions = expressMiddleware(traceLogger ? { ...options, logger: traceLogger } : options);
  const app = express();
  app.use(sessions);
  app.use('/sessions', sessions.routes);
  app.use(express.json());
  const h = (fn: (req: Request, res: Response) => Promise<unknown>) => (req: Request, res: Response, next: NextFunction) => {
    fn(req, res).then((out) => { if (out === undefined) res.status(204).end(); else res.json(out); }, next);
  };
  app.post('/login', h(async (req) => ({ id: (await req.signIn(req.body.user)).id })));
  app.post('/logout', h(async (req) => { await req.signOut(); }));
  app.post('/rotate', sessions.requireSession, h(async (req) => ({ id: (await req.rotateSession()).id })));
  app.post('/reauth', sessions.requireSession, h(async (req) => { await req.confirmAuthentication(); }));
  app.get('/me', sessions.requireSession, h(async (req) => ({ id: req.session!.id })));
  app.use((err: Error & { status?: number; code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status ?? 500).json({ code: err.code, message: err.message });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  port = (server.address() as { port: number }).port;
}
process.stdout.write(`listening ${port}\n`);
