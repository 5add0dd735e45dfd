// Redis for the demo (and the benchmarks, which configure their clients the same way): the
// client options the README recommends, and a throw-away redis-server from PATH on a free port
// (the demo's default when no Redis is configured; exits with a clear message when
// redis-server is not installed).
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

/** Client options that answer fast when Redis is away (the README's recommended settings). */
export { failFast as fastFail } from '../redis-client.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startPrivateRedis(): Promise<{ url: string; stop(): void }> {
  if (spawnSync('redis-server', ['--version']).error) {
    console.error('redis-server was not found on PATH. Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install ' +
      'redis), or set REDIS_URL.');
    process.exit(1);
  }
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const stop = () => { if (child.exitCode === null) child.kill('SIGTERM'); };
  process.once('exit', stop);
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const up = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (up) return { url: `redis://127.0.0.1:${port}`, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  console.error(`redis-server did not start on port ${port}`);
  process.exit(1);
}
