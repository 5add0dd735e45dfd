import { fail } from '../validate.js';
import { parseExposition, type ParsedFamily } from './exposition.js';

/** A prom-client `Registry`, as far as the package uses one. */
export interface PromRegistry {
  /** Add a metric (prom-client refuses a name it has). */
  registerMetric(metric: never): void;
  /** Remove a metric by name. */
  removeSingleMetric(name: string): void;
}

/** What registerPromClient() reads: `app.sessions` (Fastify) or the Express middleware. */
export interface PrometheusSource {
  /** The Prometheus text of the package's metrics. */
  prometheus(): string;
}

/** Ratios are averaged across a prom-client cluster's workers; everything else adds up. */
const AVERAGED = new Set(['tiered_session_l1_hit_ratio', 'tiered_session_l2_amplification']);

/**
 * Register the package's metrics in a prom-client registry: `registry`, or prom-client's
 * default one (then prom-client is imported, and must be installed). Each metric reads the
 * same numbers as `sessions.prometheus()` when the registry is scraped. Resolves to a function
 * that removes them again. A second set (another registration) in the same registry fails,
 * as prom-client refuses a name twice: give it its own registry.
 */
export async function registerPromClient(sessions: PrometheusSource, options: { registry?: PromRegistry } = {}): Promise<() => void> {
  if (typeof (sessions as Partial<PrometheusSource> | null)?.prometheus !== 'function') {
    throw fail('sessions', 'expected app.sessions (Fastify) or the tiered-session middleware (Express)');
  }
  const given = options.registry;
  if (given !== undefined && (typeof given?.registerMetric !== 'function' || typeof given.removeSingleMetric !== 'function')) {
    throw fail('registry', 'expected a prom-client Registry');
  }
  const registry = given ?? ((await import('prom-client')) as unknown as { register: PromRegistry }).register;
  // One read of the text per scrape: the registry asks every metric in the same turn.
  let cached: Map<string, ParsedFamily> | undefined;
  const read = () => {
    if (cached === undefined) {
      cached = new Map(parseExposition(sessions.prometheus()).map((f) => [f.name, f]));
      queueMicrotask(() => { cached = undefined; });
    }
    return cached;
  };
  const names: string[] = [];
  for (const f of parseExposition(sessions.prometheus())) {
    const { name, help, type } = f;
    const aggregator = AVERAGED.has(name) ? 'average' : 'sum';
    const metric = {
      name, help, type, aggregator,
      get: async () => ({
        name, help, type, aggregator,
        values: (read().get(name)?.samples ?? []).map((s) => ({ value: s.value, labels: s.labels, metricName: s.name })),
      }),
      /** The counts are the package's own: prom-client's reset leaves them alone. */
      reset: () => {},
    };
    registry.registerMetric(metric as never);
    names.push(name);
  }
  return () => { for (const n of names) registry.removeSingleMetric(n); };
}
