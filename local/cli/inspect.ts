import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { describeHolder, readLock } from '../../lambdas/core/ledger/lock.ts';
import { findRuns, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { num, scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { verifyTarget } from '../../lambdas/data/verify.ts';
import { openDeps } from '../run-phase.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';
import { raisedAlarms } from './preflight.ts';

/** `verify`: read-only integrity and tenant isolation; exit 1 when anything differs. */
export async function runVerifyCommand(
  loaded: LoadedConfig,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
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
      `  ${'table'.padEnd(24)} ${'source'.padStart(10)} ${'target'.padStart(10)} ${'quarant.'.padStart(8)}  chunks    checksum  isolation`,
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
        `  ${t.table.padEnd(24)} ${count(t.sourceRows).padStart(10)} ${count(t.targetRows).padStart(10)} ${count(t.quarantined).padStart(8)}  ${`${t.chunks.validated}/${t.chunks.total}`.padEnd(8)}  ${(t.checksum.equal ? 'equal' : 'DIFFERS').padEnd(8)}  ${isolation}`,
      );
    }
    show(out, result.differences === 0 ? 'No differences.' : `${result.differences} differences.`);
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
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_runs'))) {
      show(out, `No ledger in ${loaded.targetUrl.database} yet: nothing has run (run foundation first).`);
      return { code: 0, json: { status: 'EMPTY', runs: [], tables: [], lock: null } };
    }
    const lock = (await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_lock'))
      ? await readLock(deps.target)
      : null;
    const records = await findRuns(deps.target, '1 = 1', [], 20);
    const runs = records.map((r) => {
      const held = lock?.runId === r.runId ? lock : null;
      const live = r.status === 'running' || r.status === 'stopping' || r.status === 'rolling_back';
      const resume =
        r.phase === 'rollback'
          ? 'finish it: npx shifu-migrate rollback'
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
    return { code: 0, json: { status: 'OK', alarms, lock, runs, tables } };
  } finally {
    await deps.close();
  }
}

/** The report status and verify print: their result, on stdout (on stderr with --json, whose stdout is the object). */
function show(out: Output, line: string): void {
  if (out.json) out.info(line);
  else out.result(line);
}
