import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ERR_BAD_BODY, ERR_NOT_FOUND } from './errors.js';
import type { SessionManager } from './manager.js';

export interface RoutesPluginOptions {
  manager: SessionManager;
}

const iso = (ms: number) => new Date(ms).toISOString();

const errorSchema = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

const listSchema = {
  response: {
    200: {
      type: 'object',
      required: ['sessions'],
      properties: {
        sessions: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'current', 'device', 'ip', 'country', 'createdAt', 'lastActiveAt', 'expiresAt'],
            properties: {
              id: { type: 'string' },
              current: { type: 'boolean' },
              device: {
                type: 'object',
                required: ['name', 'browser', 'os', 'type'],
                properties: { name: { type: 'string' }, browser: nullableString, os: nullableString, type: nullableString },
              },
              ip: nullableString,
              country: nullableString,
              createdAt: { type: 'string' },
              lastActiveAt: { type: 'string' },
              expiresAt: { type: 'string' },
            },
          },
        },
      },
    },
    '4xx': errorSchema,
    '5xx': errorSchema,
  },
} as const;

const revokeSchema = {
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', maxLength: 256 } },
  },
  response: { '4xx': errorSchema, '5xx': errorSchema },
} as const;

const everywhereSchema = {
  response: {
    200: { type: 'object', required: ['revoked'], properties: { revoked: { type: 'integer' } } },
    '4xx': errorSchema,
    '5xx': errorSchema,
  },
} as const;

function noStore(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  reply.header('cache-control', 'no-store');
  done();
}

/**
 * The device routes, in their own encapsulated plugin so that `prefix` applies:
 * GET / (the list), DELETE /:id (revoke one), POST /logout-everywhere.
 */
export async function sessionRoutes(fastify: FastifyInstance, { manager }: RoutesPluginOptions): Promise<void> {
  fastify.addHook('onRequest', noStore);

  fastify.get('/', { schema: listSchema, preHandler: fastify.requireSession }, async (request) => {
    const current = request.session!;
    const list = await manager.list(current.userId);
    // Current first, then most recently active (list() is already in that order).
    list.sort((a, b) => (a.id === current.id ? -1 : b.id === current.id ? 1 : 0));
    return {
      sessions: list.map((s) => ({
        id: s.id,
        current: s.id === current.id,
        device: s.device,
        ip: s.ip,
        country: s.country,
        createdAt: iso(s.createdAt),
        lastActiveAt: iso(s.lastActiveAt),
        expiresAt: iso(s.expiresAt),
      })),
    };
  });

  fastify.delete<{ Params: { id: string } }>(
    '/:id',
    { schema: revokeSchema, preHandler: [fastify.requireSession, fastify.refuseCrossSite] },
    async (request, reply) => {
      const current = request.session!;
      const { id } = request.params;
      // Unknown, foreign and malformed ids are one answer: no oracle, and no Redis call for
      // an id that cannot exist or belongs to another user's tag.
      if (!(await manager.revoke(id, current.userId))) throw new ERR_NOT_FOUND();
      if (id === current.id) {
        // Already revoked: signOut() with no session only clears the cookie.
        request.session = null;
        await reply.signOut();
      }
      reply.code(204).send();
    },
  );

  fastify.post('/logout-everywhere', { schema: everywhereSchema, preHandler: [fastify.requireSession, fastify.refuseCrossSite] }, async (request, reply) => {
    const current = request.session!;
    const body = request.body as unknown;
    let keepCurrent = false;
    if (body !== undefined && body !== null) {
      if (typeof body !== 'object' || Array.isArray(body)) throw new ERR_BAD_BODY();
      const k = (body as { keepCurrent?: unknown }).keepCurrent;
      if (k !== undefined && typeof k !== 'boolean') throw new ERR_BAD_BODY();
      keepCurrent = k === true;
    }
    const revoked = await manager.revokeAll(current.userId, keepCurrent ? { keep: current.id } : {});
    if (!keepCurrent) {
      request.session = null;
      await reply.signOut();
    }
    return { revoked };
  });

}
