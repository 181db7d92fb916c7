import { tenantStates } from '../../lambdas/application/router.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { describeHolder, readLock } from '../../lambdas/core/ledger/lock.ts';
import { findRuns, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { num, scalarNumber, str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import { pausedNow } from '../../lambdas/core/throttle.ts';
import { verifyTarget } from '../../lambdas/data/verify.ts';
import { tablePass } from '../../lambdas/sync/finish.ts';
import { openDeps } from '../run-phase.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';
import { raisedAlarms } from './preflight.ts';

/** `verify`: read-only integrity and tenant isolation; exit 1 when anything differs. */
export async function runVerifyCommand(
  loaded: LoadedConfig,
  out: Output,
  cwd: string,
  /** Inside another command (the demo): its lines are that command's log, its result is that command's. */
  asLog = false,
): Promise<PhaseOutcome> {
  const show = (o: Output, line: string) => (asLog ? o.info(line) : showResult(o, line));
  const deps = openDeps(loaded, cwd);
  try {
    const result = await verifyTarget({ ...deps, signal: new AbortController().signal });
    if (result.runId === null) {
      show(out, 'No data run to verify: run the data phase first.');
      return { code: 1, json: { status: 'NO_DATA', differences: 0, tables: [] } };
    }
    show(
      out,
      `Verifying ${loaded.targetUrl.database} against ${loaded.sourceUrl.database} (data run ${result.runId})`,
    );
    show(
      out,
      `  ${'table'.padEnd(24)} ${'source'.padStart(10)} ${'target'.padStart(10)} ${'quarant.'.padStart(8)} ${'conflict'.padStart(8)}  chunks    checksum  isolation`,
    );
    for (const t of result.tables) {
      const isolation =
        t.isolation === null
          ? 'global'
          : t.isolation.unknownTenant + t.isolation.ruleMismatch + t.isolation.parentMismatch === 0
            ? 'ok'
            : 'BROKEN';
      show(
        out,
        `  ${t.table.padEnd(24)} ${count(t.sourceRows).padStart(10)} ${count(t.targetRows).padStart(10)} ${count(t.quarantined).padStart(8)} ${count(t.conflicts).padStart(8)}  ${`${t.chunks.validated}/${t.chunks.total}`.padEnd(8)}  ${(t.checksum.equal ? 'equal' : 'DIFFERS').padEnd(8)}  ${isolation}`,
      );
    }
    show(out, result.differences === 0 ? 'No differences.' : `${result.differences} differences.`);
    const conflicts = result.tables.reduce((n, t) => n + t.conflicts, 0);
    if (conflicts > 0)
      show(
        out,
        `${count(conflicts)} rows are in an open tenant conflict (the rules now give them another tenant; sync left them as the target has them): compared on neither side, listed by npx shifu-migrate status.`,
      );
    return {
      code: result.differences === 0 ? 0 : 1,
      json: { status: result.differences === 0 ? 'OK' : 'DIFFERENCES', ...result },
    };
  } finally {
    await deps.close();
  }
}

/** Target tables' rows, read from the tables: exact below this estimate, else the server's estimate, labelled. */
const EXACT_COUNT_BELOW = 5_000_000;

/**
 * `status`: what the ledger says, per phase and per table, and who holds the run lock. A run whose owner stopped
 * without ending it (killed, machine lost) shows as stopped with the way on; row counts are read from the tables
 * themselves (the ledger's figures are labelled as such).
 */
export async function runStatusCommand(
  loaded: LoadedConfig,
  out: Output,
  cwd: string,
  tenant?: string,
): Promise<PhaseOutcome> {
  const show = showResult;
  const deps = openDeps(loaded, cwd);
  try {
    if (tenant !== undefined) return await tenantReport(deps, loaded, out, tenant);
    if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_runs'))) {
      show(out, `No ledger in ${loaded.targetUrl.database} yet: nothing has run (run foundation first).`);
      return { code: 0, json: { status: 'EMPTY', runs: [], tables: [], lock: null } };
    }
    const lock = (await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_lock'))
      ? await readLock(deps.target)
      : null;
    const records = await findRuns(deps.target, '1 = 1', [], 20);
    // Sync passes another run started (drains): never resumed; their parent says what to do.
    const drains = new Map(
      (
        await deps.target.query(
          'SELECT run_id, parent_run_id FROM migration_runs WHERE parent_run_id IS NOT NULL ORDER BY started_at DESC LIMIT 100',
        )
      ).map((r) => [str(r, 'run_id'), str(r, 'parent_run_id')]),
    );
    const runs = records.map((r) => {
      const held = lock?.runId === r.runId ? lock : null;
      const live = r.status === 'running' || r.status === 'stopping' || r.status === 'rolling_back';
      const resume =
        r.phase === 'rollback'
          ? 'finish it: npx shifu-migrate rollback'
          : r.phase === 'sync' && drains.has(r.runId)
            ? `a drain of ${drains.get(r.runId)}: never resumed (the next pass closes it and starts afresh); see that run`
            : r.phase === 'sync'
              ? 'the next pass resumes it (npx shifu-migrate run sync); nothing to roll back'
              : r.phase === 'application'
                ? 'run application again (it switches again a wave that had not baked), or roll the wave back (npx shifu-migrate rollback)'
                : `run it again to resume (npx shifu-migrate run ${r.phase}), or roll it back (npx shifu-migrate rollback)`;
      const state =
        live && (held === null || held.stale !== null)
          ? `stopped (${held?.stale ?? 'no lock held'}): ${r.status === 'running' ? resume : 'finish its rollback: npx shifu-migrate rollback'}`
          : r.status === 'interrupted'
            ? r.phase === 'rollback'
              ? `interrupted before it finished (what it removed stays removed): ${resume}`
              : `interrupted, nothing undone: ${resume}`
            : r.status === 'rollback_failed'
              ? 'its rollback stopped half-way: fix the cause, then npx shifu-migrate rollback'
              : null;
      return {
        runId: r.runId,
        phase: r.phase,
        status: r.status,
        state,
        startedAt: r.startedAt,
        finishedAt: r.finishedAt,
        error: r.error?.name ?? null,
        message: r.error?.message ?? null,
        moreErrors: r.moreErrors,
      };
    });
    const progress = await deps.target.query(
      `SELECT p.table_name, p.phase, p.status, p.records_migrated,
              (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name) AS chunks,
              (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name AND c.status = 'validated') AS validated,
              (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name AND c.status = 'changing') AS changing,
              (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name AND c.status = 'mismatch') AS failed,
              (SELECT COUNT(*) FROM migration_quarantine q WHERE q.table_name = p.table_name) AS quarantined
         FROM migration_progress p ORDER BY p.phase, p.table_name`,
    );
    const estimates = new Map(
      (
        await deps.targetServer.query(
          'SELECT TABLE_NAME AS t, COALESCE(TABLE_ROWS, 0) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
          [loaded.targetUrl.database],
        )
      ).map((r) => [str(r, 't'), num(r, 'n')]),
    );
    const tables = [];
    for (const r of progress) {
      const table = str(r, 'table_name');
      const estimate = estimates.get(table);
      let rows: { count: number | null; exact: boolean };
      if (estimate === undefined) rows = { count: null, exact: true };
      else if (estimate >= EXACT_COUNT_BELOW) rows = { count: estimate, exact: false };
      else
        rows = {
          count: scalarNumber(
            await deps.target.query(
              `SELECT COUNT(*) AS n FROM ${qualified(loaded.targetUrl.database, table)}`,
            ),
          ),
          exact: true,
        };
      tables.push({
        table,
        phase: str(r, 'phase'),
        status: str(r, 'status'),
        /** Rows in the target table now (null: the table is missing). */
        rows: rows.count,
        rowsExact: rows.exact,
        /** What the ledger recorded the phase validated. */
        ledgerRows: num(r, 'records_migrated'),
        chunks: {
          total: num(r, 'chunks'),
          validated: num(r, 'validated'),
          changing: num(r, 'changing'),
          failed: num(r, 'failed'),
        },
        quarantined: num(r, 'quarantined'),
      });
    }
    const alarms = await raisedAlarms(deps, loaded.targetUrl.database);
    for (const alarm of alarms) {
      show(
        out,
        `Alarm ${JSON.stringify(alarm.name)} is raised since ${alarm.changedAt} UTC${alarm.reason === '' ? '' : `: ${alarm.reason}`} (no phase starts until: alarm clear)`,
      );
    }
    show(
      out,
      lock === null
        ? 'Run lock: free.'
        : lock.stale === null
          ? `Run lock: held by ${describeHolder(lock)}.`
          : `Run lock: left by ${describeHolder(lock)}, stale (${lock.stale}): the next start takes it over.`,
    );
    const paused = await pausedNow(deps);
    if (paused !== null)
      show(
        out,
        `PAUSED since ${paused.since} UTC${paused.reason === '' ? '' : ` (${paused.reason})`}: no new chunk starts (npx shifu-migrate resume).`,
      );
    show(out, `Runs (newest first) in ${loaded.targetUrl.database}:`);
    for (const run of runs) {
      show(
        out,
        `  ${run.runId.padEnd(42)} ${run.status.padEnd(15)} ${run.startedAt}${run.error === null ? '' : `  ${run.error}: ${run.message ?? ''}`}`,
      );
      if (run.state !== null) show(out, `      ${run.state}`);
      for (const more of run.moreErrors) show(out, `      then ${more}`);
    }
    show(
      out,
      'Tables (rows: counted in the target table now; ~ an estimate; ledger: what the phase recorded):',
    );
    for (const t of tables) {
      const now = t.rows === null ? 'missing' : `${t.rowsExact ? '' : '~'}${count(t.rows)}`;
      show(
        out,
        `  ${t.phase.padEnd(10)} ${t.table.padEnd(24)} ${t.status.padEnd(12)} ${now.padStart(10)} rows (ledger ${count(t.ledgerRows)})  chunks ${t.chunks.validated}/${t.chunks.total}${t.chunks.changing > 0 ? ` (${t.chunks.changing} changing)` : ''}${t.chunks.failed > 0 ? ` (${t.chunks.failed} failed)` : ''}  quarantined ${count(t.quarantined)}`,
      );
    }
    const sync = await syncStatus(deps, loaded);
    if (sync !== null) {
      show(
        out,
        `Sync (last pass per table; lag bound sync.maxLagSeconds ${loaded.config.sync.maxLagSeconds} s):`,
      );
      for (const t of sync.tables)
        show(
          out,
          `  ${t.table.padEnd(24)} lag ${t.lagSeconds === null ? 'unknown' : `${t.lagSeconds} s`}${t.overBound ? ' (OVER BOUND)' : ''}  ${t.changeColumn === null ? 'reconcile only' : `by ${t.changeColumn}`}  last pass ${t.lastPassAt ?? 'never'}: ${count(t.rowsApplied)} written, ${count(t.rowsDeleted)} deleted, ${t.chunksRepaired}/${t.chunksChecked} chunks repaired${t.reverseLagSeconds !== null || t.reverseApplied + t.reverseDeleted > 0 ? `; to legacy ${count(t.reverseApplied)} written, ${count(t.reverseDeleted)} deleted, reverse lag ${t.reverseLagSeconds === null ? 'unknown' : `${t.reverseLagSeconds} s`}` : ''}`,
        );
      if (sync.openConflicts > 0) {
        show(
          out,
          `Tenant conflicts open: ${count(sync.openConflicts)} (rows the rules now give another tenant, left as the target has them):`,
        );
        for (const c of sync.conflicts)
          show(
            out,
            `  ${c.table} ${c.rowKey}: target ${c.targetTenant}, rules now ${c.sourceTenant ?? 'no tenant'} (since ${c.firstSeenAt})`,
          );
        if (sync.openConflicts > sync.conflicts.length)
          show(
            out,
            `  … and ${count(sync.openConflicts - sync.conflicts.length)} more: SELECT * FROM migration_sync_conflicts WHERE resolved_at IS NULL`,
          );
      }
    }
    const tenants = await tenantStatus(deps, loaded);
    if (tenants.length > 0) {
      show(out, 'Tenants (who owns their writes, where their requests go):');
      for (const t of tenants)
        show(
          out,
          `  ${t.tenant.padEnd(12)} ${t.status.padEnd(12)} route ${t.route.padEnd(7)}${t.route === 'paused' ? ' (WRITES HELD: finish with npx shifu-migrate rollback)' : ''}${t.status === 'switched' ? `  switched ${t.switchedAt ?? ''} by ${t.runId ?? '?'}${t.baked ? ', baked' : ', NOT BAKED (run application again, or roll it back)'}` : ''}`,
        );
    }
    const golive = await goLiveStatus(deps, loaded);
    if (golive !== null) {
      show(
        out,
        `Go-live: ${golive.runId} succeeded ${golive.finishedAt ?? ''} UTC; sync is stopped (passes refused).`,
      );
      show(
        out,
        `  archive legacy-archive/${golive.runId}/: ${golive.tables} tables, ${count(golive.rows)} rows, ${(golive.bytes / 1_048_576).toFixed(1)} MiB; restores verified for ${golive.verified} of ${golive.tables} tables${golive.dropped > 0 ? `; legacy tables dropped: ${golive.dropped}` : ''}`,
      );
      show(
        out,
        golive.dropped > 0
          ? '  legacy dropped by cleanup-legacy: the archive is its only copy'
          : golive.verified < golive.tables
            ? '  next: npx shifu-migrate restore-archive latest --into <scratch database>, then cleanup-legacy after golive.archive.retentionDays'
            : '  next: npx shifu-migrate cleanup-legacy (after golive.archive.retentionDays)',
      );
    }
    return { code: 0, json: { status: 'OK', alarms, lock, paused, runs, tables, sync, tenants, golive } };
  } finally {
    await deps.close();
  }
}

/** The report status and verify print: their result, on stdout (on stderr with --json, whose stdout is the object). */
function showResult(out: Output, line: string): void {
  if (out.json) out.info(line);
  else out.result(line);
}

/**
 * `status --tenant X`: one tenant: who owns its writes and where its requests go, its rows per table on the target,
 * its open tenant conflicts, its identity providers and its subscription.
 */
async function tenantReport(
  deps: ReturnType<typeof openDeps>,
  loaded: LoadedConfig,
  out: Output,
  tenant: string,
): Promise<PhaseOutcome> {
  const db = loaded.targetUrl.database;
  const has = (table: string) => targetHasTable(deps.targetServer, db, table);
  const state = (await tenantStatus(deps, loaded)).find((t) => t.tenant === tenant) ?? null;
  const tables: { table: string; rows: number }[] = [];
  for (const [table, rules] of Object.entries(loaded.config.tables)) {
    if (rules.tenant === undefined || !(await has(table))) continue;
    const [row] = await deps.target.query(
      `SELECT COUNT(*) AS n FROM ${qualified(db, table)} WHERE tenant_bid = ?`,
      [tenant],
    );
    tables.push({ table, rows: row === undefined ? 0 : num(row, 'n') });
  }
  const conflicts = (await has('migration_sync_conflicts'))
    ? num(
        (
          await deps.target.query(
            'SELECT COUNT(*) AS n FROM migration_sync_conflicts WHERE resolved_at IS NULL AND (target_tenant = ? OR source_tenant = ?)',
            [tenant, tenant],
          )
        )[0] ?? {},
        'n',
      )
    : 0;
  const providers = (await has('tenant_oauth_providers'))
    ? (
        await deps.target.query(
          'SELECT provider, client_id, client_secret_ref FROM tenant_oauth_providers WHERE tenant_bid = ? ORDER BY provider',
          [tenant],
        )
      ).map((r) => ({
        provider: str(r, 'provider'),
        clientId: str(r, 'client_id'),
        secret: str(r, 'client_secret_ref'),
      }))
    : [];
  const [subscription] = (await has('tenant_subscriptions'))
    ? await deps.target.query(
        `SELECT s.plan_bid, p.name, CAST(p.price AS CHAR) AS price, p.currency, p.period FROM tenant_subscriptions s
           LEFT JOIN tenant_subscription_plans p ON p.plan_bid = s.plan_bid WHERE s.tenant_bid = ? AND s.status = 'active'`,
        [tenant],
      )
    : [];
  showResult(
    out,
    `Tenant ${tenant}: ${state === null ? 'not on the target yet (run foundation)' : `${state.status}, writes owned by ${state.owner}, route ${state.route}${state.status === 'switched' ? ` (switched ${state.switchedAt ?? ''} by ${state.runId ?? '?'}${state.baked ? ', baked' : ', not baked'})` : ''}`}`,
  );
  for (const t of tables) showResult(out, `  ${t.table.padEnd(24)} ${count(t.rows).padStart(10)} rows`);
  showResult(out, `  open tenant conflicts: ${count(conflicts)}`);
  showResult(
    out,
    `  identity providers: ${providers.length === 0 ? 'none' : providers.map((p) => `${p.provider} (${p.clientId}, secret ${p.secret})`).join(', ')}`,
  );
  showResult(
    out,
    `  subscription: ${subscription === undefined ? 'none' : `${str(subscription, 'name')} ${str(subscription, 'price')} ${str(subscription, 'currency')}/${str(subscription, 'period')} (${str(subscription, 'plan_bid')})`}`,
  );
  return {
    code: 0,
    json: {
      status: 'OK',
      tenant: {
        tenant,
        state,
        tables,
        openConflicts: conflicts,
        providers,
        subscription:
          subscription === undefined
            ? null
            : {
                plan: str(subscription, 'plan_bid'),
                name: str(subscription, 'name'),
                price: str(subscription, 'price'),
                currency: str(subscription, 'currency'),
                period: str(subscription, 'period'),
              },
      },
    },
  };
}

/** Each tenant's state in the hybrid period: who owns its writes, and its route. */
async function tenantStatus(deps: ReturnType<typeof openDeps>, loaded: LoadedConfig) {
  if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'tenant_migration_status')))
    return [];
  return tenantStates(deps.target);
}

