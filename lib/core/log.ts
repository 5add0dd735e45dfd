/**
 * What the package logs through: pino's call shape (`log.warn({ err }, 'message')`), which
 * Fastify's logger has and any console-like object can be adapted to.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
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
