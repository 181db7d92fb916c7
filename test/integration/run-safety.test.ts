import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessReport } from '../../lambdas/assess/schema.ts';
import { chunksInFlight } from '../../lambdas/control/control.ts';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { LockLost } from '../../lambdas/core/ledger/lock.ts';
import { assertRunOwner } from '../../lambdas/core/ledger/phase-run.ts';
import { ensureLedger, setRunStatus, startRun } from '../../lambdas/core/ledger/runs.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { DEMO_TABLES } from '../../local/demo/schema.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runPhase } from '../../local/run-phase.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
const TABLES = DEMO_TABLES.map((t) => t.name);
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const databases: string[] = [];

function workspace(
  target: string,
  chunking: Record<string, unknown> = {},
  from: { url: string } = { url: source.url.raw },
): string {
  databases.push(target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-safety-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: from,
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: {
        rowsPerChunk: 200,
        maxConcurrency: 2,
        copyPath: 'client',
        recheckDelaySeconds: 0.5,
        ...chunking,
      },
    }),
  );
  return dir;
}

const cli = (args: string[], cwd: string) => runCli(args, { cwd });
const count = async (database: string, table: string) =>
  scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(database, table)}`));
async function until(what: () => Promise<boolean>, label: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const copiedChunks = (target: string, table?: string) =>
  server
    .query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE status IN ('copied', 'validated')${table === undefined ? '' : ' AND table_name = ?'}`,
      table === undefined ? [] : [table],
    )
    .then(scalarNumber)
    .catch(() => 0);

/** The CLI as a separate process (its own pid, as two operators' terminals would be), with --json. */
function cliProcess(
  args: string[],
  cwd: string,
  started?: (child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; json: Record<string, unknown> }> {
  const child = spawn(
    join(root, 'node_modules', '.bin', 'node'),
    [join(root, 'bin', 'shifu-migrate.mjs'), ...args, '--json'],
    {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  started?.(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) =>
    child.on('exit', (code) => resolve({ code, json: JSON.parse(out) as Record<string, unknown> })),
  );
}

/**
 * Every row of a table, read with a plain connection and compared in JS (not the product's checksum): the target's
 * rows less tenant_bid against the source's less the quarantined keys. Returns the differences.
 */
async function independentDiff(
  target: string,
  table: string,
  from: string = source.name,
): Promise<{ missing: number; extra: number; changed: number }> {
  const read = async (conn: mysql.Connection, database: string) => {
    const [rows] = await conn.query(`SELECT * FROM ${qualified(database, table)} ORDER BY id`);
    return new Map(
      (rows as Record<string, unknown>[]).map((r) => {
        const { tenant_bid: _, ...rest } = r;
        return [
          String(r.id),
          JSON.stringify(rest, (_k, v) =>
            typeof v === 'object' && v !== null && 'type' in v && v.type === 'Buffer' ? v.data : v,
          ),
        ];
      }),
    );
  };
  const conn = await adminConnection();
  try {
    const [held] = await conn.query(
      `SELECT row_key FROM ${qualified(target, 'migration_quarantine')} WHERE table_name = ?`,
      [table],
    );
    const quarantined = new Set(
      (held as { row_key: string }[]).map((h) => h.row_key.replace(/^\[|\]$/g, '')),
    );
    const rows = await read(conn, from);
    const to = await read(conn, target);
    let missing = 0;
    let changed = 0;
    for (const [id, row] of rows) {
      if (quarantined.has(id)) continue;
      const other = to.get(id);
      if (other === undefined) missing += 1;
      else if (other !== row) changed += 1;
    }
    const extra = [...to.keys()].filter((id) => !rows.has(id) || quarantined.has(id)).length;
    return { missing, extra, changed };
  } finally {
    await conn.end();
  }
}

beforeAll(async () => {
  source = await scratchDatabase('safety');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 300, reset: false });
});

afterAll(async () => {
  for (const d of databases) await server.execute(`DROP DATABASE IF EXISTS \`${d}\``);
  await server?.close();
  await source?.drop();
});

