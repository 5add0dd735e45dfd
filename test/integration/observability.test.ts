// What an operator sees: Redis latency per operation, the sampled resolve time, the L1 hit ratio
// and L2 amplification; the same numbers through a prom-client registry (scraped and parsed) and
// through OpenTelemetry (in-memory span and metric exporters), against a real redis-server.
import t from 'tap';
import type { Test } from 'tap';
import { Registry, register as defaultRegistry } from 'prom-client';
import { metrics as otelMetrics, trace as otelTrace } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader,
  type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerPromClient } from '../../lib/index.js';
import { parseExposition, type ParsedFamily } from '../../lib/core/observe/exposition.js';
import { REDIS_OPERATIONS } from '../../lib/core/metrics.js';
import { COOKIE, eachTarget, makeApp, me, signIn, cacheTrusted, type Target, type TestApp } from '../fixtures/targets.js';

const families = (text: string) => new Map(parseExposition(text).map((f) => [f.name, f]));

/** `name`'s `_count` sample for the label set `labels` (0 when absent). */
function countOf(f: ParsedFamily | undefined, labels: Record<string, string> = {}): number {
  const s = f?.samples.find((x) => x.name.endsWith('_count') && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}

/** Every Redis operation once: create, read (a miss), list, update, touch, revoke, revoke-all, and a WAIT. */
async function everyOperation(t: Test, app: TestApp): Promise<{ token: string; id: string }> {
  const s = await signIn(app, 'alice');
  app.sessions.invalidate([s.id]);
  t.equal((await me(app, s.token)).statusCode, 200, 'a miss reads Redis');
  t.equal((await app.inject({ url: '/sessions', cookies: { [COOKIE]: s.token } })).statusCode, 200, 'the device list');
  t.equal((await app.inject({ method: 'POST', url: '/data', cookies: { [COOKIE]: s.token }, payload: { a: 1 } })).statusCode, 200,
    'an update');
  await app.sessions.store.touch([{ publicId: s.id, now: Date.now() }]);
  const store = app.sessions.store;
  const acknowledgedBy = store.acknowledgedBy;
  store.acknowledgedBy = { replicas: 0, timeout: 10 };
  await store.acknowledgeOn(s.id);
  store.acknowledgedBy = acknowledgedBy;
  const other = await signIn(app, 'alice');
  t.ok(await app.face.revoke(other.id), 'a revoke');
  t.equal(await app.face.revokeAll('alice'), 1, 'a revoke-all');
  return { token: s.token, id: s.id };
}

t.test('Redis latency per operation, the sampled resolve, hit ratio and amplification', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), telemetry: { sampleEvery: 4, openTelemetry: false } });
    await cacheTrusted(app);
    const { token } = await everyOperation(t, app);
    const f = families(app.face.prometheus());
    const ops = f.get('tiered_session_redis_operation_seconds');
    t.equal(ops?.type, 'histogram');
    for (const op of REDIS_OPERATIONS) t.ok(countOf(ops, { operation: op }) >= 1, `${op} is timed`);
    const stats = app.face.stats();
    t.ok(stats.redisLatency.read.p99 > 0 && stats.redisLatency.read.p99 < 5, `read p99 ${stats.redisLatency.read.p99} s`);
    const buckets = ops!.samples.filter((s) => s.labels.operation === 'read' && s.name.endsWith('_bucket')).map((s) => s.labels.le);
    t.equal(buckets[0], '0.00005', 'the first bucket is 50 µs');
    t.ok(Number(buckets[buckets.length - 2]) >= 5, 'the last finite bucket is past 5 s');

    // The sampled resolve: one in four requests carrying a session cookie.
    const s = await signIn(app, 'bob');
    await me(app, s.token);
    const before = countOf(families(app.face.prometheus()).get('tiered_session_resolve_seconds'));
    const hitsBefore = app.face.stats().l1Hits;
    for (let i = 0; i < 16; i++) t.equal((await me(app, s.token)).statusCode, 200);
    const after = families(app.face.prometheus());
    t.equal(app.face.stats().l1Hits - hitsBefore, 16, 'sixteen L1 hits');
    t.equal(countOf(after.get('tiered_session_resolve_seconds')) - before, 4, 'four of the sixteen were timed');
    t.ok(app.face.stats().resolveTime.p99 < 0.05, 'an L1 hit resolves well under 50 ms');
    t.equal((await me(app, token)).statusCode, 401, 'the revoked-everywhere session is gone');

    const r = app.face.stats();
    const gauges = families(app.face.prometheus());
    t.ok(r.l1HitRatio > 0.5 && r.l1HitRatio < 1, `hit ratio ${r.l1HitRatio}`);
    t.ok(r.l2Amplification > 0 && r.l2Amplification < 0.5, `L2 amplification ${r.l2Amplification}`);
    // Within its first minute the window reaches back to the start: the totals divided.
    t.equal(r.l1HitRatio, r.l1Hits / (r.l1Hits + r.l1Misses), 'hits per resolved request');
    t.equal(r.l2Amplification, r.redisReads / (r.l1Hits + r.l1Misses), 'Redis reads per resolved request');
    t.equal(gauges.get('tiered_session_l1_hit_ratio')?.samples[0].value, r.l1HitRatio, 'the gauge says the same');
    t.equal(gauges.get('tiered_session_l2_amplification')?.samples[0].value, r.l2Amplification, 'and the amplification gauge');
  });
});

