import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { ensureLedger, nowText } from '../../lambdas/core/ledger/runs.ts';
import { pausedNow } from '../../lambdas/core/throttle.ts';
import { openDeps } from '../run-phase.ts';
import type { Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';

/**
 * `pause`: no new chunk starts (the data phase's copy tasks wait before each chunk, locally and on AWS) until
 * `resume`; the chunks in flight finish, nothing is rolled back, the run stays running. `resume` lets them go on.
 */
export async function runPause(
  loaded: LoadedConfig,
  pause: boolean,
  reason: string,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    await ensureLedger(deps.target);
    const before = await pausedNow(deps);
    if (pause) {
      await deps.target.execute(
        `INSERT INTO migration_pause (name, paused, reason, since) VALUES ('target', 1, ?, ?)
         ON DUPLICATE KEY UPDATE reason = IF(paused = 1, reason, VALUES(reason)), since = IF(paused = 1, since, VALUES(since)), paused = 1`,
        [reason.slice(0, 255), nowText()],
      );
      out.info(
        before === null
          ? `Paused: no new chunk starts on ${loaded.targetUrl.database} (those in flight finish; nothing is rolled back). npx shifu-migrate resume lets the run go on.`
          : `Already paused since ${before.since} UTC${before.reason === '' ? '' : ` (${before.reason})`}: npx shifu-migrate resume lets the run go on.`,
      );
      return { code: 0, json: { status: 'PAUSED', since: (await pausedNow(deps))?.since ?? null } };
    }
    await deps.target.execute("UPDATE migration_pause SET paused = 0 WHERE name = 'target'");
    out.info(
      before === null
        ? 'Not paused: nothing to resume.'
        : `Resumed: new chunks start again (paused since ${before.since} UTC).`,
    );
    return { code: 0, json: { status: 'RESUMED', wasPaused: before !== null } };
  } finally {
    await deps.close();
  }
}
