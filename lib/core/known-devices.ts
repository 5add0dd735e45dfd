// New-device detection (option `knownDevices`): the signed device cookie a sign-in reads and sets.
// Its value is `<device id>.<signature>`: 16 random bytes and an HMAC-SHA256 of the id keyed with
// the first listed secret (any listed one is accepted, so a rotation keeps devices known). Redis
// sees only a hash of the id (the user's set of known devices, in the create script); the id
// itself is in the cookie and nowhere else: no body, log line or error carries it.
import { createHmac, hash, randomBytes } from 'node:crypto';
import { setCookieLine } from './cookie.js';
import type { ResolvedCookie, ResolvedKnownDevices } from './options.js';
import { HASH_LENGTH, constantTimeEqual, readCookie } from './token.js';

/** `<22 base64url characters>.<43>`: any other shape is not a device cookie of ours. */
const SHAPE = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;

/** The HMAC of a device id; the label keeps it apart from every other use of the secret (user tags). */
const signature = (secret: string, id: string) => createHmac('sha256', secret).update(`tiered-session device\0${id}`).digest('base64url');

/** What a sign-in takes of the device cookie: the known-devices member and the cookie to set. */
export interface DeviceOfRequest {
  /** The hash of the device id: the member of the user's set of known devices. */
  readonly member: string;
  /** The Set-Cookie line: the device cookie, signed with the first secret, Max-Age the ttl. */
  readonly setCookie: string;
}

export class DeviceCookies {
  readonly #secrets: readonly string[];
  readonly #cookie: ResolvedCookie;
  /** How long a device stays known (ms): the cookie's Max-Age and the set's TTL. */
  readonly ttl: number;

  constructor(o: ResolvedKnownDevices, secrets: readonly string[], session: ResolvedCookie) {
    this.#secrets = secrets;
    this.ttl = o.ttl;
    // HttpOnly, SameSite=Lax, Path=/, no Domain whatever the session cookie's are; Secure as it decides.
    this.#cookie = Object.freeze({ name: o.cookieName, secure: session.secure, httpOnly: true, sameSite: 'lax', path: '/',
      domain: undefined });
  }

  /**
   * The device a Cookie header names: its id when the cookie is there once, well-formed and signed
   * by a listed secret; a fresh id otherwise (missing, duplicated, malformed, forged: never an error).
   */
  of(header: string | undefined): DeviceOfRequest {
    const id = this.#verified(header) ?? randomBytes(16).toString('base64url');
    return {
      member: hash('sha256', id, 'base64url').slice(0, HASH_LENGTH),
      setCookie: setCookieLine(this.#cookie, `${id}.${signature(this.#secrets[0], id)}`, this.ttl),
    };
  }

  #verified(header: string | undefined): string | undefined {
    if (header === undefined) return undefined;
    const v = readCookie(header, this.#cookie.name);
    if (typeof v !== 'string' || !SHAPE.test(v)) return undefined;
    const id = v.slice(0, 22);
    const sig = v.slice(23);
    return this.#secrets.some((k) => constantTimeEqual(signature(k, id), sig)) ? id : undefined;
  }
}
