import type { FastifyRequest } from 'fastify';

/**
 * Whether a state-changing request comes from another site: `Sec-Fetch-Site: cross-site`, or
 * an `Origin` that is neither the request's own origin nor one of `allowed`. A request with
 * neither header (a non-browser client) is not refused here; SameSite=Lax covers old browsers.
 */
export function isCrossSite(request: FastifyRequest, allowed: readonly string[]): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site') return true;
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  if (typeof origin !== 'string') return true;
  const o = origin.toLowerCase();
  if (o === `${request.protocol}://${request.host}`.toLowerCase()) return false;
  return !allowed.includes(o);
}