describe('one run at a time', () => {
  it('runs exactly one of two `run data` started together; the other exits 1 naming the holder, and no row is stranded', async () => {
    const target = `${source.name}_two`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const [a, b] = await Promise.all([cliProcess(['run', 'data'], dir), cliProcess(['run', 'data'], dir)]);
    const outcomes = [a, b].sort((x, y) => Number(x.code) - Number(y.code));
    expect(outcomes.map((o) => o.code)).toEqual([0, 1]);
    const [won, refused] = outcomes;
    expect(refused?.json).toMatchObject({
      outcome: 'FAILED',
      error: 'RunLocked',
      rolledBack: false,
      run: { status: 'refused' },
    });
    expect(String(refused?.json.cause)).toMatch(
      new RegExp(
        `locked by data run ${String(won?.json.runId)} \\(local process \\d+ on .+, heartbeat \\d+ s ago\\): wait for it to end`,
      ),
    );
    for (const t of TABLES)
      expect(await independentDiff(target, t), t).toEqual({ missing: 0, extra: 0, changed: 0 });
    const runs = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data' ORDER BY status`,
    );
    expect(runs.map((r) => str(r, 'status'))).toEqual(['refused', 'succeeded']);
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`)).toEqual([]);
  });
});

describe('a process that wakes up after its run was taken over', () => {
  it('is told the run was taken over and by whom, not that a rollback stopped it', async () => {
    const db = await scratchDatabase('owner');
    databases.push(db.name);
    const client = mysqlClient(db.name);
    try {
      await ensureLedger(client);
      const runId = 'data-20261201T000000Z-abcdef';
      await startRun(client, 'data', runId, 'local:elsewhere:1:resumer');
      await setRunStatus(client, runId, 'succeeded');
      const woke = assertRunOwner(client, runId, 'local:elsewhere:2:sleeper');
      await expect(woke).rejects.toBeInstanceOf(LockLost);
      await expect(assertRunOwner(client, runId, 'local:elsewhere:2:sleeper')).rejects.toThrow(
        /taken over by local:elsewhere:1:resumer \(this execution's lock went stale\) and is now succeeded/,
      );
    } finally {
      await client.close();
    }
  });
});

describe('chunks in flight', () => {
  it('are waited for only while their run can still be copying (running or stopping), not once it has ended', async () => {
    const db = await scratchDatabase('inflight');
    databases.push(db.name);
    const client = mysqlClient(db.name);
    try {
      await ensureLedger(client);
      const runId = 'data-20261201T000000Z-abcdef';
      // This process: alive, so only the run's status can say its chunk is no longer being copied.
      await startRun(client, 'data', runId, `local:${hostname()}:${process.pid}:x`);
      await client.execute(
        "INSERT INTO migration_chunks (run_id, table_name, chunk_no, status) VALUES (?, 'user_users', 0, 'copying')",
        [runId],
      );
      await setRunStatus(client, runId, 'stopping');
      expect(await chunksInFlight(client, [runId])).toBe(1);
      for (const ended of ['rollback_failed', 'interrupted', 'rolled_back'] as const) {
        await setRunStatus(client, runId, ended);
        expect(await chunksInFlight(client, [runId]), ended).toBe(0);
      }
    } finally {
      await client.close();
    }
  });
});

describe('Ctrl-C', () => {
  it('stops the run, leaves it interrupted and resumable with the lock given up, and says how to go on', async () => {
    const target = `${source.name}_sigint`;
    const dir = workspace(target, { rowsPerChunk: 100, maxConcurrency: 1 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const stopped = await cliProcess(['run', 'data'], dir, (child) => {
      void until(async () => (await copiedChunks(target)) >= 5, 'chunks to be copied').then(() =>
        child.kill('SIGINT'),
      );
    });
    expect(stopped.code).toBe(1);
    expect(stopped.json).toMatchObject({
      error: 'Interrupted',
      rolledBack: false,
      run: { status: 'interrupted' },
    });
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`)).toEqual([]);
    const resumed = await cli(['run', 'data'], dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json.runId).toBe((stopped.json.run as { runId: string }).runId);
    for (const t of TABLES)
      expect(await independentDiff(target, t), t).toEqual({ missing: 0, extra: 0, changed: 0 });
  });
});