t.test('telemetry: false times nothing; the counters stay', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), telemetry: false });
    await cacheTrusted(app);
    const s = await signIn(app, 'carol');
    for (let i = 0; i < 70; i++) await me(app, s.token);
    const f = families(app.face.prometheus());
    t.equal(countOf(f.get('tiered_session_resolve_seconds')), 0, 'no resolve timed');
    t.equal(countOf(f.get('tiered_session_redis_operation_seconds'), { operation: 'create' }), 0, 'no Redis call timed');
    t.equal(app.face.stats().l1Hits, 70, 'the hits are counted');
  }, { adapters: ['fastify'] });
});

t.test('prom-client: the metrics in the app\'s registry, scraped and parsed', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), telemetry: { openTelemetry: false } });
    await cacheTrusted(app);
    const registry = new Registry();
    const unregister = await registerPromClient(app.face, { registry });
    const s = await signIn(app, 'dave');
    await me(app, s.token);
    await me(app, s.token);
    const scraped = families(await registry.metrics());
    const own = families(app.face.prometheus());
    t.same([...scraped.keys()].sort(), [...own.keys()].sort(), 'every family of the text is in the registry');
    t.equal(scraped.get('tiered_session_l1_hits_total')?.type, 'counter');
    t.equal(scraped.get('tiered_session_l1_hits_total')?.samples[0].value, 2, 'two L1 hits, read when scraped');
    t.equal(countOf(scraped.get('tiered_session_redis_operation_seconds'), { operation: 'create' }), 1, 'the create is in the histogram');
    t.same(scraped.get('tiered_session_channel_state')?.samples.find((x) => x.labels.state === 'confirmed')?.value, 1, 'labelled gauges');
    t.notOk((await registry.metrics()).includes(s.secret), 'no secret in the scrape');
    const json = await registry.getMetricsAsJSON();
    t.ok(json.some((m) => m.name === 'tiered_session_size_bytes'), 'the JSON form (cluster aggregation) works');
    await t.rejects(registerPromClient(app.face, { registry }), /already been registered/, 'a second set in one registry fails');
    unregister();
    t.equal(await registry.metrics(), '\n', 'unregistered');
    await t.rejects(registerPromClient(app.face, { registry: {} as never }),
      { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: /"registry"/ });
    // No registry: prom-client's default one.
    const off = await registerPromClient(app.face);
    t.ok((await defaultRegistry.metrics()).includes('tiered_session_l1_hits_total 2'), 'the default registry serves them');
    off();
  }, { adapters: ['fastify'] });
});

