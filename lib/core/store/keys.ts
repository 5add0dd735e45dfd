// The Redis layout's key names, one builder each. Every key of a user starts with
// `<prefix>{<bucket>}`: the bucket (the first BUCKET_LENGTH characters of the user's tag) is the
// Redis hash tag, so a user's keys, and the audit stream their changes append to, share one slot.
import { BUCKET_LENGTH } from '../token.js';

/** `<prefix>{<bucket>}<rest of the tag>`: every session key of one user starts with it. */
export const userBase = (prefix: string, tag: string): string =>
  `${prefix}{${tag.slice(0, BUCKET_LENGTH)}}${tag.slice(BUCKET_LENGTH)}`;

/** `<prefix>{<bucket>}<tag rest><random>`: the hash of one session (its public id after the bucket). */
export const sessionKey = (prefix: string, publicId: string): string =>
  `${prefix}{${publicId.slice(0, BUCKET_LENGTH)}}${publicId.slice(BUCKET_LENGTH)}`;

/** `<prefix>{<bucket>}u<tag rest>`: the user's index (shorter than any session key, so never one). */
export const indexKey = (prefix: string, tag: string): string =>
  `${prefix}{${tag.slice(0, BUCKET_LENGTH)}}u${tag.slice(BUCKET_LENGTH)}`;

/**
 * `<prefix>{<bucket>}k<tag rest>`: the user's known devices (knownDevices), in the index's slot so
 * the create script reads and writes it with the sign-in.
 */
export const knownDevicesKey = (prefix: string, tag: string): string =>
  `${prefix}{${tag.slice(0, BUCKET_LENGTH)}}k${tag.slice(BUCKET_LENGTH)}`;

/** `<prefix>{<bucket>}o`: the audit stream of the bucket of `tagOrId` (a bucket, a tag or a public id). */
export const auditStreamKey = (prefix: string, tagOrId: string): string =>
  `${prefix}{${tagOrId.slice(0, BUCKET_LENGTH)}}o`;

/** `<prefix>{<bucket>}v`: the event feed's stream of the bucket of `tagOrId`. */
export const eventStreamKey = (prefix: string, tagOrId: string): string =>
  `${prefix}{${tagOrId.slice(0, BUCKET_LENGTH)}}v`;

/** `<prefix>{<bucket>}w`: the feed's parked events of the bucket (their handlers kept failing). */
export const parkedStreamKey = (prefix: string, tagOrId: string): string =>
  `${prefix}{${tagOrId.slice(0, BUCKET_LENGTH)}}w`;

/** `<prefix>{<bucket>}x`: the feed's schedule of the bucket's session expiries (the scripts derive it from the stream's key). */
export const expiryScheduleKey = (prefix: string, tagOrId: string): string =>
  `${prefix}{${tagOrId.slice(0, BUCKET_LENGTH)}}x`;

/** `<prefix>audit:lease`: which instance runs the audit's sweep and retention. */
export const auditLeaseKey = (prefix: string): string => `${prefix}audit:lease`;

/** `<session key>z`: what a create's cap eviction removed, kept until the create is acknowledged (for its undo). */
export const stashKey = (prefix: string, publicId: string): string => `${sessionKey(prefix, publicId)}z`;

/** `<prefix>recent`: the recently active sessions the pre-warm reads. */
export const recentKey = (prefix: string): string => `${prefix}recent`;

/** `<prefix>legacy:<name>`: a claim of the takeover of an old session. */
export const legacyClaimKey = (prefix: string, name: string): string => `${prefix}legacy:${name}`;

/** `<prefix>revoked`: the revocation channel. */
export const channelName = (prefix: string): string => `${prefix}revoked`;