/** Conflicts listed by status; the rest are counted. */
const CONFLICTS_SHOWN = 10;

/** Sync's per-table state: the last finished pass of each table, and the tenant conflicts left open. */
async function syncStatus(deps: ReturnType<typeof openDeps>, loaded: LoadedConfig) {
  if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_sync_passes')))
    return null;
  // Only passes over the copy that stands: after a rollback of data, what earlier passes did is history.
  const [copy] = await deps.target.query(
    "SELECT started_at FROM migration_runs WHERE phase = 'data' AND status = 'succeeded' ORDER BY started_at DESC LIMIT 1",
  );
  if (copy === undefined) return null;
  const rows = await deps.target.query(
    `SELECT p.* FROM migration_sync_passes p
       JOIN (SELECT table_name, MAX(finished_at) AS last FROM migration_sync_passes WHERE finished_at IS NOT NULL AND finished_at >= ? GROUP BY table_name) l
         ON l.table_name = p.table_name AND l.last = p.finished_at
      ORDER BY p.table_name`,
    [str(copy, 'started_at')],
  );
  if (rows.length === 0) return null;
  const bound = loaded.config.sync.maxLagSeconds;
  const tables = rows.map((r) => {
    const pass = tablePass(r);
    return {
      ...pass,
      runId: str(r, 'run_id'),
      appliedThrough: strOrNull(r, 'applied_through'),
      lastPassAt: strOrNull(r, 'finished_at'),
      overBound: pass.lagSeconds !== null && pass.lagSeconds > bound,
    };
  });
  const open = await deps.target.query(
    `SELECT table_name, row_key, target_tenant, source_tenant, first_seen_at, last_seen_at FROM migration_sync_conflicts
      WHERE resolved_at IS NULL ORDER BY first_seen_at, table_name LIMIT ${CONFLICTS_SHOWN}`,
  );
  const [total] = await deps.target.query(
    'SELECT COUNT(*) AS n FROM migration_sync_conflicts WHERE resolved_at IS NULL',
  );
  return {
    tables,
    openConflicts: total === undefined ? 0 : num(total, 'n'),
    conflicts: open.map((c) => ({
      table: str(c, 'table_name'),
      rowKey: str(c, 'row_key'),
      targetTenant: str(c, 'target_tenant'),
      sourceTenant: strOrNull(c, 'source_tenant'),
      firstSeenAt: str(c, 'first_seen_at'),
      lastSeenAt: str(c, 'last_seen_at'),
    })),
  };
}