describe('outcomes that tell the truth', () => {
  it('a table renamed mid-run: the rollback fails, says what is left, and rollback finishes once the table is back', async () => {
    const target = `${source.name}_rename`;
    const dir = workspace(target, { rowsPerChunk: 100, maxConcurrency: 1 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const running = cli(['run', 'data'], dir);
    let ended: string | undefined;
    void running.then((r) => {
      ended = r.stderr;
    });
    await until(async () => {
      if (ended !== undefined) throw new Error(`the run ended before the rename:\n${ended}`);
      return (await copiedChunks(target, 'learn_generated_blocks')) >= 2;
    }, 'blocks to be copying');
    await server.execute(
      `RENAME TABLE ${qualified(target, 'learn_generated_blocks')} TO ${qualified(target, 'blocks_moved')}`,
    );
    const failed = await running;
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({
      outcome: 'FAILED',
      error: 'RollbackIncomplete',
      rolledBack: false,
      run: { status: 'rollback_failed', error: { name: 'DatabaseError' } },
      left: { tables: [{ table: 'learn_generated_blocks', rows: null }] },
    });
    expect(failed.stderr).toMatch(/NOT rolled back \(data-\S+\): the rollback stopped half-way/);
    expect(failed.stderr).toMatch(
      /learn_generated_blocks: table missing \(renamed or dropped\), not emptied/,
    );
    expect(failed.stderr).toMatch(/finish it: npx shifu-migrate rollback/);
    expect(failed.stderr).not.toMatch(/^Rolled back/m);
    // Everything else was removed; the moved table still holds what was copied into it.
    for (const t of TABLES.filter((t) => t !== 'learn_generated_blocks'))
      expect(await count(target, t), t).toBe(0);
    expect(await count(target, 'blocks_moved')).toBeGreaterThan(0);

    const status = await cli(['status'], dir);
    const run = (status.json.runs as { runId: string; status: string; moreErrors: string[] }[]).find((r) =>
      r.runId.startsWith('data-'),
    );
    expect(run?.status).toBe('rollback_failed');
    expect(run?.moreErrors.join(' ')).toMatch(/RollbackIncomplete/);
    const tables = status.json.tables as {
      table: string;
      phase: string;
      status: string;
      rows: number | null;
    }[];
    expect(tables.find((t) => t.phase === 'data' && t.table === 'learn_generated_blocks')).toMatchObject({
      rows: null,
      status: 'rolling_back',
    });

    await server.execute(
      `RENAME TABLE ${qualified(target, 'blocks_moved')} TO ${qualified(target, 'learn_generated_blocks')}`,
    );
    const finished = await cli(['rollback', '--yes'], dir);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.json).toMatchObject({ outcome: 'SUCCEEDED', phase: 'data', rolledBack: true });
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const [after] = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(after).toEqual({ status: 'rolled_back' });
  });
});

describe('the source is never written', () => {
  it('refuses, with exit 2, a target that is the source under another host name, and writes nothing there', async () => {
    const aliasUrl = mysqlUrl(source.name).raw.replace('127.0.0.1', 'localhost');
    expect(aliasUrl).not.toBe(source.url.raw);
    const dir = mkdtempSync(join(tmpdir(), 'smt-alias-'));
    writeFileSync(
      join(dir, 'shifu-migrate.config.json'),
      JSON.stringify({
        ...demoConfig(),
        source: { url: source.url.raw },
        target: { url: aliasUrl },
        archive: { url: join(dir, 'archive') },
      }),
    );
    const before = await server.query(
      'SELECT TABLE_NAME AS t, TABLE_ROWS AS r FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
      [source.name],
    );
    for (const args of [
      ['run', 'foundation'],
      ['run', 'data'],
      ['rollback', '--yes'],
      ['alarm', 'raise', 'x'],
    ]) {
      const refused = await cli(args, dir);
      expect(refused.code, args.join(' ')).toBe(2);
      expect(refused.json).toMatchObject({ outcome: 'INVALID_INPUT', error: 'SourceIsTarget' });
      expect(String(refused.json.message)).toMatch(/target\.url names the source database/);
    }
    // Assess only reads, and says so as a blocking finding.
    const assess = await cli(['run', 'assess'], dir);
    expect(assess.code).toBe(1);
    expect((assess.json.report as AssessReport).problems).toContainEqual(
      expect.objectContaining({ severity: 'blocking', code: 'target-is-source' }),
    );
    // The start task refuses too, when the state machine runs without the CLI (as on AWS).
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      defaults: demoConfig,
      env: {},
    });
    const run = await runPhase({ loaded, stateMachine: 'foundation', input: {}, cwd: dir });
    expect(run).toMatchObject({ status: 'FAILED', error: 'SourceIsTarget' });
    const after = await server.query(
      'SELECT TABLE_NAME AS t, TABLE_ROWS AS r FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
      [source.name],
    );
    expect(after.map((r) => r.t)).toEqual(before.map((r) => r.t));
    expect(after.some((r) => /^migration_|^tenant_/.test(str(r, 't')))).toBe(false);
  });

  it('opens the source read-only at the server: a write through its connection fails there', async () => {
    const dir = workspace(`${source.name}_ro`);
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      defaults: demoConfig,
      env: {},
    });
    const { openDeps } = await import('../../local/run-phase.ts');
    const deps = openDeps(loaded, dir);
    try {
      await expect(
        deps.source.execute('UPDATE user_users SET nickname = nickname WHERE id = 1'),
      ).rejects.toThrow(/READ ONLY transaction/);
      await expect(deps.source.execute('CREATE TABLE smt_should_not_exist (id INT)')).rejects.toThrow(
        /READ ONLY/,
      );
    } finally {
      await deps.close();
    }
  });
});

