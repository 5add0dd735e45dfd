// `tiered-session/fastify`: the Fastify plugin.
import { tieredSession } from './plugin.js';

export { tieredSession };
export default tieredSession;
export type { FastifySessionOptions, Guard } from './plugin.js';
export type * from '../index.js';
export { parseDevice, TieredSessionError, errors, migrateAuditTable } from '../index.js';
