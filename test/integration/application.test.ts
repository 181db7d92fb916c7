import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncDue } from '../../lambdas/application/application.ts';
import { checkGates } from '../../lambdas/application/gates.ts';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, str } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { type HealthStandIn, startHealthStandIn } from '../../local/demo/health.ts';
import { checkJournal } from '../../local/demo/journal.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { simulateTraffic } from '../../local/demo/traffic.ts';
import { openDeps } from '../../local/run-phase.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const target = `smt_app_t_${process.pid}`;
let dir: string;
let legacyApi: HealthStandIn;
let saasApi: HealthStandIn;
let legacyDb: SqlClient;
let saasDb: SqlClient;

const tgt = (table: string) => qualified(target, table);
const cli = (args: string[]) => runCli(args, { cwd: dir });

async function statuses(): Promise<Record<string, string>> {
  const rows = await server.query(
    `SELECT s.tenant_bid, s.status, COALESCE(r.target, 'legacy') AS route FROM ${tgt('tenant_migration_status')} s
       LEFT JOIN ${tgt('traffic_routing')} r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid ORDER BY s.tenant_bid`,
  );
  return Object.fromEntries(
    rows.map((r) => [str(r, 'tenant_bid'), `${str(r, 'status')}/${str(r, 'route')}`]),
  );
}

async function routeChanges(): Promise<number> {
  const [row] = await server.query(`SELECT COUNT(*) AS n FROM ${tgt('traffic_routing_history')}`);
  return num(row ?? {}, 'n');
}

beforeAll(async () => {
  source = await scratchDatabase('app');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 150, reset: false });
  legacyDb = openSql(source.url, { label: 'source' });
  saasDb = openSql(mysqlUrl(target), { label: 'target' });
  legacyApi = await startHealthStandIn('legacy', legacyDb);
  saasApi = await startHealthStandIn('saas', saasDb);
  dir = mkdtempSync(join(tmpdir(), 'smt-app-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 300, maxConcurrency: 2, copyPath: 'client', recheckDelaySeconds: 0.2 },
      sync: { overlapSeconds: 5 },
      application: {
        waves: [['globex'], ['acme']],
        bakeMinutes: 1,
        maxLagSeconds: 30,
        // One server holds both databases here: the routed simulator sets each side's id series on its sessions.
        idSeries: 'sessions',
        settleSeconds: 1.5,
        probes: [
          { name: 'legacy api', url: legacyApi.url, bodyIncludes: '"status":"ok"' },
          { name: 'saas api', url: saasApi.url, bodyIncludes: '"status":"ok"' },
        ],
      },
    }),
  );
  for (const phase of ['foundation', 'data', 'sync']) expect((await cli(['run', phase])).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await legacyApi?.close();
  await saasApi?.close();
  await legacyDb?.close();
  await saasDb?.close();
  await server.execute(`DROP DATABASE IF EXISTS \`${target}\``);
  await server?.close();
  await source?.drop();
});

