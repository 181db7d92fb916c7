import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { ensureLedger } from '../../lambdas/core/ledger/runs.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { rollbackData } from '../../lambdas/data/rollback.ts';
import type { DataInput } from '../../lambdas/data/schema.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { DEMO_TABLES } from '../../local/demo/schema.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { loadDefinition } from '../../local/engine/definition.ts';
import { localInvoker, localSubstitutions } from '../../local/engine/functions.ts';
import { runLocal } from '../../local/engine/run.ts';
import { openDeps } from '../../local/run-phase.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
const TABLES = DEMO_TABLES.map((t) => t.name);
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets: string[] = [];

/** Small client-side chunks, so a copy is still going when the alarm comes. */
function workspace(target: string): string {
  targets.push(target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-rollback-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 100, maxConcurrency: 2, copyPath: 'client' },
    }),
  );
  return dir;
}

const cli = (args: string[], cwd: string) => runCli(args, { cwd });
const count = async (database: string, table: string) =>
  scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(database, table)}`));
const copiedChunks = (target: string) =>
  server
    .query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE status IN ('copied', 'validated')`,
    )
    .then(scalarNumber)
    .catch(() => 0);
async function until(what: () => Promise<boolean>, label: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  source = await scratchDatabase('rollback');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 300, reset: false });
});