/**
 * AI-Shifu stays live while it migrates: a writer that inserts, updates and deletes rows of every table of the
 * source, as the application would, until stopped. Returns how many of each it did.
 */
function liveWriter(database: string): {
  stop(): Promise<{ inserts: number; updates: number; deletes: number }>;
} {
  const updates: Record<string, string> = {
    user_users: "nickname = LEFT(CONCAT('w', RAND()), 40)",
    user_auth_credentials: 'state = 1 - state',
    shifu_shifus: "title = LEFT(CONCAT('t', RAND()), 40)",
    shifu_outlines: 'position = position + 1',
    order_orders: 'status = (status + 1) % 5',
    pay_payments: 'status = (status + 1) % 5',
    study_records: 'score = ROUND(RAND() * 100, 2)',
    learn_progress_records: 'progress_pct = ROUND(RAND() * 100, 2)',
    learn_generated_blocks: 'tokens = tokens + 1',
    sys_configs: "remark = LEFT(CONCAT('r', RAND()), 40)",
  };
  const unique = new Map(
    DEMO_TABLES.map((t) => [
      t.name,
      t.indexes.flatMap((i) => /UNIQUE INDEX \w+ \((\w+)\)/.exec(i)?.slice(1) ?? []),
    ]),
  );
  const done = { inserts: 0, updates: 0, deletes: 0 };
  let stopping = false;
  let serial = 0;
  const loop = (async () => {
    const conn = await adminConnection(database);
    try {
      const next = new Map<string, number>();
      for (const t of TABLES) {
        const [[row]] = (await conn.query(`SELECT COALESCE(MAX(id), 0) AS m FROM \`${t}\``)) as unknown as [
          { m: string }[],
        ];
        next.set(t, Number(row?.m ?? 0) + 1_000_000);
      }
      while (!stopping) {
        const table = TABLES[Math.floor(Math.random() * TABLES.length)] as string;
        const [[bounds]] = (await conn.query(
          `SELECT MIN(id) AS lo, MAX(id) AS hi FROM \`${table}\``,
        )) as unknown as [{ lo: string; hi: string }[]];
        const pick =
          Number(bounds?.lo ?? 0) +
          Math.floor(Math.random() * (Number(bounds?.hi ?? 0) - Number(bounds?.lo ?? 0) + 1));
        const roll = Math.random();
        if (roll < 0.5) {
          const [[row]] = (await conn.query(`SELECT * FROM \`${table}\` WHERE id >= ? ORDER BY id LIMIT 1`, [
            pick,
          ])) as unknown as [Record<string, unknown>[]];
          if (row === undefined) continue;
          serial += 1;
          const copy: Record<string, unknown> = { ...row, id: next.get(table) };
          next.set(table, (next.get(table) ?? 0) + 1);
          for (const column of unique.get(table) ?? [])
            copy[column] = `live${serial}${Math.random().toString(16).slice(2, 12)}`;
          if (table === 'user_users') {
            copy.user_bid = `live${serial}${Math.random().toString(16).slice(2, 12)}`;
            copy.email = `live${serial}@${['acme.com', 'globex.com', 'nowhere.org'][serial % 3]}`;
          }
          const columns = Object.keys(copy);
          await conn.query(
            `INSERT INTO \`${table}\` (${columns.map((c) => `\`${c}\``).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
            // JSON columns come back parsed: written back as their text.
            columns.map((c) => {
              const v = copy[c];
              return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) ? JSON.stringify(v) : v;
            }),
          );
          done.inserts += 1;
        } else if (roll < 0.85) {
          await conn.query(`UPDATE \`${table}\` SET ${updates[table]} WHERE id >= ? ORDER BY id LIMIT 1`, [
            pick,
          ]);
          done.updates += 1;
        } else {
          await conn.query(`DELETE FROM \`${table}\` WHERE id >= ? ORDER BY id LIMIT 1`, [pick]);
          done.deletes += 1;
        }
      }
    } finally {
      await conn.end();
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      return done;
    },
  };
}

