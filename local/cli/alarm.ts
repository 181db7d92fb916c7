import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { ensureLedger, nowText } from '../../lambdas/core/ledger/runs.ts';
import { openDeps } from '../run-phase.ts';
import type { Output } from './output.ts';
import { type PhaseOutcome, runRollbackCommand } from './phases.ts';
import { assertMayWrite, raisedAlarms } from './preflight.ts';

/** CloudWatch's alarm names: 1–255 characters, no control characters. */
const ALARM_NAME = /^[^\p{Cc}]{1,255}$/u;

export function parseAlarmName(raw: string | undefined): string {
  if (raw === undefined) throw new InputError('name the alarm: shifu-migrate alarm raise|clear <name>');
  if (!ALARM_NAME.test(raw) || raw.trim() !== raw || raw === '')
    throw new InputError(
      `alarm name ${JSON.stringify(raw)} is not valid: 1–255 characters, no control characters, no leading or trailing spaces`,
    );
  return raw;
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
  await assertMayWrite(loaded, cwd, { alarms: false });
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
        `Alarm ${JSON.stringify(name)} not recorded: the target database ${loaded.targetUrl.database} does not exist yet, so nothing runs there to stop, and there is no ledger to keep the alarm in.`,
      );
      return { code: 0, json: { status: 'NO_DATA', alarm: name, state: 'NOT_RECORDED' } };
    }
  } finally {
    await deps.close();
  }
  const outcome = await runRollbackCommand(loaded, { alarm: name }, out, cwd);
  // The alarm was raised whether or not its rollback found anything to undo: that is not "nothing to do".
  const { nothingToDo: _nothing, ...rollback } = outcome.json;
  return { code: outcome.code, json: { alarm: name, state: 'ALARM', ...rollback } };
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
