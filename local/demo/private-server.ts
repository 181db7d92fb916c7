import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import mysql from 'mysql2/promise';

/**
 * A throwaway MySQL-compatible server for the demo, when nothing answers at the demo's address but a
 * `mariadbd` or `mysqld` binary is installed: its own data directory under `dir`, bound to 127.0.0.1 on a
 * free port, root without password. It keeps running after the CLI exits, so the next `demo` reuses it.
 */
export interface PrivateServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly binary: string;
  /** False when an instance started earlier was found answering and reused. */
  readonly started: boolean;
  /** How to stop it. */
  readonly stopCommand: string;
}

const SEARCH = ['/usr/sbin', '/usr/local/sbin', '/usr/local/mysql/bin', '/usr/bin', '/usr/local/bin'];

/** The server binary to use, from PATH or the usual places; undefined when there is none. */
export function findServerBinary(path = process.env.PATH ?? ''): string | undefined {
  const dirs = [...path.split(':').filter((d) => d !== ''), ...SEARCH];
  for (const name of ['mariadbd', 'mysqld']) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

async function answers(port: number): Promise<boolean> {
  try {
    const conn = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'root',
      connectTimeout: 1_000,
    });
    await conn.end();
    return true;
  } catch {
    return false;
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', () => done(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
  });
}

async function freePort(from: number): Promise<number> {
  for (let port = from; port < from + 100; port += 1) {
    if (await portIsFree(port)) return port;
  }
  throw new Error(`no free port between ${from} and ${from + 99} on 127.0.0.1 for the private demo server`);
}

function initialise(binary: string, data: string, asRoot: boolean, log: string): void {
  const isMariaDb = /mariadb/i.test(spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout ?? '');
  const user = asRoot ? ['--user=root'] : [];
  const installer = ['mariadb-install-db', 'mysql_install_db']
    .flatMap((name) => [join(binary, '..', '..', 'bin', name), ...SEARCH.map((d) => join(d, name))])
    .find((p) => existsSync(p));
  const [command, args] =
    isMariaDb && installer !== undefined
      ? [
          installer,
          [
            '--no-defaults',
            `--datadir=${data}`,
            '--auth-root-authentication-method=normal',
            '--skip-test-db',
            ...user,
          ],
        ]
      : [binary, ['--no-defaults', '--initialize-insecure', `--datadir=${data}`, ...user]];
  // A temporary directory of its own: a starting server deletes every `#sql…` file in its tmpdir, and in the shared
  // /tmp those are the temporary tables another server (the machine's own) is using right now.
  const tmp = join(data, '..', 'tmp');
  mkdirSync(tmp, { recursive: true });
  const run = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
  writeFileSync(log, `${run.stdout ?? ''}${run.stderr ?? ''}`);
  if (run.status !== 0) {
    throw new Error(
      `could not initialise a data directory with ${command} (see ${log}): ${(run.stderr ?? '').trim().split('\n').at(-1) ?? ''}`,
    );
  }
}

/** The private server under `dir`, if one started earlier still answers. */
export async function findPrivateServer(dir: string): Promise<PrivateServer | undefined> {
  const root = resolve(dir);
  const portFile = join(root, 'port');
  if (!existsSync(portFile)) return undefined;
  const port = Number(readFileSync(portFile, 'utf8').trim());
  if (!Number.isInteger(port) || !(await answers(port))) return undefined;
  return {
    host: '127.0.0.1',
    port,
    dir: root,
    binary: findServerBinary() ?? 'unknown',
    started: false,
    stopCommand: `kill $(cat ${join(root, 'mysqld.pid')})`,
  };
}

/** Reuses the private server under `dir` if it answers, else initialises (once) and starts one. */
export async function ensurePrivateServer(options: {
  dir: string;
  preferredPort?: number;
  binary?: string;
}): Promise<PrivateServer> {
  const running = await findPrivateServer(options.dir);
  if (running !== undefined) return running;
  const dir = resolve(options.dir);
  const portFile = join(dir, 'port');
  const pidFile = join(dir, 'mysqld.pid');
  const stopCommand = `kill $(cat ${pidFile})`;
  const binary = options.binary ?? findServerBinary();
  if (binary === undefined) {
    throw new Error('no mariadbd or mysqld binary is installed to start a private demo server');
  }
  mkdirSync(dir, { recursive: true });
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (!existsSync(join(data, 'mysql'))) initialise(binary, data, asRoot, join(dir, 'install.log'));
  mkdirSync(join(dir, 'tmp'), { recursive: true });

  const port = await freePort(options.preferredPort ?? 3307);
  const errorLog = join(dir, 'error.log');
  const child = spawn(
    binary,
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mysqld.sock')}`,
      `--tmpdir=${join(dir, 'tmp')}`,
      `--pid-file=${pidFile}`,
      `--log-error=${errorLog}`,
      '--skip-log-bin',
      '--innodb-buffer-pool-size=512M',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      ...(asRoot ? ['--user=root'] : []),
    ],
    {
      detached: true,
      stdio: ['ignore', openSync(join(dir, 'stdout.log'), 'a'), openSync(join(dir, 'stdout.log'), 'a')],
    },
  );
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? -1;
  });
  child.unref();
  const deadline = Date.now() + 60_000;
  while (!(await answers(port))) {
    if (exited !== null || Date.now() > deadline) {
      const tail = existsSync(errorLog)
        ? readFileSync(errorLog, 'utf8').trim().split('\n').slice(-3).join('\n')
        : '';
      throw new Error(
        `the private demo server did not start (${exited === null ? 'timed out' : `exit ${exited}`}); ${errorLog} says:\n${tail}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  writeFileSync(portFile, `${port}\n`);
  return { host: '127.0.0.1', port, dir, binary, started: true, stopCommand };
}
