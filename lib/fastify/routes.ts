import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ROUTE_HEADERS, type SessionFlows } from '../core/flows.js';
import { EVERYWHERE_SCHEMA, HISTORY_SCHEMA, LIST_SCHEMA } from './schemas.js';
import type { Session } from '../core/session-data.js';

function routeHeaders(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  reply.headers(ROUTE_HEADERS);
  done();
}

/**
 * The device routes, beside the app's own routes. Fastify gives a route the error handler its
 * context has when the route is built, and a plugin's routes are built before the code after
 * `register()` runs; each route's own `errorHandler` therefore asks the app for its handler at the
 * time of the error, so `setErrorHandler` works before or after the plugin. Translation only: the
 * core decides every status, cookie and body. Success answers have response schemas (an
 * allow-list, and fast serialisation); errors are thrown to the app's own error handler, so they
 * look like every other error of the app.
 */
export function sessionRoutes(fastify: FastifyInstance, prefix: string, flows: SessionFlows,
  holder: (request: FastifyRequest) => { session: Session | null } = (request) => request): void {
  const onRequest = routeHeaders;
  const errorHandler = (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => fastify.errorHandler(err, request, reply);
  const at = (path: string) => `${prefix}${path}`;

  // `${prefix}` and `${prefix}/` both list, as a prefixed child plugin's '/' route would.
  for (const url of [prefix, at('/')]) {
    fastify.get(url, { onRequest, errorHandler, schema: { response: { 200: LIST_SCHEMA } }, preHandler: fastify.requireSession },
      async (request) =>
      flows.list(holder(request).session!));
  }

  fastify.get<{ Querystring: { days?: string } }>(at('/history'),
    { onRequest, errorHandler, schema: { response: { 200: HISTORY_SCHEMA } }, preHandler: fastify.requireSession },
    async (request) => flows.history(holder(request).session!, request.query.days));

  fastify.delete<{ Params: { id: string } }>(
    at('/:id'),
    { onRequest, errorHandler, preHandler: [fastify.requireSession, fastify.refuseCrossSite] },
    async (request, reply) => {
      const { setCookie } = await flows.revoke(holder(request).session!, request.params.id);
      if (setCookie !== undefined) {
        holder(request).session = null;
        reply.header('set-cookie', setCookie);
      }
      reply.code(204).send();
    },
  );

  fastify.post(
    at('/logout-everywhere'),
    { onRequest, errorHandler, schema: { response: { 200: EVERYWHERE_SCHEMA } },
      preHandler: [fastify.requireSession, fastify.refuseCrossSite] },
    async (request, reply) => {
      const { body, setCookie } = await flows.everywhere(holder(request).session!, request.body);
      if (setCookie !== undefined) {
        holder(request).session = null;
        reply.header('set-cookie', setCookie);
      }
      return body;
    },
  );
}