t.test('OpenTelemetry: spans for Redis calls and the metrics through a meter (in-memory exporters)', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    t.teardown(async () => { await meterProvider.shutdown(); await tracerProvider.shutdown(); });
    const app = await makeApp(t, target.client(),
      { keyPrefix: target.prefix(), telemetry: { sampleEvery: 1, openTelemetry: { tracerProvider, meterProvider } } });
    await cacheTrusted(app);
    const { token, id } = await everyOperation(t, app);
    const s = await signIn(app, 'erin');
    await me(app, s.token);

    const names = new Set(spans.getFinishedSpans().map((x) => x.name));
    for (const op of REDIS_OPERATIONS) t.ok(names.has(`tiered-session redis ${op}`), `a span for ${op}`);
    const dump = JSON.stringify(spans.getFinishedSpans().map((x) => ({ name: x.name, attributes: x.attributes, status: x.status })));
    for (const secret of [token, id, s.token, s.id]) t.notOk(dump.includes(secret), 'no token or session id in a span');
    t.same(spans.getFinishedSpans().find((x) => x.name === 'tiered-session redis read')?.attributes,
      { 'db.system': 'redis', 'tiered_session.operation': 'read' }, 'the operation, nothing else');

    await reader.forceFlush();
    const metrics = exporter.getMetrics().at(-1)!.scopeMetrics.flatMap((x) => x.metrics);
    const byName = new Map(metrics.map((m) => [m.descriptor.name, m]));
    t.equal(byName.get('tiered_session_l1_hits')?.dataPoints[0].value, app.face.stats().l1Hits, 'the hits counter');
    const channel = byName.get('tiered_session_channel_state')?.dataPoints.find((p) => p.attributes.state === 'confirmed');
    t.equal(channel?.value, 1, 'a labelled gauge, labels as attributes');
    const ops = byName.get('tiered_session_redis_operation_seconds') as HistogramMetricData | undefined;
    t.equal(ops?.dataPointType, DataPointType.HISTOGRAM);
    const create = ops?.dataPoints.find((p) => p.attributes.operation === 'create');
    t.equal(create?.value.count, app.face.stats().redisLatency.create.count, 'the create histogram counts as the text does');
    t.equal(create?.value.buckets.boundaries[0], 0.00005, 'with the same buckets');
    const resolves = (byName.get('tiered_session_resolve_seconds') as HistogramMetricData | undefined)?.dataPoints[0].value.count;
    t.equal(resolves, app.face.stats().resolveTime.count, 'the sampled resolves');
    t.ok(byName.has('tiered_session_size_bytes'), 'the session sizes');
  }, { adapters: ['fastify'] });
});

t.test('OpenTelemetry auto: the global providers of @opentelemetry/api', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    otelTrace.setGlobalTracerProvider(tracerProvider);
    otelMetrics.setGlobalMeterProvider(meterProvider);
    t.teardown(async () => {
      otelTrace.disable();
      otelMetrics.disable();
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    });
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    await signIn(app, 'frank');
    t.ok(spans.getFinishedSpans().some((x) => x.name === 'tiered-session redis create'), 'the global tracer got the create');
    const { resourceMetrics } = await reader.collect();
    t.ok(resourceMetrics.scopeMetrics.some((x) => x.metrics.some((m) => m.descriptor.name === 'tiered_session_l1_misses')),
      'the global meter serves the counters');
  }, { only: ['single'], adapters: ['fastify'] });
});

t.test('telemetry option errors name the option', async (t) => {
  await eachTarget(t, async (t: Test, target: Target) => {
    const client = target.client();
    for (const [telemetry, name] of [
      [true, 'telemetry'], [{ sampleEvery: -1 }, 'telemetry.sampleEvery'], [{ redisTimings: 'yes' }, 'telemetry.redisTimings'],
      [{ openTelemetry: true }, 'telemetry.openTelemetry'],
        [{ openTelemetry: { meterProvider: {} } }, 'telemetry.openTelemetry.meterProvider'],
      [{ other: 1 }, 'telemetry.other'],
    ] as const) {
      await t.rejects(makeApp(t, client, { keyPrefix: target.prefix(), telemetry: telemetry as never }),
        { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: new RegExp(`"${name.replace(/\./g, '\\.')}"`) }, name);
    }
  }, { only: ['single'], adapters: ['fastify'] });
});
