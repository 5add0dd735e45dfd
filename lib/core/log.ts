/**
 * What the package logs through: pino's call shape (`log.warn({ err }, 'message')`), which
 * Fastify's logger has and any console-like object can be adapted to.
 */
export interface Logger {
  /** Detail for debugging (e.g. a failed touch batch). */
  debug(obj: object, msg: string): void;
  /** State changes (the channel confirmed, replicas found). */
  info(obj: object, msg: string): void;
  /** Something an operator should look at (Redis away, a revocation unconfirmed). */
  warn(obj: object, msg: string): void;
  /** A failure the package could not recover from by itself. */
  error(obj: object, msg: string): void;
}

/** A Logger over `console`, for apps that pass none (Express has no logger of its own). Debug is dropped. */
export const consoleLogger: Logger = {
  debug() {},
  info(obj, msg) { console.info(msg, describe(obj)); },
  warn(obj, msg) { console.warn(msg, describe(obj)); },
  error(obj, msg) { console.error(msg, describe(obj)); },
};

function describe(obj: object): string {
  const err = (obj as { err?: unknown }).err;
  const rest = Object.entries(obj).filter(([k]) => k !== 'err');
  const parts = rest.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (err instanceof Error) parts.push(`err=${err.message}`);
  return parts.join(' ');
}
