import { serverAddress } from '../../lambdas/assess/assess.ts';
import type { AssessReport } from '../../lambdas/assess/schema.ts';
import { openArchive } from '../../lambdas/core/archive/open.ts';
import { rulesFingerprint } from '../../lambdas/core/config/fingerprint.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { assertSourceIsNotTarget } from '../../lambdas/core/preflight.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { withDatabase } from '../../lambdas/core/sql/url.ts';
import { openDeps } from '../run-phase.ts';
import { archivePath } from './report.ts';

/** A phase does not start while an alarm is raised: the alarm's rollback would undo it. */
export class AlarmRaised extends Error {
  override name = 'AlarmRaised';
}

/** The alarms in state ALARM, oldest first; none when there is no ledger yet. */
export async function raisedAlarms(
  deps: { target: SqlClient; targetServer: SqlClient },
  database: string,
): Promise<{ name: string; reason: string; changedAt: string }[]> {
  if (!(await targetHasTable(deps.targetServer, database, 'migration_alarms'))) return [];
  const rows = await deps.target.query(
    "SELECT name, reason, changed_at FROM migration_alarms WHERE state = 'ALARM' ORDER BY changed_at, name",
  );
  return rows.map((r) => ({
    name: str(r, 'name'),
    reason: str(r, 'reason'),
    changedAt: str(r, 'changed_at'),
  }));
}

/** Refuses to start a phase while an alarm is raised, naming it and how to clear it. */
export async function assertNoAlarm(loaded: LoadedConfig, cwd: string): Promise<void> {
  const deps = openDeps(loaded, cwd);
  try {
    const raised = await raisedAlarms(deps, loaded.targetUrl.database);
    if (raised.length > 0) {
      const names = raised.map((a) => a.name);
      throw new AlarmRaised(
        `alarm ${names.map((n) => JSON.stringify(n)).join(', ')} is raised (since ${raised[0]?.changedAt} UTC${raised[0]?.reason ? `: ${raised[0].reason}` : ''}); ` +
          `find the cause, then clear it: npx shifu-migrate alarm clear ${JSON.stringify(names[0])}`,
      );
    }
  } finally {
    await deps.close();
  }
}

/**
 * Before a command writes to the target locally: the target is not the source, by what the servers say (exit 2,
 * nothing written), and, for a phase, no alarm is raised. The servers are reached through information_schema, so
 * a database that does not exist yet is no obstacle.
 */
export async function assertMayWrite(
  loaded: LoadedConfig,
  cwd: string,
  options: { readonly alarms: boolean },
): Promise<void> {
  const source = openSql(withDatabase(loaded.sourceUrl, 'information_schema'), {
    label: 'source',
    readOnly: true,
    display: loaded.sourceUrl.raw,
  });
  const targetServer = openSql(withDatabase(loaded.targetUrl, 'information_schema'), {
    label: 'target',
    display: loaded.targetUrl.raw,
  });
  try {
    await assertSourceIsNotTarget({
      source,
      targetServer,
      sourceUrl: loaded.sourceUrl,
      targetUrl: loaded.targetUrl,
    });
  } finally {
    await Promise.all([source.close(), targetServer.close()]);
  }
  if (options.alarms) await assertNoAlarm(loaded, cwd);
}

/** `run data` refused: the latest assessment of these databases blocks, or judged other tenant rules. */
export class AssessmentNotPassed extends InputError {
  override name = 'AssessmentNotPassed';
}

/**
 * Before `run data`: the newest assessment of this source and target (from the archive's reports/assess/) must have
 * passed, and must have judged the tenant rules this config has. Without any assessment of them, the run goes on and
 * says so. Returns the line to print.
 */
export async function assertAssessmentPassed(loaded: LoadedConfig, cwd: string): Promise<string> {
  const archive = openArchive(loaded.config.archive.url, cwd);
  let keys: string[];
  try {
    keys = (await archive.list('reports/assess/')).filter((k) => k.endsWith('/report.json'));
  } catch (error) {
    return `The assessments in ${archive.location} could not be read (${(error as Error).message}): going on without checking the latest one passed.`;
  }
  // Run ids start with their UTC time: newest last once sorted.
  const skipped: string[] = [];
  for (const key of keys.sort().reverse()) {
    const body = await archive.get(key);
    if (body === undefined) continue;
    let report: AssessReport;
    try {
      report = JSON.parse(body.toString('utf8')) as AssessReport;
      if (
        typeof report?.source?.database !== 'string' ||
        typeof report.target?.database !== 'string' ||
        typeof report.ready !== 'boolean' ||
        typeof report.totals?.blocking !== 'number' ||
        typeof report.runId !== 'string'
      )
        throw new TypeError('not an assessment report');
    } catch {
      skipped.push(archivePath(archive, key));
      continue;
    }
    // The same databases: by name, and by server where the report says which (older reports do not).
    if (
      report.source?.database !== loaded.sourceUrl.database ||
      report.target?.database !== loaded.targetUrl.database ||
      (report.source.at !== undefined && report.source.at !== serverAddress(loaded.sourceUrl)) ||
      (report.target.at !== undefined && report.target.at !== serverAddress(loaded.targetUrl))
    )
      continue;
    const where = archivePath(archive, key.replace(/report\.json$/, 'report.md'));
    // An unreadable report newer than this one may be this pair's latest: it is not passed over silently.
    if (skipped.length > 0)
      throw new AssessmentNotPassed(
        `a newer assessment report cannot be read (${skipped.join(', ')}), so ${report.runId} may not be the latest of ${loaded.sourceUrl.database} → ${loaded.targetUrl.database}: remove the unreadable one, or npx shifu-migrate run assess, then run data again`,
      );
    if (!report.ready)
      throw new AssessmentNotPassed(
        `the latest assessment of ${loaded.sourceUrl.database} → ${loaded.targetUrl.database} (${report.runId}) is BLOCKED by ${report.totals.blocking} problem${report.totals.blocking === 1 ? '' : 's'}: fix them (${where}), then npx shifu-migrate run assess, and run data again`,
      );
    if (report.configHash === undefined)
      throw new AssessmentNotPassed(
        `the latest assessment of ${loaded.sourceUrl.database} → ${loaded.targetUrl.database} (${report.runId}) was made by an older version, which did not keep the tenant rules it judged: npx shifu-migrate run assess, then run data again`,
      );
    if (report.configHash !== rulesFingerprint(loaded.config))
      throw new AssessmentNotPassed(
        `the latest assessment of ${loaded.sourceUrl.database} → ${loaded.targetUrl.database} (${report.runId}) judged other tenant rules than this config has (tenants or tables changed since): npx shifu-migrate run assess, then run data again`,
      );
    return `Assessment ${report.runId} of these databases passed, with these tenant rules.`;
  }
  return `No ${skipped.length > 0 ? 'readable ' : ''}assessment of ${loaded.sourceUrl.database} → ${loaded.targetUrl.database} found in ${archive.location}${skipped.length > 0 ? ` (unreadable: ${skipped.join(', ')})` : ''}: going on (npx shifu-migrate run assess lists what would block, before anything is copied).`;
}

/** Whether the target database exists (foundation makes it): commands that read or write its ledger need it. */
export async function targetDatabaseExists(loaded: LoadedConfig, cwd: string): Promise<boolean> {
  const deps = openDeps(loaded, cwd);
  try {
    const found = await deps.targetServer.query(
      'SELECT 1 AS found FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [loaded.targetUrl.database],
    );
    return found.length > 0;
  } finally {
    await deps.close();
  }
}
