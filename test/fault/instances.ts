// App instances as separate Node processes (test/fault/app.ts through tsx), so a fault can
// SIGKILL one and start it again; requests go over real HTTP with keep-alive.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AppConfig } from './app.js';

const APP = fileURLToPath(new URL('./app.ts', import.meta.url));
const live = new Set<ChildProcess>();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

// The app is a program of its own: none of a test runner's hooks (tap's NODE_OPTIONS loaders,
// its coverage and process tracking) follow it into its process.
function appEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || /^_?TAP/i.test(k)) delete env[k];
  return env;
}

/** One answer: status (0 = no answer: reset, refused or timed out), the token a Set-Cookie gave, the body. */
export interface Answer { status: number; token: string | undefined; body: unknown }

export const COOKIE = '__Host-sid';

export class Instance {
  readonly index: number;
  readonly config: AppConfig;
  port = 0;
  #proc: ChildProcess | undefined;
  #agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(index: number, config: AppConfig) {
    this.index = index;
    this.config = config;
  }

  get name(): string { return `${this.index}:${this.config.adapter}${this.config.endpoint.kind === 'single' &&
    this.config.endpoint.readFromUrl ? '+readFrom' : ''}`; }
  get up(): boolean { return this.#proc !== undefined; }

  async start(timeoutMs = 60_000): Promise<void> {
    const p = spawn(process.execPath, ['--import', 'tsx', APP], {
      env: { ...appEnv(), FAULT_APP: JSON.stringify(this.config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(p);
    p.once('exit', () => { live.delete(p); if (this.#proc === p) this.#proc = undefined; });
    let err = '';
    p.stderr!.on('data', (d) => { err = (err + d).slice(-4000); });
    this.port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`instance ${this.index} did not listen in ${timeoutMs} ms: ${err}`)), timeoutMs);
      let out = '';
      p.stdout!.on('data', (d) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) { clearTimeout(t); resolve(Number(m[1])); }
      });
      p.once('exit', (code) => { clearTimeout(t); reject(new Error(`instance ${this.index} exited (${code}): ${err}`)); });
    });
    this.#agent.destroy();
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.#proc = p;
  }

  /** SIGKILL (a crash): in-flight requests get no answer. */
  async kill(): Promise<void> {
    const p = this.#proc;
    if (!p) return;
    this.#proc = undefined;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    this.#agent.destroy();
  }

  request(method: string, path: string, token?: string, body?: object, timeoutMs = 5000): Promise<Answer> {
    if (!this.#proc) return Promise.resolve({ status: 0, token: undefined, body: 'down' });
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve) => {
      const req = http.request({
        host: '127.0.0.1', port: this.port, method, path, agent: this.#agent, timeout: timeoutMs,
        headers: {
          ...(token ? { cookie: `${COOKIE}=${token}` } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { data += d; });
        res.on('end', () => {
          let parsed: unknown = data;
          try { parsed = data ? JSON.parse(data) : undefined; } catch { /* not JSON */ }
          resolve({ status: res.statusCode ?? 0, token: tokenOf(res.headers['set-cookie']), body: parsed });
        });
        res.on('error', () => resolve({ status: 0, token: undefined, body: 'reset' }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, token: undefined, body: e.message }));
      req.end(payload);
    });
  }
}

function tokenOf(lines: string[] | undefined): string | undefined {
  for (const l of lines ?? []) {
    if (l.startsWith(`${COOKIE}=`)) {
      const v = l.slice(COOKIE.length + 1, l.indexOf(';'));
      return v === '' ? undefined : v;
    }
  }
  return undefined;
}