describe('a live source during data', () => {
  it('copies while rows of every table are inserted, updated and deleted, and ends verify-green after one more pass', async () => {
    const live = await scratchDatabase('live');
    databases.push(live.name);
    await seedDemo({ client: server, database: live.name, users: 300, reset: false });
    const target = `${live.name}_t`;
    const dir = workspace(target, { rowsPerChunk: 300, maxConcurrency: 2 }, { url: live.url.raw });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const writer = liveWriter(live.name);
    let first: Awaited<ReturnType<typeof cli>>;
    let writes: { inserts: number; updates: number; deletes: number };
    try {
      first = await cli(['run', 'data'], dir);
    } finally {
      writes = await writer.stop();
    }
    // Writes during the copy are normal, not a failure: the run succeeds, chunks still changing are marked so.
    expect(first.code, first.stderr).toBe(0);
    expect(writes.inserts + writes.updates + writes.deletes).toBeGreaterThan(100);
    expect(writes.deletes).toBeGreaterThan(10);
    // The writes landed in copied ranges: chunks differed and were copied again, exactly (deletes included).
    const recopied = await server.query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE run_id = ? AND attempts > 1`,
      [String(first.json.runId)],
    );
    expect(scalarNumber(recopied)).toBeGreaterThan(0);
    const second = await cli(['run', 'data'], dir);
    expect(second.code, second.stderr).toBe(0);
    expect(second.json.changing).toBe(0);
    const verify = await cli(['verify'], dir);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });
    const conn = await adminConnection();
    try {
      for (const t of TABLES) {
        const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${qualified(live.name, t)}`);
        expect(Number((rows as { n: number }[])[0]?.n), t).toBeGreaterThan(0);
      }
    } finally {
      await conn.end();
    }
    for (const t of TABLES) {
      const diff = await independentDiff(target, t, live.name);
      expect(diff, t).toEqual({ missing: 0, extra: 0, changed: 0 });
    }
  }, 120_000);

  it('marks a chunk whose rows keep changing as changing and leaves it to sync, instead of failing the phase', async () => {
    const hot = await scratchDatabase('hot');
    databases.push(hot.name);
    await seedDemo({ client: server, database: hot.name, users: 50, reset: false });
    const target = `${hot.name}_t`;
    const dir = workspace(target, { rowsPerChunk: 5_000, maxConcurrency: 1 }, { url: hot.url.raw });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    // One row of sys_configs rewritten without pause, as a busy application would.
    const conn = await adminConnection(hot.name);
    let stop = false;
    const writing = (async () => {
      while (!stop)
        await conn.query("UPDATE sys_configs SET remark = LEFT(CONCAT('hot', RAND()), 40) WHERE id = 1");
    })();
    let run: Awaited<ReturnType<typeof cli>>;
    try {
      run = await cli(['run', 'data'], dir);
    } finally {
      stop = true;
      await writing;
      await conn.end();
    }
    expect(run.code, run.stderr).toBe(0);
    expect(run.json.changing).toBe(1);
    expect(run.stderr).toMatch(/1 chunks held rows the source was still writing/);
    const [chunk] = await server.query(
      `SELECT status, changing_rows FROM ${qualified(target, 'migration_chunks')} WHERE table_name = 'sys_configs'`,
    );
    expect(chunk).toEqual({ status: 'changing', changing_rows: 1 });
    // Once writes stop, one more pass brings it level.
    expect((await cli(['run', 'data'], dir)).json).toMatchObject({ outcome: 'SUCCEEDED', changing: 0 });
    expect((await cli(['verify'], dir)).json).toMatchObject({ differences: 0 });
  }, 120_000);
});

