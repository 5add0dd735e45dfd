/** The request facts the cross-site rule reads, as plain header values. */
export interface CrossSiteFacts {
  readonly method: string;
  readonly origin: string | undefined;
  readonly secFetchSite: string | undefined;
  readonly host: string | undefined;
}

/**
 * Whether a request is a cross-site state change, decided as Go's
 * `net/http.CrossOriginProtection` decides it:
 * - GET, HEAD and OPTIONS never change state: they pass.
 * - `Sec-Fetch-Site: same-origin` or `none` (typed URL, bookmark) passes: the browser's own
 *   word, independent of proxies, schemes and ports.
 * - Any other `Sec-Fetch-Site` (`cross-site`, `same-site`) is refused, unless the `Origin` is
 *   listed in `allowed`.
 * - Without `Sec-Fetch-Site` (older browsers): an `Origin` whose host[:port] equals the `Host`
 *   header passes (the scheme is ignored, so a TLS-terminating proxy needs no configuration),
 *   a listed `Origin` passes, any other `Origin` (including `null`) is refused.
 * - With neither header the request is not from a browser (or is same-origin from one that
 *   sends neither): it passes.
 */
export function isCrossSite(r: CrossSiteFacts, allowed: ReadonlySet<string>): boolean {
  const m = r.method;
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return false;
  const site = r.secFetchSite;
  if (site === 'same-origin' || site === 'none') return false;
  const origin = r.origin;
  if (site !== undefined && site !== '') return origin === undefined || !allowed.has(origin.toLowerCase());
  if (origin === undefined || origin === '') return false;
  const o = origin.toLowerCase();
  if (allowed.has(o)) return false;
  const host = r.host?.toLowerCase();
  return host === undefined || host === '' || hostOf(o) !== host;
}

/** host[:port] of a serialised origin (`scheme://host[:port]`), or undefined (`null`, garbage). */
function hostOf(origin: string): string | undefined {
  const i = origin.indexOf('://');
  if (i <= 0) return undefined;
  const rest = origin.slice(i + 3);
  return rest === '' || rest.includes('/') ? undefined : rest;
}
