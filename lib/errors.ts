import createError from '@fastify/error';

/**
 * Every error the plugin raises carries a stable `code` with one prefix and, for request-time
 * problems, the HTTP status Fastify answers with. Messages never contain a token or a secret.
 */
export const ERR_INVALID_OPTION = createError<'ERR_TIERED_SESSION_INVALID_OPTION', [string, string]>(
  'ERR_TIERED_SESSION_INVALID_OPTION',
  'Invalid option "%s": %s',
  500,
);

export const ERR_NO_SESSION = createError('ERR_TIERED_SESSION_NO_SESSION', 'Authentication required', 401);

export const ERR_NOT_FOUND = createError('ERR_TIERED_SESSION_NOT_FOUND', 'Session not found', 404);

export const ERR_BAD_BODY = createError('ERR_TIERED_SESSION_BAD_BODY', 'Expected an optional JSON object { "keepCurrent": boolean }', 400);

export const ERR_CROSS_SITE = createError('ERR_TIERED_SESSION_CROSS_SITE', 'Cross-site request refused', 403);

export const ERR_UNAVAILABLE = createError('ERR_TIERED_SESSION_UNAVAILABLE', 'Session store unavailable', 503);

export const ERR_DATA_TOO_LARGE = createError<'ERR_TIERED_SESSION_DATA_TOO_LARGE', [number, number]>(
  'ERR_TIERED_SESSION_DATA_TOO_LARGE',
  'Session data is %s bytes as JSON; the limit (option "maxDataBytes") is %s',
  413,
);

export const ERR_DATA_NOT_SERIALIZABLE = createError<'ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE', [string]>(
  'ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE',
  'Session data must be a plain JSON object: %s',
  500,
);

export const ERR_BAD_USER_ID = createError<'ERR_TIERED_SESSION_BAD_USER_ID', [string]>(
  'ERR_TIERED_SESSION_BAD_USER_ID',
  'Invalid user id: %s',
  500,
);
