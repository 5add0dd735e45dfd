// Child processes running TypeScript through tsx, with a small IPC protocol:
// the child sends { type: 'ready', ... } once listening; the parent may send { type: 'probe' }
// (answered with { type: 'probe', cpu, ... }) and { type: 'stop' } (the child closes and exits).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export interface Message { type: string; [k: string]: unknown }

export function forkTs(script: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildProcess {
  const child = fork(path.resolve(ROOT, script), [], {
    cwd: ROOT,
    env,
    execArgv: [...nodeArgs, '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** The next message of `type` from the child; rejects if it exits or the time runs out. */
export function nextMessage<T extends Message = Message>(child: ChildProcess, type: string, timeoutMs = 60_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: Message) => {
      if (m && m.type === type) { cleanup(); resolve(m as T); }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`child ${child.spawnargs.at(-1)} exited (code ${code}, signal ${signal}) before sending "${type}"`));
    };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no "${type}" from child within ${timeoutMs} ms`)); }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export async function ask<T extends Message = Message>(child: ChildProcess, type: string, extra: object = {}): Promise<T> {
  const answer = nextMessage<T>(child, type, 10_000);
  child.send({ type, ...extra });
  return answer;
}

/** Ask the child to close; SIGKILL it if it has not exited within `ms`. Resolves once it is gone. */
export async function stopChild(child: ChildProcess, ms = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  if (child.connected) child.send({ type: 'stop' });
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

/** Run a script to completion; resolves with the last { type: 'result' } message it sent (if any). */
export async function runScript(script: string, env: NodeJS.ProcessEnv,
  nodeArgs: string[] = []): Promise<{ code: number | null; result: Message | undefined }> {
  const child = forkTs(script, env, nodeArgs);
  let result: Message | undefined;
  child.on('message', (m: Message) => { if (m && m.type === 'result') result = m; });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, result };
}
