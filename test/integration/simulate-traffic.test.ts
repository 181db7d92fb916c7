import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { simulateTraffic, type TrafficWrite, WRITE_KINDS } from '../../local/demo/traffic.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const USERS = 150;

describe('simulate-traffic', () => {
  let one: Awaited<ReturnType<typeof scratchDatabase>>;
  let two: Awaited<ReturnType<typeof scratchDatabase>>;
  let server: SqlClient;
  const counts = async (database: string) => {
    const out: Record<string, number> = {};
    for (const table of ['user_users', 'pay_payments', 'learn_generated_blocks', 'study_records'])
      out[table] = scalarNumber(
        await server.query(`SELECT COUNT(*) AS n FROM ${qualified(database, table)}`),
      );
    return out;
  };

  beforeAll(async () => {
    one = await scratchDatabase('traffic');
    two = await scratchDatabase('traffic_twin');
    server = mysqlClient('information_schema');
    for (const db of [one, two])
      await seedDemo({ client: server, database: db.name, users: USERS, reset: false });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await one?.drop();
    await two?.drop();
  });

  it('makes every kind of write the application makes, the same ones from the same seed and database', async () => {
    const before = await counts(one.name);
    const logs: TrafficWrite[][] = [];
    for (const db of [one, two]) {
      const client = mysqlClient(db.name);
      const log: TrafficWrite[] = [];
      try {
        const result = await simulateTraffic(client, {
          rate: 5000,
          writes: 400,
          seed: 7,
          onWrite: (w) => log.push(w),
        });
        expect(result.writes).toBe(400);
        for (const kind of Object.keys(WRITE_KINDS))
          expect(result.kinds[kind as keyof typeof WRITE_KINDS], kind).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
      logs.push(log);
    }
    expect(logs[1]).toEqual(logs[0]);
    const log = logs[0] ?? [];
    const after = await counts(one.name);
    const made = (kind: string, table?: string) =>
      log.filter((w) => w.kind === kind && (table === undefined || w.table === table) && w.rows > 0).length;
    // user_users: rows only added, by sign-ups and re-registrations.
    expect((after.user_users ?? 0) - (before.user_users ?? 0)).toBe(made('signup') + made('reregister'));
    // A re-registration adds a row under a user_bid that had one.
    const again = log.find((w) => w.kind === 'reregister' && w.rows > 0)?.key ?? '';
    expect(
      scalarNumber(
        await server.query(
          `SELECT COUNT(*) AS n FROM ${qualified(one.name, 'user_users')} WHERE user_bid = ?`,
          [again],
        ),
      ),
    ).toBeGreaterThanOrEqual(2);
    // Hard deletes remove rows; soft deletes mark them.
    const deleted = log.find((w) => w.kind === 'hardDelete' && w.rows > 0);
    expect(deleted).toBeDefined();
    expect(
      scalarNumber(
        await server.query(
          `SELECT COUNT(*) AS n FROM ${qualified(one.name, deleted?.table ?? '')} WHERE id = ?`,
          [deleted?.key ?? ''],
        ),
      ),
    ).toBe(0);
    const soft = log.find((w) => w.kind === 'softDelete' && w.rows > 0);
    const [row] = await server.query(
      `SELECT deleted FROM ${qualified(one.name, soft?.table ?? '')} WHERE id = ?`,
      [soft?.key ?? ''],
    );
    expect(str(row ?? { deleted: null }, 'deleted')).toBe('1');
    // A second run from the same seed on the database the first changed makes new writes (no repeated ids).
    const client = mysqlClient(one.name);
    try {
      const again2: TrafficWrite[] = [];
      await simulateTraffic(client, { rate: 5000, writes: 100, seed: 7, onWrite: (w) => again2.push(w) });
      expect(again2.map((w) => w.key)).not.toEqual(log.slice(0, 100).map((w) => w.key));
    } finally {
      await client.close();
    }
  });

  it('runs from the CLI at the rate asked, logging every write, and refuses a database that is not a demo', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smt-traffic-'));
    const env = {
      SOURCE_DATABASE_URL: mysqlUrl(two.name).raw,
      TARGET_DATABASE_URL: mysqlUrl(`${two.name}_t`).raw,
    };
    const run = await runCli(['simulate-traffic', '--rate', '100/s', '--duration', '2s', '--seed', '3'], {
      cwd: dir,
      env,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({ outcome: 'SUCCEEDED', database: two.name });
    // At most 100 writes a second for 2 s: the writer never runs ahead of its schedule (a busy machine may keep it
    // below, which is not what this checks).
    expect(Number(run.json.writes)).toBeGreaterThan(0);
    expect(Number(run.json.writes)).toBeLessThanOrEqual(201);
    const lines = readFileSync(String(run.json.log), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(Number(run.json.writes));
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      seq: 1,
      kind: expect.any(String),
      table: expect.any(String),
    });

    const plain = await scratchDatabase('traffic_plain');
    try {
      const admin = await adminConnection(plain.name);
      await admin.query('CREATE TABLE user_users (id BIGINT PRIMARY KEY)');
      await admin.end();
      const refused = await runCli(['simulate-traffic', '--writes', '5'], {
        cwd: dir,
        env: { ...env, SOURCE_DATABASE_URL: mysqlUrl(plain.name).raw },
      });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/only runs against a demo database made by seed-demo/);
      const bad = await runCli(['simulate-traffic', '--rate', 'fast'], { cwd: dir, env });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--rate must be writes per second/);
      expect((await runCli(['status', '--seed', '2'], { cwd: dir, env })).code).toBe(2);
    } finally {
      await plain.drop();
    }
  });
});
