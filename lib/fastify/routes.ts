import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { EVERYWHERE_SCHEMA, HISTORY_SCHEMA, LIST_SCHEMA, ROUTE_HEADERS, type SessionFlows } from '../core/flows.js';

function routeHeaders(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  reply.headers(ROUTE_HEADERS);
  done();
}

/**
 * The device routes, in their own encapsulated plugin so that `prefix` applies. Translation
 * only: the core decides every status, cookie and body. Success answers have response schemas
 * (an allow-list, and fast serialisation); errors are thrown to the app's own error handler,
 * so they look like every other error of the app.
 */
export async function sessionRoutes(fastify: FastifyInstance, { flows }: { flows: SessionFlows }): Promise<void> {
  fastify.addHook('onRequest', routeHeaders);

  fastify.get('/', { schema: { response: { 200: LIST_SCHEMA } }, preHandler: fastify.requireSession }, async (request) =>
    flows.list(request.session!));

  fastify.get<{ Querystring: { days?: string } }>('/history', { schema: { response: { 200: HISTORY_SCHEMA } }, preHandler: fastify.requireSession },
    async (request) => flows.history(request.session!, request.query.days));

  fastify.delete<{ Params: { id: string } }>(
    '/:id',
    { preHandler: [fastify.requireSession, fastify.refuseCrossSite] },
    async (request, reply) => {
      const { setCookie } = await flows.revoke(request.session!, request.params.id);
      if (setCookie !== undefined) {
        request.session = null;
        reply.header('set-cookie', setCookie);
      }
      reply.code(204).send();
    },
  );

  fastify.post(
    '/logout-everywhere',
    { schema: { response: { 200: EVERYWHERE_SCHEMA } }, preHandler: [fastify.requireSession, fastify.refuseCrossSite] },
    async (request, reply) => {
      const { body, setCookie } = await flows.everywhere(request.session!, request.body);
      if (setCookie !== undefined) {
        request.session = null;
        reply.header('set-cookie', setCookie);
      }
      return body;
    },
  );
}