describe('rows flipped back and forth', () => {
  it('are changing, not a defect: the phase does not fail or roll back on A → B → A writes', async () => {
    const flip = await scratchDatabase('flip');
    databases.push(flip.name);
    await seedDemo({ client: server, database: flip.name, users: 100, reset: false });
    const target = `${flip.name}_t`;
    const dir = workspace(target, { rowsPerChunk: 5_000, maxConcurrency: 1 }, { url: flip.url.raw });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    // Four connections toggle the state of twenty users, keeping updated_at: each row is A, B, A, … all the time.
    let stop = false;
    const togglers = Array.from({ length: 4 }, async () => {
      const conn = await adminConnection(flip.name);
      try {
        while (!stop) {
          await conn.query(
            'UPDATE user_users SET user_state = 1 - user_state, updated_at = updated_at WHERE id = ?',
            [1 + Math.floor(Math.random() * 20)],
          );
        }
      } finally {
        await conn.end();
      }
    });
    let run: Awaited<ReturnType<typeof cli>>;
    try {
      run = await cli(['run', 'data'], dir);
    } finally {
      stop = true;
      await Promise.all(togglers);
    }
    expect(run.code, run.stderr).toBe(0);
    expect(Number(run.json.changing)).toBeGreaterThanOrEqual(0);
    expect((await cli(['run', 'data'], dir)).json).toMatchObject({ outcome: 'SUCCEEDED', changing: 0 });
    expect((await cli(['verify'], dir)).json).toMatchObject({ differences: 0 });
  }, 120_000);
});

