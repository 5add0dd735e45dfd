import { fastifyTieredSession } from './plugin.js';

export { fastifyTieredSession };
export default fastifyTieredSession;
export type { SignInOptions, SignedIn, Guard } from './plugin.js';
export type { Session, SessionData, SessionInfo, SessionManager } from './manager.js';
export type { DeviceInfo } from './device.js';
export { parseDevice } from './device.js';
export type {
  TieredSessionOptions, CookieOptions, LocalCacheOptions, RoutesOptions, RedisClient, Milliseconds,
} from './options.js';
export type { StatsSnapshot } from './metrics.js';
export * as errors from './errors.js';
