// PostgreSQL for the demo's history when no DATABASE_URL is set: a private server started from
// the installed binaries ($PG_BIN, /usr/lib/postgresql/<version>/bin, or PATH), the way the demo
// starts a private redis-server. As root it runs as the `postgres` user (through runuser):
// PostgreSQL refuses to run as root.
//
// One server for every demo instance of this OS user on this machine, each (Redis, KEY_PREFIX)
// in a schema of its own: two instances sharing one Redis and prefix (the contract check's A and
// B, a Fastify and an Express demo side by side) therefore share one history, whichever started
// first, and an instance on another Redis or prefix does not see it.
//
//   <tmp>/tiered-session-demo-postgres-<uid>/        data/ (initdb), postgres.log, the socket,
//                                                     port, reaper (its pid), users/<pid> (one
//                                                     empty file per demo process using it)
//   <tmp>/tiered-session-demo-postgres-<uid>.lock/    the lock: an atomic mkdir; pid inside
//
// Under the lock a demo joins the running server (it answers on `port`) or starts one (initdb,
// postgres, a reaper), creates its schema, and registers its pid. The server outlives the demo
// that started it (its own session, so a process-group kill of that demo spares it) and stops
// when the last registered demo is gone: the reaper, a small shell loop, checks the registered
// pids every second and, once none is alive, takes the lock, checks again, stops PostgreSQL (fast
// shutdown) and removes the directory. A demo removes its pid at exit; one killed -9 is noticed
// by the reaper all the same. Nothing here is needed with DATABASE_URL.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './private-redis.js';

const isRoot = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The directory with `initdb` and `postgres`: $PG_BIN, the newest /usr/lib/postgresql/<v>/bin, or PATH. */
export function postgresBinDir(): string | undefined {
  const has = (d: string) => fs.existsSync(path.join(d, 'postgres')) && fs.existsSync(path.join(d, 'initdb'));
  if (process.env.PG_BIN) return has(process.env.PG_BIN) ? process.env.PG_BIN : undefined;
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => has(path.join(base, v, 'bin'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return path.join(base, versions[0], 'bin');
  return (process.env.PATH ?? '').split(path.delimiter).find((d) => d !== '' && has(d));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const readPid = (file: string): number | undefined => {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').split('\n')[0].trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
};

/** `cmd args` as the `postgres` user when we are root. */
const asPostgres = (cmd: string, args: string[]): [string, string[]] =>
  (isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);

/** Take the lock (mkdir is atomic); a lock whose holder is dead is broken. Answers the release. */
async function lock(dir: string): Promise<() => void> {
  const pidFile = path.join(dir, 'pid');
  const until = Date.now() + 120_000;
  let noPidSince = 0;
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(pidFile, String(process.pid));
      return () => { if (readPid(pidFile) === process.pid) fs.rmSync(dir, { recursive: true, force: true }); };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readPid(pidFile);
    // A holder that died between its mkdir and writing its pid leaves a lock without one.
    if (holder === undefined) noPidSince ||= Date.now();
    else noPidSince = 0;
    if ((holder !== undefined && !alive(holder)) || (noPidSince !== 0 && Date.now() - noPidSince > 10_000)) {
      fs.rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > until) throw new Error(`${dir} is held by process ${holder ?? '?'} for more than 2 minutes`);
    await sleep(50);
  }
}

/** Whether a PostgreSQL answers on 127.0.0.1:port. */
async function answers(port: number, timeout = 2000): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: timeout });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

// The reaper: every second, stop PostgreSQL and remove the directory once no registered demo
// process is alive (under the lock, checking again, so that a demo joining meanwhile wins).
const REAPER = `
dir="$1"; lock="$1.lock"
alive() { for f in "$dir"/users/*; do [ -e "$f" ] || continue; kill -0 "\${f##*/}" 2>/dev/null && return 0; done; return 1; }
while :; do
  sleep 1
  [ -d "$dir" ] || exit 0
  alive && continue
  n=0
  until mkdir "$lock" 2>/dev/null; do
    holder=$(cat "$lock/pid" 2>/dev/null)
    n=$((n + 1))
    if { [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; } || { [ -z "$holder" ] && [ $n -gt 100 ]; }; then rm -rf "$lock"; n=0; fi
    sleep 0.1
  done
  echo $$ > "$lock/pid"
  if alive; then rm -rf "$lock"; continue; fi
  pm=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
  if [ -n "$pm" ]; then
    kill -INT "$pm" 2>/dev/null
    i=0
    while kill -0 "$pm" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pm" 2>/dev/null
  fi
  rm -rf "$dir" "$lock"
  exit 0
done`;

