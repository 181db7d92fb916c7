import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { assertSourceIsNotTarget } from '../../lambdas/core/preflight.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { withDatabase } from '../../lambdas/core/sql/url.ts';
import { openDeps } from '../run-phase.ts';

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
