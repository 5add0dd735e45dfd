import type { ResolvedCookie } from './options.js';

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

/**
 * The session cookie's Set-Cookie line. Every part is already validated (the name is a token,
 * the value is base64url or empty, path and domain are checked by resolveOptions), so no
 * encoding is needed, and no cookie plugin has to run on every reply.
 *
 * `maxAgeMs` null makes a browser-session cookie (no Max-Age, no Expires: it ends with the
 * browser); 0 or less clears the cookie.
 */
export function setCookieLine(c: ResolvedCookie, value: string, maxAgeMs: number | null): string {
  let line = `${c.name}=${value}`;
  if (maxAgeMs !== null) {
    const maxAge = Math.max(0, Math.floor(maxAgeMs / 1000));
    line += `; Max-Age=${maxAge}`;
    if (maxAge === 0) line += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  }
  line += `; Path=${c.path}`;
  if (c.domain !== undefined) line += `; Domain=${c.domain}`;
  if (c.httpOnly) line += '; HttpOnly';
  if (c.secure) line += '; Secure';
  return `${line}; SameSite=${SAME_SITE[c.sameSite]}`;
}
