import { ERR_UNAVAILABLE } from '../errors.js';
import type { RedisClient } from '../options.js';
import { withTimeout } from './timeout.js';

/** Told of each Redis call as it starts; what it answers is called when the call settles (with the failure, if any). */
export interface RedisObserver {
  begin(what: string): ((err?: unknown) => void) | undefined;
}

/** Marks a failure after the command was sent (a timeout, a dropped connection): it may still have run. */
const kUnknownOutcome = Symbol('tiered-session.unknownOutcome');

/** Whether a failed write may still have landed (it was sent, and no answer came). */
export function isUnknownOutcome(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kUnknownOutcome] === true;
}

/**
 * One Redis call under `timeout` ms; any failure becomes ERR_UNAVAILABLE (cause kept). Nothing is
 * sent while `client` is not ready, so nothing piles up in ioredis's offline queue; a failure after
 * sending is marked as an unknown outcome (see isUnknownOutcome).
 */
export async function boundedCall<T>(client: RedisClient, timeout: number, observer: RedisObserver | undefined, what: string,
  fn: () => Promise<T>): Promise<T> {
  if (client.status !== 'ready') throw new ERR_UNAVAILABLE({ cause: new Error(`redis client is ${client.status}`) });
  const settled = observer?.begin(what);
  try {
    const out = await withTimeout(fn(), timeout, what);
    settled?.();
    return out;
  } catch (err) {
    settled?.(err);
    const e = new ERR_UNAVAILABLE({ cause: err });
    // A reply that is an error (NOPERM, OOM, a script error) is a known outcome: nothing was written.
    if (!(err instanceof Error && err.name === 'ReplyError')) Object.defineProperty(e, kUnknownOutcome, { value: true });
    throw e;
  }
}
