import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { DatabaseUnreachable } from '../../lambdas/core/errors.ts';
import { resolveDemoServer } from '../../local/cli/demo-server.ts';
import { createOutput } from '../../local/cli/output.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { ensurePrivateServer, findServerBinary } from '../../local/demo/private-server.ts';

const cwd = mkdtempSync(join(tmpdir(), 'smt-private-'));
const dir = join(cwd, '.shifu-migrate', 'mysql');
const lines: string[] = [];
const out = createOutput({
  json: false,
  stdout: { write: () => true } as unknown as NodeJS.WritableStream,
  stderr: { write: (s: string) => lines.push(s) > 0 } as unknown as NodeJS.WritableStream,
});

// The demo's defaults, moved to a port where nothing answers (as on a machine without a server).
const unreachableDefaults = () =>
  loadConfig({
    defaults: () => ({
      ...demoConfig(),
      source: { url: 'mysql://root@127.0.0.1:1/shifu_legacy' },
      target: { url: 'mysql://root@127.0.0.1:1/shifu_saas' },
    }),
    cwd,
    env: {},
  });

async function stop(): Promise<void> {
  const pidFile = join(dir, 'mysqld.pid');
  if (!existsSync(pidFile)) return;
  process.kill(Number(readFileSync(pidFile, 'utf8').trim()));
  for (let i = 0; i < 100 && existsSync(pidFile); i += 1) await new Promise((r) => setTimeout(r, 100));
}

describe('private demo server', () => {
  afterAll(stop);

  it('has a server binary on this machine to test with', () => {
    expect(findServerBinary()).toMatch(/(mariadbd|mysqld)$/);
  });

  it('without one running, a command other than demo says nothing answers', async () => {
    await expect(
      resolveDemoServer(unreachableDefaults(), { env: {}, cwd, out, mayStart: false }),
    ).rejects.toBeInstanceOf(DatabaseUnreachable);
  });

  it('demo starts one on a free port and points the demo config at it', async () => {
    const loaded = await resolveDemoServer(unreachableDefaults(), { env: {}, cwd, out, mayStart: true });
    expect(loaded.sourceUrl).toMatchObject({ host: '127.0.0.1', database: 'shifu_legacy' });
    expect(loaded.targetUrl).toMatchObject({
      database: 'shifu_saas',
      port: loaded.sourceUrl.kind === 'mysql' ? loaded.sourceUrl.port : -1,
    });
    expect(lines.join('')).toMatch(
      /Started a private demo server .* on 127\.0\.0\.1:\d+, data in .*Stop it with: kill/,
    );
    const port = loaded.sourceUrl.kind === 'mysql' ? loaded.sourceUrl.port : 0;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
    const [rows] = await conn.query('SELECT @@datadir AS datadir');
    await conn.end();
    expect(JSON.stringify(rows)).toContain(join('.shifu-migrate', 'mysql', 'data'));
  });

  it('is reused by the next command, which starts nothing', async () => {
    const first = await ensurePrivateServer({ dir });
    expect(first.started).toBe(false);
    const loaded = await resolveDemoServer(unreachableDefaults(), { env: {}, cwd, out, mayStart: false });
    expect(loaded.sourceUrl).toMatchObject({ port: first.port });
  });

  it('is never used when the user named a database', async () => {
    const loaded = await resolveDemoServer(unreachableDefaults(), {
      env: { SOURCE_DATABASE_URL: 'mysql://root@127.0.0.1:1/shifu_legacy' },
      cwd,
      out,
      mayStart: true,
    });
    expect(loaded.sourceUrl).toMatchObject({ port: 1 });
  });
});
