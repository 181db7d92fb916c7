import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, str } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

let source: Awaited<ReturnType<typeof scratchDatabase>>;
let restored: Awaited<ReturnType<typeof scratchDatabase>> | undefined;
let server: SqlClient;
let saasDb: SqlClient;
const target = `smt_golive_t_${process.pid}`;
let dir: string;
let app: Server;
let appUrl: string;
/** What the application's health endpoint answers, and whether each request also writes (a user renamed). */
const appState = { down: false, writes: 0 };

const tgt = (table: string) => qualified(target, table);
const src = (table: string) => qualified(source.name, table);
const cli = (args: string[]) => runCli(args, { cwd: dir });

function writeConfig(golive: Record<string, unknown>): void {
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 400, maxConcurrency: 2, copyPath: 'client', recheckDelaySeconds: 0.2 },
      sync: { overlapSeconds: 5 },
      application: {
        waves: [['globex', 'acme', 'initech', 'default']],
        bakeMinutes: 0.5,
        idSeries: 'sessions',
        settleSeconds: 0.2,
      },
      golive: {
        probes: [{ name: 'app', url: appUrl, bodyIncludes: '"status":"ok"' }],
        alarmsQuietMinutes: 0,
        smokeQueries: [
          {
            name: 'own users',
            sql: 'SELECT tenant_bid FROM user_users WHERE tenant_bid = :tenant',
            minRows: 0,
            tenantColumn: 'tenant_bid',
          },
        ],
        archive: { partRows: 1_000 },
        ...golive,
      },
    }),
  );
}

async function statuses(): Promise<string[]> {
  const rows = await server.query(
    `SELECT s.tenant_bid, s.status, COALESCE(r.target, 'legacy') AS route FROM ${tgt('tenant_migration_status')} s
       LEFT JOIN ${tgt('traffic_routing')} r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid ORDER BY s.tenant_bid`,
  );
  return [...new Set(rows.map((r) => `${str(r, 'status')}/${str(r, 'route')}`))];
}

/** The acme user the application renames while go-live runs (a write on the multi-tenant side). */
let acmeUser: number;

beforeAll(async () => {
  source = await scratchDatabase('glv');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 120, reset: false });
  saasDb = openSql(mysqlUrl(target), { label: 'target' });
  app = createServer((_req, res) => {
    const answer = () => {
      res.writeHead(appState.down ? 503 : 200, { 'content-type': 'application/json' });
      res.end(appState.down ? '{"status":"down"}' : '{"status":"ok"}');
    };
    if (appState.down && acmeUser !== undefined) {
      appState.writes += 1;
      saasDb
        .execute(`UPDATE user_users SET nickname = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?`, [
          `renamed during go-live ${appState.writes}`,
          acmeUser,
        ])
        .then(answer, answer);
    } else answer();
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/health`;
  dir = mkdtempSync(join(tmpdir(), 'smt-golive-'));
  writeConfig({});
  // The demo config's identity providers reference their client secrets by these names (values never read).
  process.env.DEMO_ACME_GOOGLE_SECRET = 'demo-only';
  process.env.DEMO_GLOBEX_GITHUB_SECRET = 'demo-only';
  for (const phase of ['foundation', 'data', 'sync', 'application', 'integration'])
    expect((await cli(['run', phase])).code, phase).toBe(0);
  const [user] = await server.query(`SELECT id FROM ${tgt('user_users')} WHERE tenant_bid = 'acme' LIMIT 1`);
  acmeUser = num(user ?? {}, 'id');
}, 240_000);

afterAll(async () => {
  await new Promise((resolve) => app?.close(resolve));
  await saasDb?.close();
  await server?.execute(`DROP DATABASE IF EXISTS \`${target}\``);
  await server?.close();
  await source?.drop();
  await restored?.drop();
});

