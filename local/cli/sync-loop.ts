import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import type { Output } from './output.ts';
import { isAwsMode, type PhaseOutcome, type Runner, runIdOf, runPhaseCommand } from './phases.ts';
import { leaveRunReport } from './report.ts';

/** `--every` as milliseconds: 30s, 5m, 1h (locally a pass may come as often as every second). */
/** A day: passes further apart leave the target a day behind, and timers do not wait beyond 24.8 days anyway. */
const MAX_EVERY_MS = 24 * 3_600_000;

export function parseEvery(raw: string, option = '--every'): number {
  const match = /^([1-9]\d{0,5})(s|m|h)$/.exec(raw);
  const ms =
    match === null
      ? Number.NaN
      : Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'];
  if (!(ms <= MAX_EVERY_MS))
    throw new InputError(
      `${option} must be a time from 1s to 24h, such as 30s, 5m or 1h, got ${JSON.stringify(raw)}`,
    );
  return ms;
}

function describe(ms: number): string {
  return ms % 3_600_000 === 0
    ? `${ms / 3_600_000}h`
    : ms % 60_000 === 0
      ? `${ms / 60_000}m`
      : `${ms / 1000}s`;
}

/**
 * `sync --every 5m`: the sync state machine, pass after pass, until Ctrl-C or `passes`. The first Ctrl-C lets the
 * pass in flight finish (a wait between passes ends at once); the second stops the pass, left resumable. A pass
 * refused because another holds the run lock is not run twice: the loop waits for the next turn. Bad input or
 * config (exit 2) ends the loop, as it would not pass by itself.
 */
export async function runSyncLoop(
  loaded: LoadedConfig,
  request: { everyMs: number; passes?: number },
  out: Output,
  cwd: string,
  runner: Runner,
): Promise<PhaseOutcome> {
  const stop = new AbortController();
  const onInterrupt = (): void => {
    if (stop.signal.aborted) return;
    stop.abort();
    out.info(
      'Ctrl-C: stopping after the pass in flight (Ctrl-C again stops that pass now; it is left resumable).',
    );
  };
  process.on('SIGINT', onInterrupt);
  const outcomes: PhaseOutcome[] = [];
  try {
    for (;;) {
      // A pass every few minutes: a report for each failed pass and for the last one, not one a pass.
      const outcome = await runPhaseCommand(loaded, 'sync', out, cwd, runner, undefined, {
        graceful: true,
        report: 'if-failed',
      });
      outcomes.push(outcome);
      if (outcome.code === 2) break;
      // Go-live ended sync for good: no later pass would start either.
      if (String(outcome.json.cause ?? '').includes('sync is stopped for good')) break;
      if (stop.signal.aborted || (request.passes !== undefined && outcomes.length >= request.passes)) break;
      out.info(`Next sync pass in ${describe(request.everyMs)} (Ctrl-C stops).`);
      await sleep(request.everyMs, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) break;
    }
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  const failed = outcomes.filter((o) => o.code !== 0).length;
  const last = outcomes.at(-1);
  const lastRun = last === undefined ? null : runIdOf(last);
  if (last !== undefined && last.code === 0 && lastRun !== null && !isAwsMode(loaded))
    out.info(await leaveRunReport(loaded, lastRun, cwd));
  out.info(
    `Sync stopped after ${outcomes.length} pass${outcomes.length === 1 ? '' : 'es'}${failed > 0 ? `, ${failed} of them failed (see above)` : ''}${stop.signal.aborted ? ' (Ctrl-C)' : ''}.`,
  );
  return {
    code: last?.code ?? 1,
    json: {
      status: last?.code === 0 ? 'SUCCEEDED' : 'FAILED',
      passes: outcomes.length,
      failedPasses: failed,
      stoppedBy: stop.signal.aborted ? 'interrupt' : last?.code === 2 ? 'input' : 'passes',
      last: last?.json ?? null,
    },
  };
}
