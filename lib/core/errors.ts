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

  /** Always `'TieredSessionError'`, also for the per-code subclasses. */
  override get name(): string { return 'TieredSessionError'; }

  /** The same value as `statusCode`, under the name Express's error handling reads. */
  get status(): number { return this.statusCode; }
}

/** A per-code error class: `new errors.ERR_NOT_FOUND()`, `err instanceof errors.ERR_NOT_FOUND`. */
export interface TieredSessionErrorClass<A extends unknown[]> {
  /** Make the error; the last argument may carry a `cause`. */
  new (...args: [...A, { cause?: unknown }?]): TieredSessionError;
  /** The code every instance carries. */
  readonly code: string;
}

/** One error class per code, so that `err instanceof errors.ERR_NO_SESSION` and `err.code` both work. */
function define<A extends unknown[]>(code: string, statusCode: number, message: (...args: A) => string): TieredSessionErrorClass<A> {
  return class extends TieredSessionError {
    static readonly code = code;
    constructor(...args: [...A, { cause?: unknown }?]) {
      const last = args[message.length];
      super(code, message(...(args.slice(0, message.length) as A)), statusCode, last as { cause?: unknown } | undefined);
    }
  };
}

/** An option is missing or malformed (thrown at registration; the message names the option). */
export const ERR_INVALID_OPTION = define('ERR_TIERED_SESSION_INVALID_OPTION', 500,
  (option: string, why: string) => `Invalid option "${option}": ${why}`);

/** A call of the package's API with a malformed argument (a programming error of the app). */
export const ERR_INVALID_ARGUMENT = define('ERR_TIERED_SESSION_INVALID_ARGUMENT', 500,
  (call: string, why: string) => `Invalid argument to ${call}: ${why}`);

/** A route read the session, but the Express session middleware did not run for its request. */
export const ERR_NOT_MOUNTED = define('ERR_TIERED_SESSION_NOT_MOUNTED', 500,
  () => 'The session middleware did not run for this request (mount app.use(sessions) before this route)');

/** 401: the route needs a session and the request has none (or a revoked, expired or malformed one). */
export const ERR_NO_SESSION = define('ERR_TIERED_SESSION_NO_SESSION', 401, () => 'Authentication required');

/** 404: no such session of this user (another user's id answers the same). */
export const ERR_NOT_FOUND = define('ERR_TIERED_SESSION_NOT_FOUND', 404, () => 'Session not found');

/** 400: the log-out-everywhere body is not `{ "keepCurrent": boolean }`. */
export const ERR_BAD_BODY = define('ERR_TIERED_SESSION_BAD_BODY', 400,
  () => 'Expected an optional JSON object { "keepCurrent": boolean }');

/** 400: the history query is malformed. */
export const ERR_BAD_QUERY = define('ERR_TIERED_SESSION_BAD_QUERY', 400,
  (why: string) => `Invalid query: ${why}`);

/** 403: a state-changing request from another site. */
export const ERR_CROSS_SITE = define('ERR_TIERED_SESSION_CROSS_SITE', 403, () => 'Cross-site request refused');

/** 503: Redis did not answer in time; nothing was changed that the answer claims. */
export const ERR_UNAVAILABLE = define('ERR_TIERED_SESSION_UNAVAILABLE', 503, () => 'Session store unavailable');

/** 413: session data over `maxDataBytes` as JSON. */
export const ERR_DATA_TOO_LARGE = define('ERR_TIERED_SESSION_DATA_TOO_LARGE', 413,
  (bytes: number, max: number) => `Session data is ${bytes} bytes as JSON; the limit (option "maxDataBytes") is ${max}`);

/** Session data that is not plain JSON (a class instance, a function, a cycle, NaN…). */
export const ERR_DATA_NOT_SERIALIZABLE = define('ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE', 500,
  (why: string) => `Session data must be a plain JSON object: ${why}`);

/** A user id that is empty, too long or not well-formed text. */
export const ERR_BAD_USER_ID = define('ERR_TIERED_SESSION_BAD_USER_ID', 500, (why: string) => `Invalid user id: ${why}`);

/** 403: the route needs a recent authentication; sign in again or re-authenticate. */
export const ERR_REAUTHENTICATION_REQUIRED = define('ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED', 403,
  (maxAgeMs: number) => `Confirm your credentials again: this action needs an authentication within the last ${maxAgeMs} ms (maxAge ` +
    `${maxAgeMs})`);

/** 409: a sign-in past `maxSessionsPerUser` with `capPolicy: 'refuse'`; nothing was created or ended. */
export const ERR_SESSION_LIMIT = define('ERR_TIERED_SESSION_LIMIT', 409,
  () => 'This user already has the most sessions allowed (option "maxSessionsPerUser"); end one first');

/** 503: the revocation was applied on the primary but no replica confirmed it in time. */
export const ERR_NOT_CONFIRMED = define('ERR_TIERED_SESSION_NOT_CONFIRMED', 503,
  () => 'The change was made but no replica confirmed it in time; it may be undone by a failover');
