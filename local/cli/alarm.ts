import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { ensureLedger, nowText, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { openDeps } from '../run-phase.ts';
import type { Output } from './output.ts';
import { type PhaseOutcome, runRollbackCommand } from './phases.ts';

/** CloudWatch's alarm names: 1–255 characters, no control characters. */
const ALARM_NAME = /^[^\p{Cc}]{1,255}$/u;

/** A phase does not start while an alarm is raised: the alarm's rollback would undo it. */
export class AlarmRaised extends Error {
  override name = 'AlarmRaised';
}

export function parseAlarmName(raw: string | undefined): string {
  if (raw === undefined) throw new InputError('name the alarm: shifu-migrate alarm raise|clear <name>');
  if (!ALARM_NAME.test(raw) || raw.trim() !== raw || raw === '')
    throw new InputError(
      `alarm name ${JSON.stringify(raw)} is not valid: 1–255 characters, no control characters, no leading or trailing spaces`,
    );
  return raw;
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
 * `alarm raise <name>`: what a CloudWatch alarm entering ALARM does on AWS, locally. The alarm is recorded in the
 * ledger (no phase starts until it is cleared) and the rollback state machine runs with no phase: it stops the
 * phase in flight or failed half-way and undoes it.
 */
export async function runAlarmRaise(
  loaded: LoadedConfig,
  name: string,
  reason: string,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    const database = await deps.targetServer.query(
      'SELECT 1 AS found FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [loaded.targetUrl.database],
    );
    if (database.length > 0) {
      await ensureLedger(deps.target);
      await deps.target.execute(
        `INSERT INTO migration_alarms (name, state, reason, changed_at) VALUES (?, 'ALARM', ?, ?)
         ON DUPLICATE KEY UPDATE state = VALUES(state), reason = VALUES(reason), changed_at = VALUES(changed_at)`,
        [name, reason.slice(0, 1024), nowText()],
      );
      out.info(`Alarm ${JSON.stringify(name)} raised: no phase starts until it is cleared.`);
    } else {
      out.info(
        `Alarm ${JSON.stringify(name)}: ${loaded.targetUrl.database} does not exist, nothing to stop.`,
      );
    }
  } finally {
    await deps.close();
  }
  const outcome = await runRollbackCommand(loaded, { alarm: name }, out, cwd);
  return { code: outcome.code, json: { alarm: name, state: 'ALARM', ...outcome.json } };
}

/** `alarm clear <name>`: the alarm is back to OK; phases may start again. */
export async function runAlarmClear(
  loaded: LoadedConfig,
  name: string,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    const raised = await raisedAlarms(deps, loaded.targetUrl.database);
    if (!raised.some((a) => a.name === name)) {
      throw new InputError(
        `no alarm named ${JSON.stringify(name)} is raised${raised.length > 0 ? `; raised: ${raised.map((a) => JSON.stringify(a.name)).join(', ')}` : ' (none is)'}`,
      );
    }
    await deps.target.execute("UPDATE migration_alarms SET state = 'OK', changed_at = ? WHERE name = ?", [
      nowText(),
      name,
    ]);
    out.info(`Alarm ${JSON.stringify(name)} cleared.`);
    return { code: 0, json: { status: 'OK', alarm: name, state: 'OK' } };
  } finally {
    await deps.close();
  }
}
