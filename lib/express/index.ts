// `tiered-session/express`: the Express middleware (Express 4 and 5).
import { tieredSession } from './middleware.js';

export { tieredSession };
export default tieredSession;
export type { ExpressSessionOptions, TieredSessionMiddleware } from './middleware.js';
export type { Logger } from '../core/log.js';
export type * from '../index.js';
export { parseDevice, TieredSessionError, errors, migrateAuditTable } from '../index.js';