describe('failures that heal, and input that is refused', () => {
  it('an archive that cannot be written: refused at the start, and mid-run left resumable, never undone', async () => {
    const target = `${source.name}_archive`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    // Where runs keep their files is a file: the start cannot write the run's context, and says so.
    mkdirSync(join(dir, 'archive'), { recursive: true });
    writeFileSync(join(dir, 'archive', 'runs'), 'in the way');
    const refused = await cli(['run', 'data'], dir);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ outcome: 'FAILED', error: 'ArchiveUnavailable', rolledBack: false });
    expect(String(refused.json.cause)).toMatch(
      /the archive .* failed to write runs\/data-[^/]+\/schema\.json/,
    );
    expect(refused.stderr).toMatch(/Refused before it did any work/);
    rmSync(join(dir, 'archive', 'runs'));
    // Mid-run: the last level's chunk list cannot be written (a directory stands where the file goes).
    const running = cli(['run', 'data'], dir);
    let runId: string | undefined;
    await until(async () => {
      const [row] = await server
        .query(
          `SELECT run_id FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data' AND status = 'running'`,
        )
        .catch(() => []);
      runId = row === undefined ? undefined : str(row, 'run_id');
      return runId !== undefined;
    }, 'the run to start');
    mkdirSync(join(dir, 'archive', 'runs', runId ?? '', 'chunks', 'learn_generated_blocks.json'), {
      recursive: true,
    });
    const failed = await running;
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({ outcome: 'FAILED', error: 'ArchiveUnavailable', rolledBack: false });
    expect(failed.stderr).toMatch(/Nothing was undone: the run is resumable/);
    const [run] = await server.query(
      `SELECT status, error_name FROM ${qualified(target, 'migration_runs')} WHERE run_id = ?`,
      [runId ?? ''],
    );
    expect(run).toEqual({ status: 'interrupted', error_name: 'ArchiveUnavailable' });
    expect(await count(target, 'user_users')).toBeGreaterThan(0);
    // Fixed, the run resumes and ends with the target equal to the source.
    rmSync(join(dir, 'archive', 'runs', runId ?? '', 'chunks', 'learn_generated_blocks.json'), {
      recursive: true,
    });
    const resumed = await cli(['run', 'data'], dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json.runId).toBe(runId);
    for (const t of TABLES)
      expect(await independentDiff(target, t), t).toEqual({ missing: 0, extra: 0, changed: 0 });
  });

  it('survives its connections being killed every 250 ms for 3 s: retried, or left resumable, never rolled back', async () => {
    const target = `${source.name}_kills`;
    const dir = workspace(target, { rowsPerChunk: 100, maxConcurrency: 2 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const killer = await adminConnection();
    let stop = false;
    let killed = 0;
    const until = Date.now() + 3_000;
    const killing = (async () => {
      while (!stop && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 250));
        const [rows] = await killer.query(
          'SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN (?, ?) AND ID <> CONNECTION_ID()',
          [target, source.name],
        );
        for (const { ID } of rows as { ID: number }[]) {
          await killer.query(`KILL CONNECTION ${Number(ID)}`).catch(() => undefined);
          killed += 1;
        }
      }
    })();
    let first: Awaited<ReturnType<typeof cli>>;
    try {
      first = await cli(['run', 'data'], dir);
    } finally {
      stop = true;
      await killing;
      await killer.end();
    }
    expect(killed).toBeGreaterThan(0);
    if (first.code !== 0) {
      // Retries ran out: nothing was undone, the run is interrupted and says how to go on.
      expect(first.json).toMatchObject({ rolledBack: false, run: { status: 'interrupted' } });
      expect(first.stderr).toMatch(/Nothing was undone: the run is resumable at chunk \d+ of \d+/);
      const resumed = await cli(['run', 'data'], dir);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.json.runId).toBe(
        first.json.run === undefined ? undefined : (first.json.run as { runId: string }).runId,
      );
    }
    const runs = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(runs).toEqual([{ status: 'succeeded' }]);
    for (const t of TABLES)
      expect(await independentDiff(target, t), t).toEqual({ missing: 0, extra: 0, changed: 0 });
  }, 120_000);

  it('says which database refused the login, with exit 2', async () => {
    const dir = workspace(`${source.name}_pw`);
    const wrong = source.url.raw.replace('mysql://root@', 'mysql://root:not-the-password@');
    for (const [variable, which] of [
      ['SOURCE_DATABASE_URL', 'source'],
      ['TARGET_DATABASE_URL', 'target'],
    ] as const) {
      const env = {
        [variable]:
          variable === 'SOURCE_DATABASE_URL' ? wrong : wrong.replace(source.name, `${source.name}_pw`),
      };
      const run = await runCli(['run', 'foundation'], { cwd: dir, env });
      expect(run.code, variable).toBe(2);
      expect(run.json).toMatchObject({ outcome: 'INVALID_INPUT', error: 'DatabaseAccessDenied' });
      expect(String(run.json.message)).toMatch(
        new RegExp(
          `the ${which} database at mysql://root:\\*\\*\\*@.* refused the login: .*${which}\\.url \\(or ${which.toUpperCase()}_DATABASE_URL\\)`,
        ),
      );
      expect(String(run.json.message)).not.toMatch(/not-the-password/);
    }
    // TLS asked for in the URL, and a server that does not offer it or whose certificate is not trusted (a test
    // server has no CA-signed one): exit 2, naming the field.
    const tls = await runCli(['run', 'foundation'], {
      cwd: dir,
      env: { SOURCE_DATABASE_URL: `${source.url.raw}?ssl=true` },
    });
    expect(tls.code).toBe(2);
    expect(String(tls.json.message)).toMatch(
      /the source database at .*\?ssl=true: TLS failed \([A-Z_]+: .*\)\. Check ssl and ssl-ca in source\.url/,
    );
  });

  it('an error that may pass, once its retries are spent, leaves the run interrupted and resumable, undoing nothing', async () => {
    const target = `${source.name}_deadlock`;
    const dir = workspace(target, { rowsPerChunk: 200, maxConcurrency: 1 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    // Every insert into one table deadlocks, as a busy server may: TransientDatabaseError, retried, never passing.
    await server.execute(
      `CREATE TRIGGER ${qualified(target, 'always_deadlock')} BEFORE INSERT ON ${qualified(target, 'study_records')}
       FOR EACH ROW SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found when trying to get lock'`,
    );
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      defaults: demoConfig,
      env: {},
    });
    const run = await runPhase({ loaded, stateMachine: 'data', input: {}, cwd: dir, timeScale: 0 });
    expect(run).toMatchObject({ status: 'FAILED', error: 'TransientDatabaseError' });
    const [record] = await server.query(
      `SELECT run_id, status, error_name FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(record).toMatchObject({ status: 'interrupted', error_name: 'TransientDatabaseError' });
    // Nothing undone: what was copied before is still there, and the lock is free.
    expect(await count(target, 'user_users')).toBeGreaterThan(0);
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`)).toEqual([]);
    const status = await cli(['status'], dir);
    expect((status.json.runs as { status: string }[])[0]?.status).toBe('interrupted');

    await server.execute(`DROP TRIGGER ${qualified(target, 'always_deadlock')}`);
    // A plan an older version saved in pieces and lost half of (here: every user_users chunk but the first, and the
    // rows they copied): found incomplete and planned again, never taken for the whole table.
    await server.execute(
      `DELETE FROM ${qualified(target, 'migration_chunks')} WHERE run_id = ? AND table_name = 'user_users' AND chunk_no > 0`,
      [String(record?.run_id)],
    );
    const [first] = await server.query(
      `SELECT key_to FROM ${qualified(target, 'migration_chunks')} WHERE run_id = ? AND table_name = 'user_users' AND chunk_no = 0`,
      [String(record?.run_id)],
    );
    await server.execute(`DELETE FROM ${qualified(target, 'user_users')} WHERE id > ?`, [
      Number(JSON.parse(String(first?.key_to))[0]),
    ]);
    // Resuming under other tenant rules would mix rows copied under two sets of rules: refused, exit 2.
    const file = join(dir, 'shifu-migrate.config.json');
    const original = readFileSync(file, 'utf8');
    const changed = JSON.parse(original) as {
      tables: { user_users: { tenant: { domains?: Record<string, string> }[] } };
    };
    const emailRule = changed.tables.user_users.tenant[0];
    if (emailRule?.domains !== undefined) emailRule.domains['acme.com'] = 'globex';
    writeFileSync(file, JSON.stringify(changed));
    const refused = await cli(['run', 'data'], dir);
    expect(refused.code).toBe(2);
    expect(refused.json).toMatchObject({ error: 'RunConfigChanged' });
    expect(String(refused.json.cause)).toMatch(
      /was started with another config .*restore the config it ran with/,
    );
    writeFileSync(file, original);
    // While the run stood still the source went on, in tables copied and validated before the interruption.
    await server.execute(
      `UPDATE ${qualified(source.name, 'user_users')} SET nickname = 'renamed while interrupted' WHERE id <= 5`,
    );
    await server.execute(`DELETE FROM ${qualified(source.name, 'sys_configs')} ORDER BY id LIMIT 1`);
    const resumed = await cli(['run', 'data'], dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json.runId).toBe(record?.run_id);
    expect(resumed.stderr).toMatch(new RegExp(`Resuming ${String(record?.run_id)} at chunk \\d+ of \\d+`));
    // The interruption is history: kept, but no longer this run's error.
    const [after] = await server.query(
      `SELECT status, error_name, more_errors FROM ${qualified(target, 'migration_runs')} WHERE run_id = ?`,
      [String(record?.run_id)],
    );
    expect(after).toMatchObject({ status: 'succeeded', error_name: null });
    expect(String(after?.more_errors)).toMatch(
      /^before it was resumed: TransientDatabaseError: Deadlock found/,
    );
    for (const t of TABLES)
      expect(await independentDiff(target, t), t).toEqual({ missing: 0, extra: 0, changed: 0 });
  });

  it('a rollback that meets errors that may pass is retried, not left half-done', async () => {
    const target = `${source.name}_rbretry`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    // As if study_records had held rows before the copy: it goes range by range (a TRUNCATE fires no trigger).
    await server.execute(
      `UPDATE ${qualified(target, 'migration_progress')} SET empty_at_start = 0 WHERE table_name = 'study_records'`,
    );
    // The first three deletes from one table deadlock (a busy server), then they go through.
    // MyISAM: the count survives the failed statement that the signal rolls back.
    await server.execute(`CREATE TABLE ${qualified(target, 'deadlocks')} (n INT NOT NULL) ENGINE=MyISAM`);
    await server.execute(`INSERT INTO ${qualified(target, 'deadlocks')} VALUES (0)`);
    await server.execute(
      `CREATE TRIGGER ${qualified(target, 'deadlock_thrice')} BEFORE DELETE ON ${qualified(target, 'study_records')}
       FOR EACH ROW BEGIN
         UPDATE ${qualified(target, 'deadlocks')} SET n = n + 1;
         IF (SELECT n FROM ${qualified(target, 'deadlocks')}) <= 3 THEN
           SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found when trying to get lock';
         END IF;
       END`,
    );
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      defaults: demoConfig,
      env: {},
    });
    const run = await runPhase({
      loaded,
      stateMachine: 'rollback',
      input: { phase: 'data' },
      cwd: dir,
      timeScale: 0,
    });
    expect(run.status, JSON.stringify(run)).toBe('SUCCEEDED');
    expect(run.output).toMatchObject({ phase: 'data', rolledBack: true });
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    const runs = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(runs).toEqual([{ status: 'rolled_back' }]);
    const [tries] = await server.query(`SELECT n FROM ${qualified(target, 'deadlocks')}`);
    expect(Number(tries?.n)).toBeGreaterThan(3);
  });
});