afterAll(async () => {
  for (const t of targets) await server.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

describe('rollback of the phase in flight', () => {
  it('adds the columns a newer version needs to a ledger an older version made', async () => {
    const target = `${source.name}_old`;
    targets.push(target);
    await server.execute(`CREATE DATABASE \`${target}\``);
    const old = mysqlClient(target);
    try {
      await old.execute(
        'CREATE TABLE migration_runs (run_id VARCHAR(64) NOT NULL PRIMARY KEY, phase VARCHAR(20) NOT NULL, status VARCHAR(20) NOT NULL, started_at DATETIME(3) NOT NULL, finished_at DATETIME(3) NULL, error_name VARCHAR(100) NULL, error_message TEXT NULL)',
      );
      await old.execute(
        "INSERT INTO migration_runs VALUES ('data-20261101T000000Z-abcdef', 'data', 'succeeded', '2026-11-01 00:00:00', NULL, NULL, NULL)",
      );
      await ensureLedger(old);
      await ensureLedger(old);
      const [row] = await old.query('SELECT run_id, execution_id FROM migration_runs');
      expect(row).toEqual({ run_id: 'data-20261101T000000Z-abcdef', execution_id: null });
    } finally {
      await old.close();
    }
  });

  it('an alarm raised mid-copy stops the data run and rolls the target back; no phase starts until it is cleared', async () => {
    const target = `${source.name}_alarm`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const data = cli(['run', 'data'], dir);
    await until(async () => (await copiedChunks(target)) >= 5, 'chunks to be copied');

    const alarm = await cli(['alarm', 'raise', 'api-5xx', '--reason', 'error rate above 2%'], dir);
    expect(alarm.code, alarm.stderr).toBe(0);
    expect(alarm.json).toMatchObject({
      alarm: 'api-5xx',
      state: 'ALARM',
      outcome: 'SUCCEEDED',
      phase: 'data',
    });
    const [run] = await server.query(
      `SELECT run_id, status, error_name FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(alarm.json.stoppedRuns).toEqual([run?.run_id]);
    expect(run).toMatchObject({ status: 'rolled_back', error_name: 'RunStopped' });

    // The copy stopped: its execution ended on the stop, without a rollback of its own, before it copied everything.
    const stopped = await data;
    expect(stopped.code).toBe(1);
    expect(stopped.json).toMatchObject({ outcome: 'FAILED', error: 'RunStopped', rolledBack: false });
    expect(stopped.stderr).toMatch(/Stopped by a rollback .*: that rollback undoes this run/);
    // Every table it planned was empty before: each was emptied with one TRUNCATE, no row deleted one range at a time.
    const planned = await server.query(
      `SELECT DISTINCT table_name FROM ${qualified(target, 'migration_chunks')} ORDER BY table_name`,
    );
    expect(planned.length).toBeGreaterThan(0);
    expect([...(alarm.json.truncated as string[])].sort()).toEqual(planned.map((r) => str(r, 'table_name')));
    expect(alarm.json.undone).toBe(0);
    expect(alarm.stderr).toMatch(/0 rows deleted and \d+ tables emptied at once \(TRUNCATE\)/);
    // And the target is as foundation left it: no row, no quarantine, no chunk in flight.
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    expect(await count(target, 'migration_quarantine')).toBe(0);
    const inFlight = await server.query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE status = 'copying'`,
    );
    expect(scalarNumber(inFlight)).toBe(0);

    const refused = await cli(['run', 'data'], dir);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ outcome: 'FAILED', error: 'AlarmRaised' });
    expect(String(refused.json.message)).toMatch(/alarm clear "api-5xx"/);
    const status = await cli(['status'], dir);
    expect(status.json.alarms).toEqual([
      expect.objectContaining({ name: 'api-5xx', reason: 'error rate above 2%' }),
    ]);
    expect((await cli(['alarm', 'clear', 'nope'], dir)).code).toBe(2);
    expect((await cli(['alarm', 'clear', 'api-5xx'], dir)).code).toBe(0);

    // Cleared, the phase runs again from the start and nothing is missing.
    const again = await cli(['run', 'data'], dir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json.runId).not.toBe(run?.run_id);
    const verify = await cli(['verify'], dir);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });
  });

  it('rollback without a phase undoes a run whose process was killed, and finds nothing once it is undone', async () => {
    const target = `${source.name}_orphan`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const nothing = await cli(['rollback', '--yes'], dir);
    expect(nothing.code, nothing.stderr).toBe(0);
    expect(nothing.json).toMatchObject({
      status: 'NOTHING_TO_DO',
      outcome: 'SUCCEEDED',
      phase: null,
      runs: [],
    });

    const child = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'bin', 'shifu-migrate.mjs'), 'run', 'data'],
      { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await until(async () => (await copiedChunks(target)) >= 5, 'chunks to be copied');
    child.kill('SIGKILL');
    await exited;

    // Its chunk in flight stays `copying`, but its process is gone: the rollback does not wait for it.
    const started = Date.now();
    const rollback = await cli(['rollback', '--yes'], dir);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(rollback.json).toMatchObject({ outcome: 'SUCCEEDED', phase: 'data' });
    expect(rollback.json.stoppedRuns).toHaveLength(1);
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const runs = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(runs.map((r) => str(r, 'status'))).toEqual(['rolled_back']);
    // Foundation succeeded and nothing else is in flight: a second rollback leaves it alone.
    const again = await cli(['rollback', '--yes'], dir);
    expect(again.json).toMatchObject({ phase: null });
    expect(await count(target, 'tenant_tenants')).toBeGreaterThan(0);
  });

  it('refuses a second rollback while one is alive, and finishes one that died after stopping its run', async () => {
    const target = `${source.name}_twice`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    const [run] = await server.query(
      `SELECT run_id FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    // As a rollback under way leaves it: the run stopping, the lock held by that rollback, alive (this process).
    await server.execute(
      `UPDATE ${qualified(target, 'migration_runs')} SET status = 'stopping' WHERE phase = 'data'`,
    );
    await server.execute(
      `INSERT INTO ${qualified(target, 'migration_lock')} (name, run_id, phase, kind, owner, acquired_at, heartbeat_at)
       VALUES ('target', 'rollback-20261201T000000Z-aaaaaa', 'data', 'rollback', ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))`,
      [`local:${hostname()}:${process.pid}:alive`],
    );
    const second = await cli(['rollback', '--yes'], dir);
    expect(second.code).toBe(1);
    expect(second.json).toMatchObject({ outcome: 'FAILED', error: 'RunLocked', rolledBack: false });
    expect(String(second.json.cause)).toMatch(
      /a rollback of data rollback-20261201T000000Z-aaaaaa \(local process \d+/,
    );
    expect(second.stderr).toMatch(/Not rolled back: nothing was changed/);
    // A new run would race the rollback's deletes: refused, naming the way out.
    const racing = await cli(['run', 'data'], dir);
    expect(racing.code).toBe(1);
    expect(racing.json).toMatchObject({ outcome: 'FAILED', error: 'RollbackInProgress' });
    expect(String(racing.json.cause)).toMatch(/rollback --phase data/);
    expect(await count(target, 'user_users')).toBeGreaterThan(0);
    await server.execute(
      `INSERT INTO ${qualified(target, 'migration_runs')} (run_id, phase, status, started_at, execution_id)
       VALUES ('rollback-20261201T000000Z-aaaaaa', 'rollback', 'running', CURRENT_TIMESTAMP(3), ?)`,
      [`local:${hostname()}:${process.pid}:alive`],
    );
    // The rollback dies (its process is gone): the next rollback, phase named or not, finds the run and finishes.
    await server.execute(`UPDATE ${qualified(target, 'migration_lock')} SET owner = ?`, [
      `local:${hostname()}:999999999:gone`,
    ]);
    const finished = await cli(['rollback', '--yes'], dir);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.json).toMatchObject({ outcome: 'SUCCEEDED', phase: 'data', rolledBack: true });
    expect(finished.json.stoppedRuns).toEqual([run?.run_id]);
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const [after] = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE run_id = ?`,
      [run?.run_id ?? ''],
    );
    expect(after).toEqual({ status: 'rolled_back' });
    // The rollback that died says so, instead of `running` for ever.
    const [dead] = await server.query(
      `SELECT status, error_name FROM ${qualified(target, 'migration_runs')} WHERE run_id = 'rollback-20261201T000000Z-aaaaaa'`,
    );
    // The dead rollback is closed by the one that finished its work: failed, with why it stopped.
    expect(dead).toEqual({ status: 'failed', error_name: 'RunAbandoned' });
    // The second rollback, refused while the first was alive, is in the ledger too.
    const refused = await server.query(
      `SELECT error_name FROM ${qualified(target, 'migration_runs')} WHERE phase = 'rollback' AND status = 'refused'`,
    );
    expect(refused).toEqual([{ error_name: 'RunLocked' }]);
  });

  it('asks before removing anything: refused without a terminal and without --yes, shown and asked on one', async () => {
    const target = `${source.name}_ask`;
    const dir = workspace(target);
    for (const phase of ['foundation', 'data']) expect((await cli(['run', phase], dir)).code).toBe(0);
    const before = await count(target, 'user_users');
    const ask = (answer: string | undefined) =>
      runCli(['rollback', '--phase', 'data'], { cwd: dir, ...(answer === undefined ? {} : { answer }) });
    const refused = await ask(undefined);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/run it on a terminal to see what and confirm, or pass --yes/);
    expect(await count(target, 'user_users')).toBe(before);
    const declined = await ask('n');
    expect(declined.code).toBe(1);
    expect(declined.json).toMatchObject({ outcome: 'DECLINED', phase: 'data' });
    expect(declined.stderr).toMatch(/Runs not rolled back in .*: data-\S+ \(succeeded\)/);
    expect(declined.stderr).toMatch(
      /empties the ranges the data runs copied: about [\d,]+ rows now in 10 tables/,
    );
    expect(declined.stderr).toMatch(/Roll back data on .*\? \[y\/N\]/);
    expect(await count(target, 'user_users')).toBe(before);
    const confirmed = await ask('y');
    expect(confirmed.code, confirmed.stderr).toBe(0);
    for (const table of TABLES) expect(await count(target, table), table).toBe(0);
  });

  it('undoes a data run whose archive is gone (by the target tables), and a data phase after its foundation was undone', async () => {
    const target = `${source.name}_noarch`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    // A row already there makes the rollback delete range by range (no TRUNCATE), which needs each table's key.
    await server.execute(
      `INSERT INTO ${qualified(target, 'learn_generated_blocks')} (id, tenant_bid, generated_block_bid, progress_bid, user_bid, role, created_at) VALUES (999999999, 'default', 'stray', 'p', 'u', 'user', NOW())`,
    );
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    rmSync(join(dir, 'archive'), { recursive: true, force: true });
    const undone = await cli(['rollback', '--yes', '--phase', 'data'], dir);
    expect(undone.code, undone.stderr).toBe(0);
    expect(undone.json).toMatchObject({ outcome: 'SUCCEEDED', phase: 'data' });
    expect(Number(undone.json.undone)).toBeGreaterThan(0);
    for (const table of TABLES) expect(await count(target, table), table).toBe(0);
    expect((await cli(['rollback', '--yes', '--phase', 'foundation'], dir)).code).toBe(0);
    // The data phase named again, with foundation (and its tenant tables) gone: nothing left to undo, exit 0.
    const again = await cli(['rollback', '--yes', '--phase', 'data'], dir);
    expect(again.code, again.stderr).toBe(0);
  });

  it('rolls back in bounded steps, going on from the ledger; tables built from empty are truncated', async () => {
    const target = `${source.name}_steps`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    // Every table was empty when its first chunks were planned.
    const built = await server.query(
      `SELECT table_name, empty_at_start FROM ${qualified(target, 'migration_progress')} WHERE phase = 'data'`,
    );
    expect(built.length).toBe(TABLES.length);
    for (const row of built) expect(row.empty_at_start, str(row, 'table_name')).toBe(1);
    // As if two tables had held rows before (an adopted target): those go chunk range by chunk range.
    const byRange = ['user_users', 'learn_progress_records'];
    await server.execute(
      `UPDATE ${qualified(target, 'migration_progress')} SET empty_at_start = 0 WHERE table_name IN (?, ?)`,
      byRange,
    );
    const [chunks] = await server.query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE table_name IN (?, ?)`,
      byRange,
    );
    const rangeRows = (await count(target, byRange[0] ?? '')) + (await count(target, byRange[1] ?? ''));

    // The real rollback state machine, its data steps cut to a millisecond: each removes one chunk and hands back.
    const loaded = loadConfig({ cwd: dir, defaults: demoConfig, env: {} });
    const deps = openDeps(loaded, dir);
    let steps = 0;
    try {
      const invoke = localInvoker(deps);
      const { result } = runLocal({
        definition: loadDefinition('rollback', localSubstitutions()),
        input: { phase: 'data' },
        timeScale: 0,
        invoke: async (key, event, signal) => {
          const input = event as DataInput;
          if (key !== 'DataRollbackFunctionArn' || input.step !== 'rollback-phase')
            return invoke(key, event, signal);
          steps++;
          return rollbackData({ ...deps, signal }, { kind: 'phase', ...input }, 1);
        },
      });
      const outcome = await result;
      expect(outcome, `${outcome.error} ${outcome.cause}`).toMatchObject({ status: 'SUCCEEDED' });
      // One step per range-deleted chunk (the truncates ride along with the first); the last one ends it.
      expect(steps).toBe((chunks === undefined ? 0 : Number(chunks.n)) + 1);
      expect(outcome.output).toMatchObject({ phase: 'data', rolledBack: true, undone: rangeRows });
      const truncated = (outcome.output as { truncated: string[] }).truncated;
      expect([...truncated].sort()).toEqual(TABLES.filter((t) => !byRange.includes(t)).sort());
    } finally {
      await deps.close();
    }
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const runs = await server.query(
      `SELECT phase, status FROM ${qualified(target, 'migration_runs')} WHERE phase IN ('data', 'rollback') ORDER BY phase`,
    );
    expect(runs).toEqual([
      { phase: 'data', status: 'rolled_back' },
      { phase: 'rollback', status: 'succeeded' },
    ]);
    const lock = await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`);
    expect(lock).toEqual([]);
    // The tables are empty again: a new run builds them from empty, and its copy verifies.
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    const verify = await cli(['verify'], dir);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });

    // A phase's own rollback (its Catch) steps the same way: as the data state machine's loop calls it.
    const [second] = await server.query(
      `SELECT run_id FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data' AND status = 'succeeded'`,
    );
    const runId = str(second ?? {}, 'run_id');
    const execution = `local:${hostname()}:${process.pid}:own-rollback`;
    await server.execute(
      `UPDATE ${qualified(target, 'migration_progress')} SET empty_at_start = 0 WHERE table_name = 'user_users'`,
    );
    await server.execute(
      `UPDATE ${qualified(target, 'migration_runs')} SET status = 'running' WHERE run_id = ?`,
      [runId],
    );
    await server.execute(
      `INSERT INTO ${qualified(target, 'migration_lock')} (name, run_id, phase, kind, owner, acquired_at, heartbeat_at)
       VALUES ('target', ?, 'data', 'run', ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))`,
      [runId, execution],
    );
    const users = await count(target, 'user_users');
    const own = openDeps(loadConfig({ cwd: dir, defaults: demoConfig, env: {} }), dir);
    const error = { Error: 'ChecksumMismatch', Cause: 'as a failed validation says' };
    try {
      let step = await rollbackData(
        { ...own, signal: new AbortController().signal },
        { kind: 'own', runId, execution, error },
        1,
      );
      let calls = 1;
      while (!step.done) {
        expect(step.rolledBack).toBe(false);
        // Between steps the run is rolling back and the lock stays this execution's.
        const [lock] = await server.query(`SELECT owner, kind FROM ${qualified(target, 'migration_lock')}`);
        expect(lock).toEqual({ owner: execution, kind: 'rollback' });
        step = await rollbackData(
          { ...own, signal: new AbortController().signal },
          { kind: 'own', runId, execution, undoneBefore: step.undone, truncatedBefore: step.truncated },
          1,
        );
        calls++;
      }
      expect(calls).toBeGreaterThan(2);
      expect(step).toMatchObject({ rolledBack: true, undone: users });
    } finally {
      await own.close();
    }
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const [after] = await server.query(
      `SELECT status, error_name, more_errors FROM ${qualified(target, 'migration_runs')} WHERE run_id = ?`,
      [runId],
    );
    expect(after).toEqual({ status: 'rolled_back', error_name: 'ChecksumMismatch', more_errors: null });
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`)).toEqual([]);

    // On AWS a failed map run's children may still be copying (their Lambdas run on): nothing is deleted until
    // their chunks have ended.
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    const [third] = await server.query(
      `SELECT run_id FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data' AND status = 'succeeded'`,
    );
    const aws = 'arn:aws:states:eu-west-1:123456789012:execution:ShifuMigrate-data:run-3';
    const thirdId = str(third ?? {}, 'run_id');
    await server.execute(
      `UPDATE ${qualified(target, 'migration_runs')} SET status = 'running', execution_id = ? WHERE run_id = ?`,
      [aws, thirdId],
    );
    await server.execute(
      `INSERT INTO ${qualified(target, 'migration_lock')} (name, run_id, phase, kind, owner, acquired_at, heartbeat_at)
       VALUES ('target', ?, 'data', 'run', ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))`,
      [thirdId, aws],
    );
    await server.execute(
      `UPDATE ${qualified(target, 'migration_chunks')} SET status = 'copying' WHERE run_id = ? AND table_name = 'study_records' AND chunk_no = 0`,
      [thirdId],
    );
    const before = await count(target, 'study_records');
    const onAws = openDeps(loadConfig({ cwd: dir, defaults: demoConfig, env: {} }), dir);
    try {
      const step = () =>
        rollbackData(
          { ...onAws, signal: new AbortController().signal },
          { kind: 'own', runId: thirdId, execution: aws },
          50,
        );
      const waiting = await step();
      expect(waiting).toMatchObject({ done: false, rolledBack: false });
      expect(await count(target, 'study_records')).toBe(before);
      // The chunk's copy ends: the rollback goes ahead.
      await server.execute(
        `UPDATE ${qualified(target, 'migration_chunks')} SET status = 'copied' WHERE run_id = ? AND status = 'copying'`,
        [thirdId],
      );
      let last = await step();
      for (let i = 0; !last.done && i < 10_000; i++) last = await step();
      expect(last).toMatchObject({ done: true, rolledBack: true });
    } finally {
      await onAws.close();
    }
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
  });
});
