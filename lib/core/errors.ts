/**
 * Every error the package raises is a `TieredSessionError`: a stable `code` with one prefix and,
 * for request-time problems, the HTTP status to answer with (`statusCode`, which Fastify reads,
 * and `status`, which Express's final handler reads). Messages never contain a token or a secret.
 */
export class TieredSessionError extends Error {
  /** Stable, machine-readable: `ERR_TIERED_SESSION_…`. */
  readonly code: string;
  /** The HTTP status an adapter answers with. */
  readonly statusCode: number;
  /** Express and `http-errors` convention: a 4xx message is safe to show the client. */
  readonly expose: boolean;

  constructor(code: string, message: string, statusCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.statusCode = statusCode;
    this.expose = statusCode < 500;
  }

  override get name(): string { return 'TieredSessionError'; }

  /** The same value as `statusCode`, under the name Express's error handling reads. */
  get status(): number { return this.statusCode; }
}

/** One error class per code, so that `err instanceof errors.ERR_NO_SESSION` and `err.code` both work. */
function define<A extends unknown[]>(code: string, statusCode: number, message: (...args: A) => string) {
  return class extends TieredSessionError {
    static readonly code = code;
    constructor(...args: [...A, { cause?: unknown }?]) {
      const last = args[message.length];
      super(code, message(...(args.slice(0, message.length) as A)), statusCode, last as { cause?: unknown } | undefined);
    }
  };
}

export const ERR_INVALID_OPTION = define('ERR_TIERED_SESSION_INVALID_OPTION', 500,
  (option: string, why: string) => `Invalid option "${option}": ${why}`);

export const ERR_NO_SESSION = define('ERR_TIERED_SESSION_NO_SESSION', 401, () => 'Authentication required');

export const ERR_NOT_FOUND = define('ERR_TIERED_SESSION_NOT_FOUND', 404, () => 'Session not found');

export const ERR_BAD_BODY = define('ERR_TIERED_SESSION_BAD_BODY', 400,
  () => 'Expected an optional JSON object { "keepCurrent": boolean }');

export const ERR_BAD_QUERY = define('ERR_TIERED_SESSION_BAD_QUERY', 400,
  (why: string) => `Invalid query: ${why}`);

export const ERR_CROSS_SITE = define('ERR_TIERED_SESSION_CROSS_SITE', 403, () => 'Cross-site request refused');

export const ERR_UNAVAILABLE = define('ERR_TIERED_SESSION_UNAVAILABLE', 503, () => 'Session store unavailable');

export const ERR_DATA_TOO_LARGE = define('ERR_TIERED_SESSION_DATA_TOO_LARGE', 413,
  (bytes: number, max: number) => `Session data is ${bytes} bytes as JSON; the limit (option "maxDataBytes") is ${max}`);

export const ERR_DATA_NOT_SERIALIZABLE = define('ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE', 500,
  (why: string) => `Session data must be a plain JSON object: ${why}`);

export const ERR_BAD_USER_ID = define('ERR_TIERED_SESSION_BAD_USER_ID', 500, (why: string) => `Invalid user id: ${why}`);

export const ERR_REAUTHENTICATION_REQUIRED = define('ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED', 403,
  (maxAgeMs: number) => `Confirm your credentials again: this action needs an authentication within the last ${maxAgeMs} ms (maxAge ${maxAgeMs})`);

export const ERR_NOT_CONFIRMED = define('ERR_TIERED_SESSION_NOT_CONFIRMED', 503,
  () => 'The change was made but no replica confirmed it in time; it may be undone by a failover');
