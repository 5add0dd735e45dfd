// The published artifact: the "exports" map resolves for `import` and for `require()`, both
// builds register on Fastify, and type declarations are emitted from the TypeScript source.
// Runs plain `node` (no TypeScript loader) on small scripts inside the package, which reach it by
// package self-reference, exactly as a user's code would reach it in node_modules.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
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

t.test('an ESM `import` of the package name gets the ESM build, whose default export is the plugin and registers on Fastify', async (t) => {
  const { status, out, stderr } = runNode('test/fixtures/pkg/import.mjs');
  t.equal(status, 0, `node exits 0 ${stderr}`);
  t.match(out.resolved, /\/dist\/esm\/index\.js$/, 'resolves through the "import" condition to dist/esm/index.js');
  t.equal(out.defaultExport, 'function', 'the default export is a function');
  t.equal(out.namedExport, 'function', 'fastifyTieredSession is a function');
  t.equal(out.same, true, 'the default and the named export are the same plugin');
  t.equal(out.errors, 'function', 'the errors namespace carries the error classes');
  t.equal(out.parseDevice, 'function', 'parseDevice is exported');
  t.same(out.decorators, ['function', 'function', 'function'], 'registering decorates app.sessions, requireSession and refuseCrossSite');
  t.equal(out.sessionsRoute, 401, 'the device routes are registered (401 without a session)');
  t.equal(out.badOption, 'ERR_TIERED_SESSION_INVALID_OPTION', 'a bad option fails ready() with the coded error');
  t.equal(out.badOptionIsPluginError, true, 'which is an instance of the exported error class');
});

t.test('a CommonJS `require()` of the package name gets the CommonJS build, whose default export is the plugin and registers on Fastify', async (t) => {
  const { status, out, stderr } = runNode('test/fixtures/pkg/require.cjs');
  t.equal(status, 0, `node exits 0 ${stderr}`);
  t.match(out.resolved, /\/dist\/cjs\/index\.js$/, 'resolves through the "require" condition to dist/cjs/index.js');
  t.equal(out.defaultExport, 'function', 'require(…).default is a function');
  t.equal(out.namedExport, 'function', 'require(…).fastifyTieredSession is a function');
  t.equal(out.same, true, 'they are the same plugin');
  t.equal(out.errors, 'function', 'the errors namespace carries the error classes');
  t.equal(out.parseDevice, 'function', 'parseDevice is exported');
  t.same(out.decorators, ['function', 'function', 'function'], 'registering decorates app.sessions, requireSession and refuseCrossSite');
  t.equal(out.sessionsRoute, 401, 'the device routes are registered (401 without a session)');
  t.equal(out.registerModuleObject, 'function', 'app.register(require(…)) works too (Fastify unwraps .default)');
  t.equal(out.badOption, 'ERR_TIERED_SESSION_INVALID_OPTION', 'a bad option fails ready() with the coded error');
  t.equal(out.badOptionIsPluginError, true, 'which is an instance of the exported error class');
});

t.test('type declarations are emitted from the source for both builds, and every path the package names exists', async (t) => {
  for (const build of ['esm', 'cjs']) {
    const index = path.join(root, 'dist', build, 'index.d.ts');
    t.ok(existsSync(index), `dist/${build}/index.d.ts exists`);
    const dts = existsSync(index) ? readFileSync(index, 'utf8') : '';
    t.match(dts, /export default fastifyTieredSession/, `dist/${build}/index.d.ts declares the default export`);
    t.match(dts, /TieredSessionOptions/, `dist/${build}/index.d.ts exports the options type`);
    const missing = sources().map((s) => s.replace(/\.ts$/, '.d.ts')).filter((d) => !existsSync(path.join(root, 'dist', build, d)));
    t.same(missing, [], `every lib/ source has a declaration file in dist/${build}`);
    const plugin = path.join(root, 'dist', build, 'plugin.d.ts');
    t.match(existsSync(plugin) ? readFileSync(plugin, 'utf8') : '', /declare module ['"]fastify['"]/,
      `dist/${build}/plugin.d.ts carries the Fastify type augmentation (request.session, reply.signIn…)`);
  }
  const targets: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string') targets.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(pkg.exports);
  targets.push(pkg.main, pkg.module, pkg.types);
  for (const p of targets) t.ok(existsSync(path.join(root, p)), `${p} (named in package.json) exists`);
});