describe('application phase', () => {
  it('stops a wave at a closed gate before any route changes: a probe down, sync lag over the bound, an alarm', async () => {
    const before = await statuses();
    const changes = await routeChanges();

    saasApi.setDown(true);
    const down = await cli(['run', 'application', '--json']);
    saasApi.setDown(false);
    expect(down.code).toBe(1);
    expect(down.json.error).toBe('GateClosed');
    expect(String(down.json.cause)).toContain('probe saas api');
    expect(String(down.json.cause)).toContain('answered 503');
    expect(await statuses()).toEqual(before);
    expect(await routeChanges()).toBe(changes);

    // The last pass left a table further behind than application.maxLagSeconds.
    await server.execute(
      `UPDATE ${tgt('migration_sync_passes')} SET lag_seconds = 400 WHERE run_id = (SELECT run_id FROM ${tgt('migration_runs')} WHERE phase = 'sync' ORDER BY started_at DESC LIMIT 1) AND table_name = 'order_orders'`,
    );
    const lagging = await cli(['run', 'application', '--json']);
    expect(lagging.code).toBe(1);
    expect(String(lagging.json.cause)).toContain('order_orders 400 s');
    expect(await statuses()).toEqual(before);
    expect(await routeChanges()).toBe(changes);
    expect((await cli(['run', 'sync'])).code).toBe(0);

    // A local alarm raised (as `alarm raise` leaves it): the phase does not start, no route changes.
    await server.execute(
      `INSERT INTO ${tgt('migration_alarms')} (name, state, reason, changed_at) VALUES ('api-5xx', 'ALARM', 'test', NOW(3))`,
    );
    const alarmed = await cli(['run', 'application', '--json']);
    await server.execute(`DELETE FROM ${tgt('migration_alarms')} WHERE name = 'api-5xx'`);
    expect(alarmed.code).not.toBe(0);
    expect(alarmed.stderr).toContain('api-5xx');
    expect(await statuses()).toEqual(before);
    expect(await routeChanges()).toBe(changes);
    // An alarm in ALARM closes the gate (CloudWatch's on AWS: the function sees it where the CLI cannot).
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      cwd: dir,
      defaults: demoConfig,
    });
    const deps = openDeps(loaded, dir);
    try {
      const firing = {
        ...deps,
        signal: new AbortController().signal,
        alarms: { firing: async () => [{ name: 'api-5xx', reason: 'error rate' }] },
      };
      const gates = await checkGates(firing, 'switch');
      expect(gates.find((g) => g.name === 'alarms')).toEqual({
        name: 'alarms',
        open: false,
        detail: 'in ALARM: api-5xx',
      });
      expect(gates.filter((g) => g.name !== 'alarms').every((g) => g.open)).toBe(true);
      // Ids: checked on the servers by default; two databases of one server cannot keep their series apart.
      const servers = {
        ...firing,
        alarms: { firing: async () => [] },
        config: { ...deps.config, application: { ...deps.config.application, idSeries: 'servers' as const } },
      };
      const ids = (await checkGates(servers, 'switch')).find((g) => g.name === 'id series');
      expect(ids?.open).toBe(false);
      expect(ids?.detail).toContain('both databases are on one server');
      expect(ids?.detail).toContain('auto_increment_increment = 2');
      // While a wave bakes the phase runs a pass itself once sync.every (5m) has passed since the last one began.
      expect(await syncDue(firing)).toBe(false);
      await server.execute(
        `UPDATE ${tgt('migration_runs')} SET started_at = started_at - INTERVAL 6 MINUTE WHERE phase = 'sync'`,
      );
      expect(await syncDue(firing)).toBe(true);
    } finally {
      await deps.close();
    }
  }, 120_000);

  it('switches wave by wave under live traffic, and a tenant rolled back after writes on both sides loses none of them', async () => {
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      cwd: dir,
      defaults: demoConfig,
    });
    // The application's two sides, one connection each (each side's id series is a session setting).
    const legacy = openSql(source.url, { label: 'source', connectionLimit: 1 });
    const saas = openSql(mysqlUrl(target), { label: 'target', connectionLimit: 1 });
    const stop = new AbortController();
    const traffic = simulateTraffic(legacy, {
      rate: 60,
      seed: 3,
      signal: stop.signal,
      routing: { target: saas, config: loaded.config },
    });
    try {
      const run = await cli(['run', 'application', '--json']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json.saas).toEqual(['acme', 'globex']);
      expect(await statuses()).toMatchObject({ acme: 'switched/saas', globex: 'switched/saas' });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const back = await cli(['rollback', '--tenant', 'acme', '--yes', '--json']);
      expect(back.code, back.stderr).toBe(0);
      expect(back.json.tenants).toEqual(['acme']);
      expect(await statuses()).toMatchObject({ acme: 'rolled_back/legacy', globex: 'switched/saas' });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    } finally {
      stop.abort();
    }
    const wrote = await traffic;
    await legacy.close();
    await saas.close();
    expect(wrote.sides.saas).toBeGreaterThan(0);
    expect(wrote.sides.legacy).toBeGreaterThan(0);
    // Both directions once more, then every write the simulator made is where its tenant's owner keeps it.
    expect((await cli(['run', 'sync'])).code).toBe(0);
    const checked = await checkJournal(
      wrote.journal,
      {
        legacy: server,
        legacyDb: source.name,
        target: server,
        targetDb: target,
      },
      loaded.config,
    );
    expect(checked.lost).toEqual([]);
    expect(checked.kept).toBe(checked.rows);
    expect(checked.rows).toBeGreaterThan(50);
    const verify = await cli(['verify']);
    expect(verify.code, verify.stderr).toBe(0);
  }, 240_000);

  it('recovers from a kill -9 during a wave’s drain at the next run, leaving no tenant paused', async () => {
    // acme was rolled back above: the next run switches it (wave 2); the process dies in its drain.
    const child = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'bin', 'shifu-migrate.mjs'), 'run', 'application'],
      { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const draining = async () =>
      num(
        (
          await server.query(
            `SELECT COUNT(*) AS n FROM ${tgt('migration_runs')} WHERE parent_run_id IS NOT NULL AND status = 'running'`,
          )
        )[0] ?? {},
        'n',
      ) > 0;
    const deadline = Date.now() + 60_000;
    while (!(await draining()) && Date.now() < deadline) await sleep(10);
    child.kill('SIGKILL');
    await exited;
    expect((await statuses()).acme).toBe('rolled_back/paused');
    const [killed] = await server.query(
      `SELECT run_id FROM ${tgt('migration_runs')} WHERE parent_run_id IS NOT NULL ORDER BY started_at DESC LIMIT 1`,
    );
    // A scheduled pass meanwhile never resumes the dead drain (it began before nothing in particular): it starts
    // afresh, and the dead one is closed.
    const pass = await cli(['run', 'sync', '--json']);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.json.runId).not.toBe(killed?.run_id);
    expect(pass.stderr).not.toContain('Resuming');
    const again = await cli(['run', 'application', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await statuses()).toMatchObject({ acme: 'switched/saas', globex: 'switched/saas' });
    const status = await cli(['status']);
    expect((status.json.tenants as { route: string }[]).some((t) => t.route === 'paused')).toBe(false);
    // The run the kill left is closed, not left "interrupted, run it again to resume".
    const open = await server.query(
      `SELECT run_id FROM ${tgt('migration_runs')} WHERE phase = 'application' AND status IN ('running', 'interrupted')`,
    );
    expect(open).toEqual([]);
  }, 180_000);

  it('keeps the writes of requests in flight at a pause (settleSeconds), switching and rolling back', async () => {
    const [user] = await server.query(
      `SELECT user_bid, shifu_bid, outline_bid FROM ${tgt('study_records')} WHERE tenant_bid = 'acme' LIMIT 1`,
    );
    const values = [
      str(user ?? {}, 'user_bid'),
      str(user ?? {}, 'shifu_bid'),
      str(user ?? {}, 'outline_bid'),
    ];
    const waitFor = async (route: string) => {
      const deadline = Date.now() + 60_000;
      while (!(await statuses()).acme?.endsWith(`/${route}`) && Date.now() < deadline) await sleep(10);
    };
    /** Writes that read the route just before the pause commit over the next second. */
    const late = (db: string, tag: string, withTenant: boolean) =>
      Promise.all(
        [0, 300, 700, 1_100].map(async (ms, i) => {
          await sleep(ms);
          await server.execute(
            `INSERT INTO ${qualified(db, 'study_records')} (record_bid, user_bid, shifu_bid, outline_bid, record_type, content${withTenant ? ', tenant_bid' : ''}) VALUES (?, ?, ?, ?, 1, 'late'${withTenant ? ", 'acme'" : ''})`,
            [`${tag}-${i}`, ...values],
          );
        }),
      );
    const both = async (tag: string) => {
      const count = async (db: string) =>
        num(
          (
            await server.query(
              `SELECT COUNT(*) AS n FROM ${qualified(db, 'study_records')} WHERE record_bid LIKE ?`,
              [`${tag}-%`],
            )
          )[0] ?? {},
          'n',
        );
      return [await count(source.name), await count(target)];
    };
    // Rolling acme back: its last writes on the multi-tenant side, in flight at the pause, reach legacy.
    const back = cli(['rollback', '--tenant', 'acme', '--yes']);
    await waitFor('paused');
    await late(target, 'late-back', true);
    expect((await back).code).toBe(0);
    expect((await statuses()).acme).toBe('rolled_back/legacy');
    expect((await cli(['run', 'sync'])).code).toBe(0);
    expect(await both('late-back')).toEqual([4, 4]);
    // Switching it again: its last writes on legacy reach the multi-tenant side.
    const run = cli(['run', 'application']);
    await waitFor('paused');
    await late(source.name, 'late-on', false);
    expect((await run).code).toBe(0);
    expect((await statuses()).acme).toBe('switched/saas');
    expect((await cli(['run', 'sync'])).code).toBe(0);
    expect(await both('late-on')).toEqual([4, 4]);
  }, 180_000);

  it('refuses a rollback of data while tenants are switched: nothing stopped, locked or removed', async () => {
    const [before] = await server.query(`SELECT COUNT(*) AS n FROM ${tgt('order_orders')}`);
    const refused = await cli(['rollback', '--phase', 'data', '--yes', '--json']);
    expect(refused.code).toBe(1);
    expect(refused.json.error).toBe('TenantsSwitched');
    expect(refused.stderr).toContain('rollback --phase application');
    expect(await server.query(`SELECT * FROM ${tgt('migration_lock')}`)).toEqual([]);
    const [after] = await server.query(`SELECT COUNT(*) AS n FROM ${tgt('order_orders')}`);
    expect(after).toEqual(before);
    const [run] = await server.query(
      `SELECT status FROM ${tgt('migration_runs')} WHERE phase = 'rollback' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    expect(run?.status).toBe('refused');
    const data = await cli(['run', 'data', '--json']);
    expect(data.code).toBe(1);
    expect(data.json.error).toBe('TenantsSwitched');
  }, 60_000);

  it('a key both sides wrote for different tenants (their id series met) is a conflict, never an overwrite', async () => {
    const [top] = await server.query(
      `SELECT GREATEST((SELECT MAX(id) FROM ${qualified(source.name, 'order_orders')}), (SELECT MAX(id) FROM ${tgt('order_orders')})) + 100 AS id`,
    );
    const id = num(top ?? {}, 'id');
    const [globexUser] = await server.query(
      `SELECT user_bid FROM ${tgt('user_users')} WHERE tenant_bid = 'globex' LIMIT 1`,
    );
    const [initechUser] = await server.query(
      `SELECT user_bid FROM ${tgt('user_users')} WHERE tenant_bid = 'initech' LIMIT 1`,
    );
    await server.execute(
      `INSERT INTO ${tgt('order_orders')} (id, order_bid, user_bid, shifu_bid, payable_price, tenant_bid) VALUES (?, 'collide-saas', ?, 'x', 1.00, 'globex')`,
      [id, str(globexUser ?? {}, 'user_bid')],
    );
    await server.execute(
      `INSERT INTO ${qualified(source.name, 'order_orders')} (id, order_bid, user_bid, shifu_bid, payable_price) VALUES (?, 'collide-legacy', ?, 'x', 2.00)`,
      [id, str(initechUser ?? {}, 'user_bid')],
    );
    const pass = await cli(['run', 'sync']);
    expect(pass.code, pass.stderr).toBe(0);
    const [legacyRow] = await server.query(
      `SELECT order_bid FROM ${qualified(source.name, 'order_orders')} WHERE id = ?`,
      [id],
    );
    const [saasRow] = await server.query(
      `SELECT order_bid, tenant_bid FROM ${tgt('order_orders')} WHERE id = ?`,
      [id],
    );
    expect(str(legacyRow ?? {}, 'order_bid')).toBe('collide-legacy');
    expect(str(saasRow ?? {}, 'order_bid')).toBe('collide-saas');
    const [conflict] = await server.query(
      `SELECT target_tenant, source_tenant FROM ${tgt('migration_sync_conflicts')} WHERE table_name = 'order_orders' AND row_key = ? AND resolved_at IS NULL`,
      [`[${id}]`],
    );
    expect(conflict).toMatchObject({ target_tenant: 'globex', source_tenant: 'initech' });
  }, 120_000);

  it('finishes a rollback that died before it paused anything as it was asked, whatever ran in between', async () => {
    expect(await statuses()).toMatchObject({ acme: 'switched/saas', globex: 'switched/saas' });
    // `rollback --phase application` whose process died right after it took the lock: its run, its request, and a
    // lock whose process is gone.
    const dead = 'rollback-20261201T000000Z-dead01';
    await server.execute(
      `INSERT INTO ${tgt('migration_runs')} (run_id, phase, status, started_at, execution_id, request) VALUES (?, 'rollback', 'running', NOW(3), 'local:${hostname()}:999999:dead', '{"phase":"application","scope":"phase","tenant":null}')`,
      [dead],
    );
    await server.execute(
      `INSERT INTO ${tgt('migration_lock')} (name, run_id, phase, kind, owner, acquired_at, heartbeat_at) VALUES ('target', ?, 'application', 'rollback', 'local:${hostname()}:999999:dead', NOW(3), NOW(3))`,
      [dead],
    );
    // A scheduled pass takes the stale lock over meanwhile.
    expect((await cli(['run', 'sync'])).code).toBe(0);
    // Another rollback named meanwhile would forget it: refused, naming it.
    const other = await cli(['rollback', '--tenant', 'globex', '--yes', '--json']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`rollback ${dead} (--phase application) died before it finished`);
    expect(await statuses()).toMatchObject({ acme: 'switched/saas', globex: 'switched/saas' });
    // `rollback` finishes it: every switched tenant back, the dead run closed.
    const finish = await cli(['rollback', '--yes', '--json']);
    expect(finish.code, finish.stderr).toBe(0);
    expect(finish.json.tenants).toEqual(['acme', 'globex']);
    expect(await statuses()).toMatchObject({ acme: 'rolled_back/legacy', globex: 'rolled_back/legacy' });
    const [closed] = await server.query(`SELECT status FROM ${tgt('migration_runs')} WHERE run_id = ?`, [
      dead,
    ]);
    expect(closed?.status).toBe('failed');
  }, 120_000);
});
