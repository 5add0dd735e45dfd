// The published artifact: the "exports" map resolves for `import` and for `require()`, both
// builds register on Fastify, and type declarations are emitted from the TypeScript source.
// Runs plain `node` (no TypeScript loader) on small scripts inside the package, which reach it by
// package self-reference, exactly as a user's code would reach it in node_modules.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string; exports: Record<string, unknown>; main: string; module: string; types: string;
};

/** Every .ts file under lib/, relative to lib/. */
function sources(dir = path.join(root, 'lib'), rel = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(path.join(dir, d.name), path.join(rel, d.name)) : d.name.endsWith('.ts') ? [path.join(rel, d.name)] : []);
}

const mtime = (p: string) => statSync(p).mtimeMs;

/** dist/ exists and is newer than every source file (`npm test` builds right before tap). */
function distIsFresh(): boolean {
  const outputs = ['dist/esm/index.js', 'dist/cjs/index.js', 'dist/cjs/package.json'].map((p) => path.join(root, p));
  if (!outputs.every((p) => existsSync(p))) return false;
  const built = Math.min(...outputs.map(mtime));
  return sources().every((s) => mtime(path.join(root, 'lib', s)) <= built);
}

/** A child environment without the test runner's TypeScript loader. */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

function runNode(script: string): { status: number | null; out: Record<string, unknown>; stderr: string } {
  const r = spawnSync(process.execPath, [script], { cwd: root, env: plainEnv(), encoding: 'utf8', timeout: 30_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> = {};
  try { out = JSON.parse(line) as Record<string, unknown>; } catch { /* asserted by the caller */ }
  return { status: r.status, out, stderr: r.stderr };
}

t.before(() => {
  if (distIsFresh()) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: root, env: plainEnv(), encoding: 'utf8', timeout: 180_000 });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
});

t.test('dist/ is built from the current sources', async (t) => {
  t.ok(distIsFresh(), 'dist/esm, dist/cjs and dist/cjs/package.json exist and are newer than lib/');
  t.same(JSON.parse(readFileSync(path.join(root, 'dist/cjs/package.json'), 'utf8')), { type: 'commonjs' },
    'dist/cjs is marked CommonJS inside the "type": "module" package');
});

/** A child's JSON report, read by path. */
interface Json { readonly [key: string]: Json }

const ROOT_EXPORTS = ['TieredSessionError', 'errors', 'migrateAuditTable', 'parseDevice', 'registerPromClient'];

t.test('an ESM `import` gets the ESM build: the Fastify plugin registers, the Express middleware serves, a bad option is a coded error',
  async (t) => {
  const { status, out, stderr } = runNode('test/fixtures/pkg/import.mjs');
  t.equal(status, 0, `node exits 0 ${stderr}`);
  const o = out as Json;
  t.match(o.resolved, [/\/dist\/esm\/index\.js$/, /\/dist\/esm\/fastify\/index\.js$/, /\/dist\/esm\/express\/index\.js$/],
    'the root, /fastify and /express resolve through the "import" condition to dist/esm');
  t.same(o.fastify.default, 'function', 'the Fastify default export is the plugin');
  t.equal(o.fastify.same, true, 'the default and the named export are the same plugin');
  t.equal(o.express.default, 'function', 'the Express default export is the middleware factory');
  t.equal(o.express.same, true, 'the default and the named export are the same factory');
  t.same(o.root, ROOT_EXPORTS, 'the root exports only what both adapters share (types aside)');
  t.equal(o.errors, 'function', 'the errors namespace carries the error classes');
  t.equal(o.parseDevice, 'function', 'parseDevice is exported');
  t.same(o.fastify.decorators, ['function', 'function', 'function'],
    'registering decorates app.sessions, requireSession and refuseCrossSite');
  t.equal(o.fastify.sessionsRoute, 401, 'the device routes are registered (401 without a session)');
  t.equal(o.fastify.badOption, 'ERR_TIERED_SESSION_INVALID_OPTION', 'a bad option fails ready() with the coded error');
  t.equal(o.fastify.badOptionIsPackageError, true, 'which is an instance of the exported error classes');
  t.same(o.express.api, ['function', 'function', 'function'], 'the middleware carries revokeAll, requireSession and refuseCrossSite');
  t.same(o.express.sessionsRoute, [401, 'ERR_TIERED_SESSION_NO_SESSION'], 'its routes answer 401 through the app\'s error handler');
  t.equal(o.express.badOption, 'ERR_TIERED_SESSION_INVALID_OPTION', 'a bad option throws the coded error when the middleware is created');
  t.same(o.fastify.sessionsKeys,
    ['events', 'healthy', 'history', 'list', 'prometheus', 'revoke', 'revokeAll', 'revokeEveryone', 'stats'],
    'app.sessions carries exactly the documented members');
  t.same(o.fastify.sessionsHidden, [], 'and none of the machinery (store, resolve, create, invalidate, start, close)');
  t.same(o.express.keys, ['close', 'events', 'healthy', 'history', 'list', 'prometheus', 'ready', 'refuseCrossSite',
    'requireRecentAuthentication', 'requireSession', 'revoke', 'revokeAll', 'revokeEveryone', 'routes', 'stats'],
    'the Express middleware carries exactly the documented members');
  t.same(o.express.hidden, [], 'and none of the machinery');
});