function startReaper(dir: string): void {
  const r = spawn('sh', ['-c', REAPER, 'sh', dir], { detached: true, stdio: 'ignore' });
  r.unref();
  fs.writeFileSync(path.join(dir, 'reaper'), String(r.pid));
}

/** Stop what is left of a server nobody can reach (a crashed start, a killed postmaster) and remove it. */
function clearStale(dir: string): void {
  const pm = readPid(path.join(dir, 'data', 'postmaster.pid'));
  if (pm !== undefined && alive(pm)) {
    try { process.kill(pm, 'SIGKILL'); } catch { /* gone */ }
  }
  const reaper = readPid(path.join(dir, 'reaper'));
  if (reaper !== undefined && alive(reaper)) {
    try { process.kill(reaper, 'SIGKILL'); } catch { /* gone */ }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

async function startServer(dir: string, bin: string): Promise<number> {
  fs.mkdirSync(dir, { recursive: true });
  if (isRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const [uid, gid] = [id('-u'), id('-g')];
    if (!Number.isInteger(uid) || !Number.isInteger(gid) ||
      uid <= 0) throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as');
    fs.chownSync(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const [icmd, iargs] = asPostgres(path.join(bin, 'initdb'),
    ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
  const init = spawnSync(icmd, iargs, { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  if (init.status !== 0) throw new Error(`initdb failed: ${(init.stderr || init.stdout || String(init.error)).trim().slice(-500)}`);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const log = fs.openSync(path.join(dir, 'postgres.log'), 'a');
    const [cmd, args] = asPostgres(path.join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      // Demo data in a temp dir: nothing here has to survive a power cut.
      '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off',
    ]);
    // Its own session: a kill of the starting demo's process group does not reach it.
    const p = spawn(cmd, args, { cwd: dir, detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    p.unref();
    const until = Date.now() + 30_000;
    while (p.exitCode === null && p.signalCode === null && Date.now() < until) {
      if (await answers(port, 1000)) return port;
      await sleep(50);
    }
    const tail = fs.readFileSync(path.join(dir, 'postgres.log'), 'utf8').slice(-500);
    if (p.exitCode === null && p.signalCode === null) {
      clearStale(dir);
      throw new Error(`postgres did not answer within 30 s: ${tail}`);
    }
    // A port picked free can be taken before the postmaster binds it: pick another.
    if (attempt < 2 && /could not (bind|create any TCP)/i.test(tail)) continue;
    throw new Error(`postgres exited: ${tail}`);
  }
}

/** A schema name of 16 hex digits from what identifies the sessions' store. */
export const schemaFor = (redisTarget: string, keyPrefix: string) =>
  `demo_${createHash('sha256').update(`${redisTarget}\n${keyPrefix}`).digest('hex').slice(0, 16)}`;

/**
 * Join (or start) the private PostgreSQL and make sure the schema exists. Answers a pool on it
 * and the schema; throws with a reason when no server could be had.
 */
export async function privatePostgres(bin: string, schema: string): Promise<{ pool: pg.Pool; schema: string; port: number }> {
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(os.tmpdir(), `tiered-session-demo-postgres-${uid}`);
  const release = await lock(`${dir}.lock`);
  let port: number;
  try {
    const known = readPid(path.join(dir, 'port'));
    if (known !== undefined && await answers(known)) {
      port = known;
      const reaper = readPid(path.join(dir, 'reaper'));
      if (reaper === undefined || !alive(reaper)) startReaper(dir);
    } else {
      if (fs.existsSync(dir)) clearStale(dir);
      try {
        port = await startServer(dir, bin);
      } catch (err) {
        clearStale(dir);
        throw err;
      }
      fs.writeFileSync(path.join(dir, 'port.tmp'), String(port));
      fs.renameSync(path.join(dir, 'port.tmp'), path.join(dir, 'port'));
      startReaper(dir);
    }
    // Under the lock: two instances creating the same schema at once could collide.
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    } finally {
      await c.end().catch(() => {});
    }
    const users = path.join(dir, 'users');
    fs.mkdirSync(users, { recursive: true });
    const me = path.join(users, String(process.pid));
    fs.writeFileSync(me, '');
    process.once('exit', () => fs.rmSync(me, { force: true }));
  } finally {
    release();
  }
  const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: 4 });
  pool.on('error', () => { /* a dropped idle connection; the audit sink retries */ });
  return { pool, schema, port };
}
