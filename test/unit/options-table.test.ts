// The defaults live once, in lib/core/defaults.ts; this checks that the three places that say
// them agree with it: the resolver (what resolveOptions actually fills in), the `@default` tags of
// the option types, and the options table of docs/sessions.md (exactly the same options, and
// each one's default cell).
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { DEFAULTS, type OptionDefault } from '../../lib/core/defaults.js';
import { resolveOptions } from '../../lib/core/resolve-options.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const rows = Object.entries(DEFAULTS) as [string, OptionDefault][];

/** The options table of docs/sessions.md: option name → its "default" cell. */
function docsTable(): Map<string, string> {
  const text = readFileSync(path.join(root, 'docs/sessions.md'), 'utf8');
  const start = text.indexOf('| name | type | default |');
  const out = new Map<string, string>();
  for (const line of text.slice(start).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    // Split on the column bars only (a cell may hold an escaped \|).
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    out.set(cells[1].replace(/^`|`$/g, ''), cells[3]);
  }
  return out;
}

/** The `@default` tag of every member of the option interfaces, by option path ('' = no tag). */
function tsdocDefaults(): Map<string, string> {
  const owners: Record<string, string> = {
    TieredSessionOptions: '', FastifySessionOptions: '', ExpressSessionOptions: '', LocalCacheOptions: 'localCache.',
    ShortSessionOptions: 'shortSession.', CookieOptions: 'cookie.', ConfirmOptions: 'confirmRevocations.', AuditOptions: 'audit.',
    EventOptions: 'events.', SessionCaps: 'maxSessionsPerUser.', TelemetryOptions: 'telemetry.',
    KnownDevicesOptions: 'knownDevices.',
  };
  const out = new Map<string, string>();
  for (const file of ['lib/core/options.ts', 'lib/fastify/plugin.ts', 'lib/express/middleware.ts']) {
    const src = ts.createSourceFile(file, readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
    src.forEachChild((node) => {
      if (!ts.isInterfaceDeclaration(node) || !(node.name.text in owners)) return;
      for (const m of node.members) {
        if (!ts.isPropertySignature(m) || !ts.isIdentifier(m.name)) continue;
        const tag = ts.getJSDocTags(m).find((x) => x.tagName.text === 'default');
        const text = typeof tag?.comment === 'string' ? tag.comment.replace(/\s+/g, ' ').trim() : '';
        out.set(owners[node.name.text] + m.name.text, text);
      }
    });
  }
  return out;
}

/** How a default value reads at the start of its texts. */
function render(v: unknown): string | undefined {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

t.test('the table is frozen, row by row', async (t) => {
  t.ok(Object.isFrozen(DEFAULTS));
  for (const [name, row] of rows) t.ok(Object.isFrozen(row), name);
});

t.test('each TSDoc @default says the table\'s text, and each option with a default has one', async (t) => {
  const tags = tsdocDefaults();
  for (const [name, row] of rows) {
    if (name === 'legacy') continue; // two adapters' own option, documented by its type in legacy.ts
    t.ok(tags.has(name), `${name} is an option of the types`);
    t.equal(tags.get(name), row.tsdoc, `${name}: @default ${row.tsdoc || '(none)'}`);
    const shown = render(row.value);
    if (shown !== undefined) t.ok(row.tsdoc.startsWith(shown), `${name}: the text starts with the value ${shown}`);
  }
  const options = [...tags.keys()].filter((k) => !k.includes('.'));
  const adapterOnly = new Set(['routes', 'skip', 'logger', 'legacy']);
  t.same(options.filter((k) => !adapterOnly.has(k)).sort(), rows.map(([k]) => k).filter((k) => !k.includes('.') && k !== 'legacy').sort(),
    'the shared options are exactly the table\'s top-level rows');
});

t.test('docs/sessions.md lists exactly the table\'s options, each with the table\'s default', async (t) => {
  const docs = docsTable();
  const top = rows.filter(([k]) => !k.includes('.'));
  t.same([...docs.keys()].sort(), top.map(([k]) => k).sort(), 'the same options');
  for (const [name, row] of top) {
    t.equal(docs.get(name), row.docs, `${name}: ${row.docs}`);
    const shown = render(row.value);
    if (shown !== undefined) t.match(row.docs, `\`${shown}\``, `${name}: the cell shows the value ${shown}`);
  }
});

t.test('the resolver fills in the table\'s values', async (t) => {
  const client = { duplicate() {}, evalsha() {}, pipeline() {} } as never;
  const pool = { query() {}, connect() {} } as never;
  const r = resolveOptions({ client, secret: 'x'.repeat(32), audit: { pool } });
  const v = (name: keyof typeof DEFAULTS) => DEFAULTS[name].value;
  t.equal(r.keyPrefix, v('keyPrefix'));
  t.equal(r.idleTimeout, v('idleTimeout'));
  t.equal(r.absoluteTimeout, v('absoluteTimeout'));
  t.equal(r.touchInterval, v('touchInterval'));
  t.same(r.localCache, { max: v('localCache.max'), ttl: v('localCache.ttl') });
  t.equal(r.maxSessionsPerUser, v('maxSessionsPerUser'));
  t.same(r.shortSession, { idleTimeout: v('shortSession.idleTimeout'), absoluteTimeout: v('shortSession.absoluteTimeout') });
  t.same(r.confirmRevocations, { mode: v('confirmRevocations'), replicas: v('confirmRevocations.replicas'),
    timeout: v('confirmRevocations.timeout') });
  t.equal(r.replicaLagTolerance, v('replicaLagTolerance'));
  t.equal(r.commandTimeout, v('commandTimeout'));
  t.equal(r.heartbeatInterval, v('heartbeatInterval'));
  t.equal(r.maxDataBytes, v('maxDataBytes'));
  t.same(r.cookie, {
    name: v('cookie.name'), secure: v('cookie.secure'), httpOnly: v('cookie.httpOnly'), sameSite: v('cookie.sameSite'),
    path: v('cookie.path'), domain: v('cookie.domain'),
  });
  t.same([...r.allowedOrigins], v('allowedOrigins'));
  t.equal(r.countryHeader, v('countryHeader'));
  t.equal(r.maxUserAgentLength, v('maxUserAgentLength'));
  t.equal(r.prewarm, v('prewarm'));
  t.equal(r.reauthenticateToRevoke, v('reauthenticateToRevoke'));
  t.equal(r.capPolicy, v('capPolicy'));
  t.equal(r.now, v('now'));
  t.equal(r.requestProperty, v('requestProperty'));
  t.equal(r.readFrom, v('readFrom'));
  t.equal(r.knownDevices, undefined, 'knownDevices: off (false)');
  t.equal(v('knownDevices'), false);
  t.same(resolveOptions({ client, secret: 'x'.repeat(32), knownDevices: true }).knownDevices, {
    max: v('knownDevices.max'), ttl: v('knownDevices.ttl'), cookieName: `${v('cookie.name')}.device`,
  });
  t.same(r.telemetry, {
    sampleEvery: v('telemetry.sampleEvery'), redisTimings: v('telemetry.redisTimings'), openTelemetry: v('telemetry.openTelemetry'),
  });
  const a = r.audit!;
  t.same({ schema: a.schema, table: a.table ?? v('audit.table'), migrate: a.migrate, retentionDays: a.retentionDays }, {
    schema: v('audit.schema'), table: v('audit.table'), migrate: v('audit.migrate'), retentionDays: v('audit.retentionDays'),
  });
  t.same({ sweepInterval: a.sweepInterval, activityInterval: a.activityInterval, bufferEvents: a.bufferEvents, pollInterval: a.pollInterval,
    consume: a.consume }, {
    sweepInterval: v('audit.sweepInterval'), activityInterval: v('audit.activityInterval'), bufferEvents: v('audit.bufferEvents'),
    pollInterval: v('audit.pollInterval'), consume: v('audit.consume'),
  });
  t.equal(resolveOptions({ client, secret: 'x'.repeat(32) }).audit, v('audit'));
  t.equal(resolveOptions({ client, secret: 'x'.repeat(32) }).events, v('events'));
  t.same(resolveOptions({ client, secret: 'x'.repeat(32), events: true }).events, {
    maxAttempts: v('events.maxAttempts'), retryDelay: v('events.retryDelay'), handlerTimeout: v('events.handlerTimeout'),
    pollInterval: v('events.pollInterval'),
    sweepInterval: v('events.sweepInterval'), bufferEvents: v('events.bufferEvents'), consume: v('events.consume'),
  });
});
