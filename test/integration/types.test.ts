// The types as a consumer gets them: the packed tarball, installed into a scratch project beside
// fastify, express and ioredis, type-checked with skipLibCheck off under every module
// resolution (NodeNext, Node16, Bundler, CommonJS with `import x = require()`), by TypeScript
// 5.9 and by TypeScript 7. Each consumer augments SessionData and reads the typed field off
// both adapters' requests: attw cannot see whether an augmentation reaches the declarations
// the adapters resolve to. Plus @arethetypeswrong's own check of the tarball.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const modules = path.join(root, 'node_modules');
const env = { ...process.env };
delete env.NODE_OPTIONS;

function run(cmd: string, args: string[], cwd: string) {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 180_000 });
}

let dir = '';
let tarball = '';

t.before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ts-consumer-'));
  const packed = run('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], root);
  if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  tarball = path.join(dir, packed.stdout.trim().split('\n').pop()!);
  // --ignore-scripts: dist/ is built (npm test builds first); prepack would rebuild it under the
  // other test files. node_modules: the unpacked tarball as `tiered-session`, everything else linked from ours.
  const nm = path.join(dir, 'node_modules');
  mkdirSync(path.join(nm, 'tiered-session'), { recursive: true });
  const untar = run('tar', ['-xzf', tarball, '-C', path.join(nm, 'tiered-session'), '--strip-components=1'], dir);
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  for (const name of readdirSync(modules)) {
    if (name === 'tiered-session' || name.startsWith('.')) continue;
    symlinkSync(path.join(modules, name), path.join(nm, name));
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  for (const f of ['esm.ts', 'cjs.ts']) copyFileSync(path.join(root, 'test/fixtures/consumer', f), path.join(dir, f));
  // The CommonJS consumer under Node16/NodeNext resolution is a .cts file.
  copyFileSync(path.join(root, 'test/fixtures/consumer/cjs.ts'), path.join(dir, 'cjs.cts'));
});

t.teardown(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const base = { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', types: ['node'], esModuleInterop: true };
const modes: [string, Record<string, unknown>, string[]][] = [
  ['NodeNext (ESM)', { module: 'NodeNext', moduleResolution: 'NodeNext' }, ['esm.ts']],
  ['NodeNext (CommonJS, import = require)', { module: 'NodeNext', moduleResolution: 'NodeNext' }, ['cjs.cts']],
  ['Node16 (ESM)', { module: 'Node16', moduleResolution: 'Node16' }, ['esm.ts']],
  ['Node16 (CommonJS, import = require)', { module: 'Node16', moduleResolution: 'Node16' }, ['cjs.cts']],
  ['Bundler', { module: 'ESNext', moduleResolution: 'Bundler' }, ['esm.ts']],
  // `"module": "commonjs"` and no moduleResolution: node10 on TypeScript 5.9 (main, types,
  // typesVersions), Bundler with the require condition on TypeScript 7 (which has no node10).
  ['CommonJS, default resolution (import = require)', { module: 'CommonJS' }, ['cjs.ts']],
];

// TypeScript 7 is a native program; its `bin/tsc` launcher is an ES module that the test
// runner's child-process hooks cannot load, so the platform binary is run directly.
const compilers: [string, string[]][] = [
  ['TypeScript 5.9', [process.execPath, path.join(modules, 'typescript/bin/tsc')]],
  ['TypeScript 7', [path.join(modules, `@typescript/typescript-${process.platform}-${process.arch}/lib/tsc`)]],
];

/** Run a command without blocking (the compilations of one compiler run two at a time). */
function runAsync(cmd: string[], cwd: string): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd, env });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    child.on('close', (status) => resolve({ status, out }));
  });
}

for (const [compiler, tsc] of compilers) {
  t.test(`${compiler}: the published types check in a consumer under every module resolution, skipLibCheck off`, async (t) => {
    t.comment((await runAsync([...tsc, '-v'], dir)).out.trim());
    const results: { status: number | null; out: string }[] = [];
    for (let i = 0; i < modes.length; i += 2) {
      results.push(...await Promise.all(modes.slice(i, i + 2).map(([mode, options, files]) => {
        const config = path.join(dir, `tsconfig.${compiler.replace(/\W/g, '')}.${mode.replace(/\W/g, '')}.json`);
        writeFileSync(config, JSON.stringify({ compilerOptions: { ...base, ...options }, files }));
        return runAsync([...tsc, '-p', config], dir);
      })));
    }
    modes.forEach(([mode, , files], i) => {
      const r = results[i];
      t.equal(r.status, 0, `${mode}: ${files.join(', ')} type-checks${r.status === 0 ? '' : `\n${r.out}`}`);
    });
  });
}

t.test('@arethetypeswrong finds no problem in the tarball, under any resolution', async (t) => {
  const r = run(process.execPath, [path.join(modules, '@arethetypeswrong/cli/dist/index.js'), tarball, '--format', 'json'], dir);
  let problems: unknown[] = ['unparsed output'];
  try {
    problems = (JSON.parse(r.stdout) as { analysis: { problems: unknown[] } }).analysis.problems;
  } catch { /* asserted below */ }
  t.same(problems, [], `attw reports no problem${problems.length ? `: ${r.stdout.slice(0, 2000)}${r.stderr}` : ''}`);
});