describe('golive', () => {
  it('refuses while rows are quarantined and the config does not accept them: nothing changes', async () => {
    const [quarantined] = await server.query(`SELECT COUNT(*) AS n FROM ${tgt('migration_quarantine')}`);
    expect(num(quarantined ?? {}, 'n')).toBeGreaterThan(0);
    const before = await statuses();
    const run = await cli(['run', 'golive', '--json']);
    expect(run.code).toBe(1);
    expect(run.json.error).toBe('GoLiveRefused');
    expect(String(run.json.cause)).toContain('golive.accept.quarantined');
    expect(await statuses()).toEqual(before);
    expect(before).toEqual(['switched/saas']);
  }, 60_000);

  it('a failing health probe rolls go-live back: every tenant routed to legacy, the writes made meanwhile on legacy', async () => {
    writeConfig({ accept: { quarantined: true, conflicts: true } });
    appState.down = true;
    const run = await cli(['run', 'golive', '--json']);
    appState.down = false;
    expect(run.code).toBe(1);
    expect(run.json.error).toBe('HealthCheckFailed');
    expect(String(run.json.cause)).toContain('probe app');
    expect(await statuses()).toEqual(['rolled_back/legacy']);
    // The probe's request renamed an acme user on the multi-tenant side while go-live ran: the rollback's reverse
    // drain carried it to legacy before the route went back.
    expect(appState.writes).toBeGreaterThan(0);
    const [legacy] = await server.query(`SELECT nickname FROM ${src('user_users')} WHERE id = ?`, [acmeUser]);
    expect(str(legacy ?? {}, 'nickname')).toBe(`renamed during go-live ${appState.writes}`);
    const checks = await server.query(
      `SELECT name, passed FROM ${tgt('migration_health_checks')} WHERE run_id = (SELECT run_id FROM ${tgt('migration_runs')} WHERE phase = 'golive' ORDER BY started_at DESC LIMIT 1)`,
    );
    expect(checks.find((c) => c.name === 'probe app')?.passed).toBe(0);
    expect(checks.filter((c) => Number(c.passed) === 1).map((c) => str(c, 'name'))).toEqual(
      expect.arrayContaining([
        'database legacy',
        'database multi-tenant',
        'alarms quiet',
        'smoke own users acme',
      ]),
    );
    const [status] = await server.query(
      `SELECT status FROM ${tgt('migration_runs')} WHERE phase = 'golive' ORDER BY started_at DESC LIMIT 1`,
    );
    expect(str(status ?? {}, 'status')).toBe('rolled_back');
    // Sync runs again: legacy owns every tenant.
    expect((await cli(['run', 'sync'])).code).toBe(0);
  }, 240_000);

  it('a go-live that died in its own rollback (tenants paused) is finished by rollback, and go-live may start again', async () => {
    const dead = 'golive-20261201T000000Z-dead01';
    await server.execute(
      `INSERT INTO ${tgt('migration_runs')} (run_id, phase, status, started_at, execution_id) VALUES (?, 'golive', 'rolling_back', ?, ?)`,
      [dead, '2026-12-01 00:00:00.000', 'local:gone:1:x'],
    );
    await server.execute(
      `UPDATE ${tgt('traffic_routing')} SET target = 'paused' WHERE scope = 'tenant' AND tenant_bid = 'acme'`,
    );
    const back = await cli(['rollback', '--yes', '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(await statuses()).toEqual(['rolled_back/legacy']);
    const [run] = await server.query(`SELECT status FROM ${tgt('migration_runs')} WHERE run_id = ?`, [dead]);
    expect(str(run ?? {}, 'status')).toBe('rolled_back');
  }, 120_000);

  it('goes live: the remaining tenants switched, verified, healthy, archived, sync ended, the report written', async () => {
    // Refused first (quarantine not accepted) while every tenant is on legacy: refused before anything moved.
    writeConfig({});
    const refused = await cli(['run', 'golive', '--json']);
    expect(refused.code).toBe(1);
    expect(refused.json.error).toBe('GoLiveRefused');
    expect(await statuses()).toEqual(['rolled_back/legacy']);
    writeConfig({ accept: { quarantined: true, conflicts: true } });
    // The application keeps writing on the multi-tenant side all through go-live (about 40 updates a second).
    const ids = (
      await server.query(
        `SELECT id FROM ${tgt('user_users')} WHERE tenant_bid IN ('acme', 'globex') LIMIT 20`,
      )
    ).map((r) => num(r, 'id'));
    let writes = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        writes += 1;
        await saasDb.execute(
          'UPDATE user_users SET nickname = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?',
          [`live write ${writes}`, ids[writes % ids.length] ?? 0],
        );
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const run = await cli(['run', 'golive', '--json']);
    writing = false;
    await writer;
    expect(writes).toBeGreaterThan(20);
    expect(run.code, JSON.stringify(run.json)).toBe(0);
    expect(await statuses()).toEqual(['switched/saas']);
    // Global tables, and requests without a tenant of their own, follow the multi-tenant side from now on.
    const [global] = await server.query(
      `SELECT target FROM ${tgt('traffic_routing')} WHERE scope = 'global'`,
    );
    expect(str(global ?? {}, 'target')).toBe('saas');
    const archive = run.json.archive as { tables: number; rows: number; objects: number };
    expect(archive.tables).toBe(10);
    let legacyRows = 0;
    for (const t of await server.query(
      'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = ?',
      [source.name, 'BASE TABLE'],
    ))
      legacyRows += num((await server.query(`SELECT COUNT(*) AS n FROM ${src(str(t, 't'))}`))[0] ?? {}, 'n');
    expect(archive.rows).toBe(legacyRows);
    const report = (run.json.report as { html: string }).html;
    expect(existsSync(join(dir, 'archive', ...report.split('/')))).toBe(true);
    const html = readFileSync(join(dir, 'archive', ...report.split('/')), 'utf8');
    expect(html).toContain(String(run.json.runId));
    // Sync is over: a pass is refused, and so is a second go-live.
    const sync = await cli(['run', 'sync', '--json']);
    expect(sync.code).toBe(1);
    expect(String(sync.json.cause)).toContain('sync is stopped for good');
    const again = await cli(['run', 'golive', '--json']);
    expect(again.code).toBe(1);
    expect(String(again.json.cause)).toContain('is done already');
    expect(await statuses()).toEqual(['switched/saas']);
  }, 300_000);

  it('cleanup-legacy refuses without a verified archive; restore-archive proves it; a tampered object is named', async () => {
    writeConfig({
      accept: { quarantined: true, conflicts: true },
      archive: { partRows: 1_000, retentionDays: 0 },
    });
    const unverified = await cli(['cleanup-legacy', '--confirm', '--json']);
    expect(unverified.code).toBe(1);
    expect(unverified.json.outcome).toBe('REFUSED');
    expect(unverified.stderr).toContain('never restored and verified');
    expect(unverified.json.dropped).toEqual([]);

    // An altered object: restore-archive names it, exit 1, and records nothing verified.
    const objects = readdirSync(join(dir, 'archive', 'legacy-archive'), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.jsonl.gz'))
      .sort();
    const victim = join(dir, 'archive', 'legacy-archive', objects[0] ?? '');
    const original = readFileSync(victim);
    const altered = Buffer.from(original);
    altered[20] = (altered[20] ?? 0) ^ 0xff;
    writeFileSync(victim, altered);
    restored = await scratchDatabase('glvr');
    const tampered = await cli(['restore-archive', 'latest', '--into', restored.url.raw, '--json']);
    writeFileSync(victim, original);
    expect(tampered.code).toBe(1);
    expect(tampered.json.error).toBe('ArchiveTampered');
    expect(String(tampered.json.message)).toContain(objects[0]?.split('/').at(-1));
    await restored.drop();

    restored = await scratchDatabase('glvr');
    const restore = await cli(['restore-archive', 'latest', '--into', restored.url.raw, '--json']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json.outcome).toBe('VERIFIED');
    expect((restore.json.tables as { verified: boolean }[]).every((t) => t.verified)).toBe(true);

    // Verified, retention 0 days: without --confirm it only says what it would drop.
    const preview = await cli(['cleanup-legacy', '--json']);
    expect(preview.code).toBe(2);
    expect(preview.json.outcome).toBe('NOT_CONFIRMED');
    // Two legacy rows whose values were swapped after the archive (the XOR of row checksums cannot see it): the table
    // is read again, part by part, against the archived lines, and kept.
    const pair = await server.query(
      `SELECT id, user_state, updated_at FROM ${src('user_users')} WHERE user_state IN (0, 1) ORDER BY user_state, id`,
    );
    const a = pair.find((r) => Number(r.user_state) === 0);
    const b = pair.find((r) => Number(r.user_state) === 1);
    if (a === undefined || b === undefined) throw new Error('no two users of different states');
    const swap = async (x: typeof a, y: typeof a) => {
      await server.execute(`UPDATE ${src('user_users')} SET user_state = ?, updated_at = ? WHERE id = ?`, [
        y.user_state ?? 0,
        x.updated_at ?? null,
        x.id ?? 0,
      ]);
    };
    await swap(a, b);
    await swap(b, a);
    const swapped = await cli(['cleanup-legacy', '--json']);
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toMatch(/KEEP user_users +it changed since it was archived/);
    await swap(a, a);
    await swap(b, b);
    // A legacy row written after the archive: dropping would lose it, so that table is kept and nothing dropped.
    const [row] = await server.query(
      `SELECT id, remark, updated_at FROM ${src('sys_configs')} ORDER BY id LIMIT 1`,
    );
    await server.execute(`UPDATE ${src('sys_configs')} SET remark = 'written after go-live' WHERE id = ?`, [
      num(row ?? {}, 'id'),
    ]);
    const changed = await cli(['cleanup-legacy', '--confirm', '--json']);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/KEEP sys_configs +it changed since it was archived/);
    const legacyTables = async () =>
      num(
        (
          await server.query('SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ?', [
            source.name,
          ])
        )[0] ?? {},
        'n',
      );
    expect(await legacyTables()).toBe(10);
    // As archived again (its ON UPDATE column too): every table is dropped, and recorded.
    await server.execute(`UPDATE ${src('sys_configs')} SET remark = ?, updated_at = ? WHERE id = ?`, [
      row?.remark ?? '',
      row?.updated_at ?? null,
      num(row ?? {}, 'id'),
    ]);
    const dropped = await cli(['cleanup-legacy', '--confirm', '--json']);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect((dropped.json.dropped as string[]).length).toBe(10);
    expect(await legacyTables()).toBe(0);
    const [recorded] = await server.query(
      `SELECT COUNT(*) AS n FROM ${tgt('migration_archives')} WHERE dropped_at IS NOT NULL`,
    );
    expect(num(recorded ?? {}, 'n')).toBe(10);
  }, 240_000);
});
