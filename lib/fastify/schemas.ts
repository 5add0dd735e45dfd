// The device routes' JSON schemas of their success answers: fast serialisation and an allow-list
// of fields (the core's ListedSession and HistoryEntry shapes, as Fastify validates them).

const nullableString = { type: ['string', 'null'] } as const;
const deviceSchema = {
  type: 'object',
  required: ['name', 'browser', 'os', 'type'],
  properties: { name: { type: 'string' }, browser: nullableString, os: nullableString, type: nullableString },
} as const;

/** What a device-list entry and a history entry share. */
const entryProperties = {
  id: { type: 'string' },
  current: { type: 'boolean' },
  device: deviceSchema,
  ip: nullableString,
  country: nullableString,
} as const;

/** `{ sessions: [item] }` with the entries' allow-list. */
const sessionsOf = (required: readonly string[], properties: Record<string, unknown>) => ({
  type: 'object',
  required: ['sessions'],
  properties: {
    sessions: {
      type: 'array',
      items: { type: 'object', required: ['id', 'current', 'device', 'ip', 'country', ...required],
        properties: { ...entryProperties, ...properties } },
    },
  },
});

export const LIST_SCHEMA = sessionsOf(['createdAt', 'lastActiveAt', 'expiresAt', 'remembered', 'newDevice'], {
  createdAt: { type: 'string' },
  lastActiveAt: { type: 'string' },
  expiresAt: { type: 'string' },
  remembered: { type: 'boolean' },
  newDevice: { type: 'boolean' },
});

export const EVERYWHERE_SCHEMA = {
  type: 'object', required: ['revoked'], properties: { revoked: { type: 'integer' } },
} as const;

export const HISTORY_SCHEMA = sessionsOf(['createdAt', 'lastActiveAt', 'expiresAt', 'endedAt', 'endReason'], {
  createdAt: nullableString,
  lastActiveAt: nullableString,
  expiresAt: nullableString,
  endedAt: nullableString,
  endReason: nullableString,
});