t.test('a CommonJS `require()` gets the CommonJS build: the plugin and the middleware factory are the modules themselves', async (t) => {
  const { status, out, stderr } = runNode('test/fixtures/pkg/require.cjs');
  t.equal(status, 0, `node exits 0 ${stderr}`);
  const o = out as Json;
  t.match(o.resolved, [/\/dist\/cjs\/index\.js$/, /\/dist\/cjs\/cjs\/fastify\.js$/, /\/dist\/cjs\/cjs\/express\.js$/],
    'the root, /fastify and /express resolve through the "require" condition to dist/cjs');
  t.same(o.fastify, { module: 'function', default: true, named: true, decorators: ['function', 'function', 'function'], sessionsRoute: 401,
    badOption: 'ERR_TIERED_SESSION_INVALID_OPTION', badOptionIsPackageError: true },
  'require("tiered-session/fastify") is the plugin (also as .default and .tieredSession), registers as is, and refuses a bad option');
  t.same(o.express, { module: 'function', default: true, named: true, sessionsRoute: [401, 'ERR_TIERED_SESSION_NO_SESSION'] },
    'require("tiered-session/express") is the middleware factory (also as .default and .tieredSession)');
  t.same(o.root, ROOT_EXPORTS, 'the root exports the shared parts');
  t.equal(o.errors, 'function');
  t.equal(o.sameErrors, true, 'one set of error classes, whichever entry point it is reached from');
});

t.test('type declarations are emitted from the source for both builds, and every path the package names exists', async (t) => {
  for (const build of ['esm', 'cjs']) {
    const missing = sources().filter((s) => build === 'cjs' || !s.startsWith('cjs'))
      .map((s) => s.replace(/\.ts$/, '.d.ts')).filter((d) => !existsSync(path.join(root, 'dist', build, d)));
    t.same(missing, [], `every lib/ source has a declaration file in dist/${build}`);
    const plugin = path.join(root, 'dist', build, 'fastify', 'plugin.d.ts');
    t.match(existsSync(plugin) ? readFileSync(plugin, 'utf8') : '', /declare module ['"]fastify['"]/,
      `dist/${build}/fastify/plugin.d.ts carries the Fastify type augmentation (request.session, reply.signIn…)`);
    const middleware = path.join(root, 'dist', build, 'express', 'middleware.d.ts');
    t.match(existsSync(middleware) ? readFileSync(middleware, 'utf8') : '', /namespace Express/,
      `dist/${build}/express/middleware.d.ts carries the Express type augmentation (req.session, req.signIn…)`);
  }
  t.match(readFileSync(path.join(root, 'dist/cjs/cjs/fastify.d.ts'), 'utf8'), /export = plugin/,
    'the CommonJS /fastify types say `export =`');
  const targets: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string') targets.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(pkg.exports);
  walk((pkg as { typesVersions?: unknown }).typesVersions);
  targets.push(pkg.main, pkg.module, pkg.types);
  for (const p of targets) t.ok(existsSync(path.join(root, p)), `${p} (named in package.json) exists`);
});

t.test('`npm pack` from a clean checkout (no dist/) builds first and packs both builds', async (t) => {
  // A copy of what a fresh clone holds, with the dependencies linked; dist/ absent.
  const dir = mkdtempSync(path.join(tmpdir(), 'tiered-session-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['package.json', 'README.md', 'LICENSE', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'lib', 'scripts']) {
    cpSync(path.join(root, f), path.join(dir, f), { recursive: true });
  }
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts=false'],
    { cwd: dir, env: plainEnv(), encoding: 'utf8', timeout: 180_000 });
  t.equal(r.status, 0, `npm pack succeeds ${r.status === 0 ? '' : r.stderr}`);
  const files = (JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  for (const f of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/package.json', 'dist/esm/fastify/index.js',
    'dist/cjs/cjs/express.js']) {
    t.ok(files.includes(f), `the tarball holds ${f}`);
  }
});