/** The go-live that succeeded (not undone since), its archive, and how far cleanup went. */
async function goLiveStatus(deps: ReturnType<typeof openDeps>, loaded: LoadedConfig) {
  if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_archives')))
    return null;
  const [run] = await deps.target.query(
    "SELECT run_id, finished_at FROM migration_runs WHERE phase = 'golive' AND status = 'succeeded' ORDER BY started_at DESC LIMIT 1",
  );
  if (run === undefined) return null;
  const runId = str(run, 'run_id');
  const [archive] = await deps.target.query(
    `SELECT COUNT(*) AS tables, COALESCE(SUM(rows_archived), 0) AS rows_archived, COALESCE(SUM(bytes), 0) AS bytes,
            COALESCE(SUM(dropped_at IS NOT NULL), 0) AS dropped FROM migration_archives WHERE run_id = ?`,
    [runId],
  );
  const [verified] = await deps.target.query(
    `SELECT COUNT(*) AS n FROM migration_archive_restores r
       JOIN (SELECT table_name, MAX(id) AS id FROM migration_archive_restores WHERE archive_run_id = ? GROUP BY table_name) l
         ON l.id = r.id
      WHERE r.verified = 1`,
    [runId],
  );
  return {
    runId,
    finishedAt: strOrNull(run, 'finished_at'),
    tables: num(archive ?? {}, 'tables'),
    rows: num(archive ?? {}, 'rows_archived'),
    bytes: num(archive ?? {}, 'bytes'),
    verified: num(verified ?? {}, 'n'),
    dropped: num(archive ?? {}, 'dropped'),
  };
}
