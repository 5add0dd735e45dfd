import type { FastifyRequest } from 'fastify';

/**
 * Whether a state-changing request comes from another site. An `Origin` listed in `allowed`
 * passes (that is what configuring it means, even for another site); otherwise
 * `Sec-Fetch-Site: cross-site` or an `Origin` other than the request's own (including
 * `null`) is refused. A request with neither header (a non-browser client) passes;
 * SameSite=Lax covers old browsers.
 */
export function isCrossSite(request: FastifyRequest, allowed: readonly string[]): boolean {
  const origin = request.headers.origin;
  const o = typeof origin === 'string' ? origin.toLowerCase() : undefined;
  if (o !== undefined && allowed.includes(o)) return false;
  if (request.headers['sec-fetch-site'] === 'cross-site') return true;
  if (origin === undefined) return false;
  return o !== `${request.protocol}://${request.host}`.toLowerCase();
}
