import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { num, str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import { verifyTarget } from '../../lambdas/data/verify.ts';
import { openDeps } from '../run-phase.ts';
import { raisedAlarms } from './alarm.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';

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
      out.info('No data run to verify: run the data phase first.');
      return { code: 1, json: { status: 'NO_DATA', differences: 0, tables: [] } };
    }
    out.info(
      `Verifying ${loaded.targetUrl.database} against ${loaded.sourceUrl.database} (data run ${result.runId})`,
    );
    out.info(
      `  ${'table'.padEnd(24)} ${'source'.padStart(10)} ${'target'.padStart(10)} ${'quarant.'.padStart(8)}  chunks    checksum  isolation`,
    );
    for (const t of result.tables) {
      const isolation =
        t.isolation === null
          ? 'global'
          : t.isolation.unknownTenant + t.isolation.ruleMismatch + t.isolation.parentMismatch === 0
            ? 'ok'
            : 'BROKEN';
      out.info(
        `  ${t.table.padEnd(24)} ${count(t.sourceRows).padStart(10)} ${count(t.targetRows).padStart(10)} ${count(t.quarantined).padStart(8)}  ${`${t.chunks.validated}/${t.chunks.total}`.padEnd(8)}  ${(t.checksum.equal ? 'equal' : 'DIFFERS').padEnd(8)}  ${isolation}`,
      );
    }
    out.info(result.differences === 0 ? 'No differences.' : `${result.differences} differences.`);
    return {
      code: result.differences === 0 ? 0 : 1,
      json: { status: result.differences === 0 ? 'OK' : 'DIFFERENCES', ...result },
    };
  } finally {
    await deps.close();
  }
}

/** `status`: what the ledger says, per phase and per table. */
export async function runStatusCommand(
  loaded: LoadedConfig,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    if (!(await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_runs'))) {
      out.info(`No ledger in ${loaded.targetUrl.database} yet: nothing has run (run foundation first).`);
      return { code: 0, json: { status: 'EMPTY', runs: [], tables: [] } };
    }
    const runs = (
      await deps.target.query(
        'SELECT run_id, phase, status, started_at, finished_at, error_name, error_message FROM migration_runs ORDER BY started_at DESC, run_id DESC LIMIT 20',
      )
    ).map((r) => ({
      runId: str(r, 'run_id'),
      phase: str(r, 'phase'),
      status: str(r, 'status'),
      startedAt: str(r, 'started_at'),
      finishedAt: strOrNull(r, 'finished_at'),
      error: strOrNull(r, 'error_name'),
      message: strOrNull(r, 'error_message'),
    }));
    const tables = (
      await deps.target.query(
        `SELECT p.table_name, p.phase, p.status, p.records_migrated,
                (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name) AS chunks,
                (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name AND c.status = 'validated') AS validated,
                (SELECT COUNT(*) FROM migration_chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name AND c.status = 'mismatch') AS failed,
                (SELECT COUNT(*) FROM migration_quarantine q WHERE q.table_name = p.table_name) AS quarantined
           FROM migration_progress p ORDER BY p.phase, p.table_name`,
      )
    ).map((r) => ({
      table: str(r, 'table_name'),
      phase: str(r, 'phase'),
      status: str(r, 'status'),
      rows: num(r, 'records_migrated'),
      chunks: { total: num(r, 'chunks'), validated: num(r, 'validated'), failed: num(r, 'failed') },
      quarantined: num(r, 'quarantined'),
    }));
    const alarms = await raisedAlarms(deps, loaded.targetUrl.database);
    for (const alarm of alarms) {
      out.info(
        `Alarm ${JSON.stringify(alarm.name)} is raised since ${alarm.changedAt} UTC${alarm.reason === '' ? '' : `: ${alarm.reason}`} (no phase starts until: alarm clear)`,
      );
    }
    out.info(`Runs (newest first) in ${loaded.targetUrl.database}:`);
    for (const run of runs) {
      out.info(
        `  ${run.runId.padEnd(42)} ${run.status.padEnd(12)} ${run.startedAt}${run.error === null ? '' : `  ${run.error}: ${run.message ?? ''}`}`,
      );
    }
    out.info('Tables:');
    for (const t of tables) {
      out.info(
        `  ${t.phase.padEnd(10)} ${t.table.padEnd(24)} ${t.status.padEnd(12)} ${count(t.rows).padStart(10)} rows  chunks ${t.chunks.validated}/${t.chunks.total}${t.chunks.failed > 0 ? ` (${t.chunks.failed} failed)` : ''}  quarantined ${count(t.quarantined)}`,
      );
    }
    return { code: 0, json: { status: 'OK', alarms, runs, tables } };
  } finally {
    await deps.close();
  }
}
