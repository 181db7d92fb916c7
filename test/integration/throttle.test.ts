import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets = [`smt_thr_a_${process.pid}`, `smt_thr_b_${process.pid}`, `smt_thr_c_${process.pid}`];

function folder(target: string, chunking: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'smt-throttle-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: {
        rowsPerChunk: 300,
        maxConcurrency: 2,
        copyPath: 'client',
        recheckDelaySeconds: 0.2,
        ...chunking,
      },
    }),
  );
  return dir;
}

/** Chunks of the target's data run past `planned` (claimed, copied, validated). */
async function started(target: string): Promise<number> {
  const [row] = await server.query(
    `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE status <> 'planned'`,
  );
  return num(row ?? {}, 'n');
}

/** Polls until `check` holds or `ms` pass. */
async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(100);
  }
  return false;
}

beforeAll(async () => {
  source = await scratchDatabase('thr');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 60, reset: false });
}, 120_000);

afterAll(async () => {
  for (const t of targets) await server?.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

describe('pause, resume and chunking.maxLoad', () => {
  it('pause holds every new chunk back, the run waiting; resume finishes it, verify finds no difference', async () => {
    const dir = folder(targets[0] ?? '', {});
    const cli = (args: string[]) => runCli(args, { cwd: dir });
    expect((await cli(['run', 'foundation'])).code).toBe(0);
    const paused = await cli(['pause', '--reason', 'peak hours']);
    expect(paused.code).toBe(0);
    expect(paused.json.outcome).toBe('PAUSED');
    const run = cli(['run', 'data']);
    // The run plans its chunks, then waits: none is claimed while paused.
    expect(
      await until(
        async () =>
          num(
            (
              await server.query(
                `SELECT COUNT(*) AS n FROM ${qualified(targets[0] ?? '', 'migration_chunks')}`,
              )
            )[0] ?? {},
            'n',
          ) > 0,
        20_000,
      ),
    ).toBe(true);
    await sleep(2_500);
    expect(await started(targets[0] ?? '')).toBe(0);
    const status = await cli(['status']);
    expect(status.stderr).toMatch(/PAUSED since .* \(peak hours\): no new chunk starts/);
    expect((await cli(['resume'])).json.outcome).toBe('RESUMED');
    const done = await run;
    expect(done.code, done.stderr).toBe(0);
    const verify = await cli(['verify']);
    expect(verify.code, verify.stderr).toBe(0);
  }, 120_000);

  it('maxLoad holds new chunks back while Threads_running is over it, then lets them go', async () => {
    const dir = folder(targets[1] ?? '', { maxLoad: 'Threads_running=6' });
    const cli = (args: string[]) => runCli(args, { cwd: dir });
    expect((await cli(['run', 'foundation'])).code).toBe(0);
    // Eight sessions sleeping in a query: each counts in Threads_running for four seconds.
    const sleepers = await Promise.all(Array.from({ length: 8 }, () => adminConnection()));
    const busy = Promise.all(sleepers.map((c) => c.query('SELECT SLEEP(4)')));
    await sleep(300);
    const began = Date.now();
    const run = cli(['run', 'data']);
    await sleep(2_500);
    const whileBusy = await started(targets[1] ?? '');
    await busy;
    await Promise.all(sleepers.map((c) => c.end()));
    const done = await run;
    expect(done.code, done.stderr).toBe(0);
    expect(Date.now() - began).toBeGreaterThan(3_000);
    expect(whileBusy).toBe(0);
    expect(await started(targets[1] ?? '')).toBeGreaterThan(0);
  }, 120_000);

  it('criticalLoad stops the run before its next chunk, resumable with nothing undone; run data resumes it', async () => {
    const dir = folder(targets[2] ?? '', { criticalLoad: 'Threads_running=6' });
    const cli = (args: string[]) => runCli(args, { cwd: dir });
    expect((await cli(['run', 'foundation'])).code).toBe(0);
    const sleepers = await Promise.all(Array.from({ length: 8 }, () => adminConnection()));
    const busy = Promise.all(sleepers.map((c) => c.query('SELECT SLEEP(3)')));
    await sleep(300);
    const stopped = await cli(['run', 'data', '--json']);
    await busy;
    await Promise.all(sleepers.map((c) => c.end()));
    expect(stopped.code).toBe(1);
    expect(String(stopped.json.cause ?? stopped.json.error)).toMatch(/CriticalLoad|chunking\.criticalLoad/);
    const [run] = await server.query(
      `SELECT status FROM ${qualified(targets[2] ?? '', 'migration_runs')} WHERE phase = 'data' ORDER BY started_at DESC LIMIT 1`,
    );
    expect(run?.status).toBe('interrupted');
    const resumed = await cli(['run', 'data']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await cli(['verify'])).code).toBe(0);
  }, 120_000);
});
