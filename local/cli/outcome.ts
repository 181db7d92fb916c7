import { tenantStates } from '../../lambdas/application/router.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { openObjects } from '../../lambdas/core/ledger/ddl.ts';
import { findRuns, type RunRecord, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { dataLeftovers, describeLeftovers } from '../../lambdas/data/rollback.ts';
import type { PhaseRun } from '../run-phase.ts';
import { openDeps } from '../run-phase.ts';
import { count } from './output.ts';

/**
 * What a phase execution did, read from the ledger after it ended: the CLI says "rolled back" only when the ledger
 * says the rollback removed everything, and otherwise what is left and the command that finishes it.
 */

/** Errors of a refused start that are the operator's input (config, URLs, the source being the target): exit 2. */
export const INPUT_ERRORS = new Set([
  'InputError',
  'InvalidTaskInput',
  'InvalidIdentifier',
  'InvalidDatabaseUrl',
  'SourceIsTarget',
  'ConfigMismatch',
  'DatabaseAccessDenied',
  'MigrationNotReady',
  'DataNotReady',
  'RunConfigChanged',
]);

export interface RunOutcome {
  /** The run the execution worked on, as the ledger has it now; null when it recorded none. */
  readonly run: RunRecord | null;
  /** The lines that say what happened and what to do. */
  readonly lines: string[];
  /** Whether the ledger says the run's work was removed. */
  readonly rolledBack: boolean;
  /** What a failed rollback left: rows per table, indexes, foundation objects. */
  readonly left: Record<string, unknown> | null;
  /** Why the ledger could not be read, when it could not. */
  readonly ledgerError: string | null;
}

/** One error in a line a person reads: long statements cut. */
function shorten(text: string, max = 400): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Reads the ledger for the runs an execution recorded and says what they came to. */
export async function explainRun(
  loaded: LoadedConfig,
  cwd: string,
  phase: string,
  run: PhaseRun,
): Promise<RunOutcome> {
  const told0 = (lines: string[]): RunOutcome => ({
    run: null,
    rolledBack: false,
    left: null,
    ledgerError: null,
    lines,
  });
  // Assess records no run (it writes nothing to the databases): its error says it all.
  if (phase === 'assess') return told0([]);
  const deps = openDeps(loaded, cwd);
  try {
    const ledger = await targetHasTable(deps.targetServer, loaded.targetUrl.database, 'migration_runs');
    const [record] = ledger
      ? await findRuns(deps.target, 'execution_id = ? AND phase = ?', [run.ledgerExecutionId, phase], 1)
      : [];
    if (record === undefined) {
      return {
        run: null,
        rolledBack: false,
        left: null,
        ledgerError: null,
        lines: [
          run.error === 'LockLost' || run.error === 'RunStopped'
            ? `This execution's run was taken over by another execution (its lock had gone stale, e.g. the process was paused), which goes on with it: see npx shifu-migrate status.`
            : `Nothing was written: ${phase} stopped before it recorded a run (${run.error ?? 'error'}).`,
        ],
      };
    }
    const first = record.error === null ? '' : `${record.error.name}: ${record.error.message}`;
    const told = (lines: string[], more: Partial<RunOutcome> = {}): RunOutcome => ({
      run: record,
      rolledBack: false,
      left: null,
      ledgerError: null,
      lines,
      ...more,
    });
    const more = record.moreErrors.length > 0 ? ` Also: ${record.moreErrors.join(' | ')}` : '';
    // A sync pass undoes nothing, nor needs to: each repair was one transaction, the next pass repairs the rest.
    if (phase === 'sync' && (record.status === 'failed' || record.status === 'interrupted'))
      return told([
        `Sync pass ${record.runId} ${record.status === 'failed' ? 'failed' : 'was interrupted'}: ${shorten(first)}`,
        `Nothing to undo: every repair it made was one transaction, so the target is as consistent as before it. ${record.error?.name === 'RunStopped' ? 'A rollback stopped it; once the cause is dealt with (and data copied again, if it was rolled back), the next pass starts afresh' : record.status === 'failed' ? 'Fix the cause, then run the next pass' : 'The next pass resumes it'}: npx shifu-migrate run sync`,
      ]);
    // Go-live: its failure takes every tenant back (or leaves it resumable); say which side serves each.
    if (phase === 'golive' && record.status !== 'refused') {
      const states = await tenantStates(deps.target);
      const on = (route: string) => states.filter((t) => t.route === route).map((t) => t.tenant);
      const paused = on('paused');
      const sides = `The multi-tenant side serves ${on('saas').join(', ') || 'no tenant'}; legacy serves ${on('legacy').join(', ') || 'no tenant'}${paused.length > 0 ? `; the writes of ${paused.join(', ')} are PAUSED (finish with npx shifu-migrate rollback)` : ''}.`;
      if (record.status === 'rolled_back')
        return told(
          [
            `Go-live rolled back (${record.runId}): every tenant went back to legacy, with every write it made on the multi-tenant side (a full sync pass drained them first); legacy's tables are intact and sync runs again. Cause: ${shorten(first)}`,
            sides,
            'Once the cause is dealt with: npx shifu-migrate run golive',
          ],
          { rolledBack: true },
        );
      if (record.status === 'interrupted')
        return told([
          `Go-live interrupted (${record.runId}): ${shorten(first)}. Nothing was undone: the tenants stay on the multi-tenant side, sync passes run again meanwhile, and the archive parts written are kept.`,
          sides,
          'Once the cause is dealt with, resume it: npx shifu-migrate run golive (or take every tenant back: npx shifu-migrate rollback --phase application)',
        ]);
      return told([
        `Go-live ${record.runId} is ${record.status}: ${shorten(first)}`,
        sides,
        record.status === 'rollback_failed' ||
        record.status === 'rolling_back' ||
        record.status === 'stopping'
          ? 'Finish taking the tenants back: npx shifu-migrate rollback'
          : 'npx shifu-migrate status says what is left; npx shifu-migrate rollback takes every tenant back',
      ]);
    }
    // The application phase: which tenants each side serves says what its failure left.
    if (phase === 'application' && record.status !== 'refused') {
      const states = await tenantStates(deps.target);
      const on = (route: string) => states.filter((t) => t.route === route).map((t) => t.tenant);
      const paused = on('paused');
      const sides = `The multi-tenant side serves ${on('saas').join(', ') || 'no tenant'}; legacy serves ${on('legacy').join(', ') || 'no tenant'}${paused.length > 0 ? `; the writes of ${paused.join(', ')} are PAUSED` : ''}.`;
      const [changed] = await deps.target.query(
        'SELECT COUNT(*) AS n FROM traffic_routing_history WHERE run_id = ?',
        [record.runId],
      );
      if (record.status === 'rolled_back' && Number(changed?.n ?? 0) === 0)
        return told([
          `Stopped before any route changed (${record.runId}): ${shorten(first)}`,
          sides,
          'Once the cause is dealt with: npx shifu-migrate run application',
        ]);
      if (record.status === 'rolled_back')
        return told(
          [
            `The wave in flight went back to legacy (${record.runId}), with every write it made on the multi-tenant side (a full sync pass drained them first); waves that had baked stay switched. Cause: ${shorten(first)}`,
            sides,
            'Once the cause is dealt with, run the waves still to switch: npx shifu-migrate run application',
          ],
          { rolledBack: true },
        );
      if (record.status === 'stopping' || record.error?.name === 'RunStopped')
        return told([
          `Stopped by a rollback (${record.runId}): ${shorten(first)}. That rollback takes the wave in flight back to legacy (its writes drained back first); waves that had baked stay switched.`,
          sides,
        ]);
      if (record.status === 'rollback_failed' || paused.length > 0)
        return told([
          `NOT rolled back (${record.runId}, ${record.status}): ${shorten(first)}${shorten(more)}`,
          sides,
          'Finish it (paused tenants are drained back and routed to legacy): npx shifu-migrate rollback',
        ]);
      return told([`${record.status} (${record.runId}): ${shorten(first)}`, sides]);
    }
    switch (record.status) {
      case 'refused':
        return told([`Refused before it did any work (${record.runId}): ${shorten(first)}`]);
      case 'interrupted': {
        const [chunks] =
          phase === 'data'
            ? await deps.target.query(
                `SELECT COUNT(*) AS total, COALESCE(SUM(status IN ('copied', 'validated', 'changing')), 0) AS done
                   FROM migration_chunks WHERE run_id = ?`,
                [record.runId],
              )
            : [];
        const where =
          chunks === undefined
            ? ''
            : ` at chunk ${count(Number(chunks.done))} of ${count(Number(chunks.total))}`;
        return told([
          `Interrupted (${record.runId}): ${shorten(first)}`,
          `Nothing was undone: the run is resumable${where}. Fix the cause, then resume: npx shifu-migrate run ${phase}; or undo it: npx shifu-migrate rollback`,
        ]);
      }
      case 'rolled_back':
        return told(
          [
            `Rolled back (${record.runId}): ${phase === 'data' ? 'what the data phase copied was removed, the migrated tables are empty again' : 'every object this run created was removed'} (the ledger records it). Cause: ${shorten(first)}${shorten(more)}`,
          ],
          { rolledBack: true },
        );
      case 'rollback_failed': {
        const left =
          phase === 'data'
            ? await dataLeftovers({ ...deps, signal: new AbortController().signal }, [record.runId])
            : { objects: (await openObjects(deps.target, { runId: record.runId })).length };
        return told(
          [
            `NOT rolled back (${record.runId}): the rollback stopped half-way.`,
            `Cause: ${shorten(first)}`,
            ...record.moreErrors.map((e) => `Then: ${shorten(e.replace(/ Left on the target: .*$/s, ''))}`),
            phase === 'data'
              ? `Left on the target: ${describeLeftovers(left as Awaited<ReturnType<typeof dataLeftovers>>).replace(/^nothing$/, 'no rows or indexes of the migrated tables; what failed was elsewhere (above)')}.`
              : `Left on the target: ${(left as { objects: number }).objects} objects (migration_ddl rows with rolled_back_at NULL).`,
            'Fix the cause, then finish it: npx shifu-migrate rollback',
          ],
          { left: { ...left } },
        );
      }
      case 'rolling_back':
        // This execution's own rollback, cut short (Ctrl-C, the process killed): nobody else is finishing it. (An
        // execution a rollback stopped ends RunStopped, and that rollback goes on.)
        if (record.executionId === run.ledgerExecutionId && run.error !== 'RunStopped')
          return told([
            `NOT rolled back (${record.runId}): its rollback was stopped half-way${run.error === 'Interrupted' ? ' (Ctrl-C)' : ''}; part of what it copied may be removed already.`,
            `Cause: ${shorten(first)}`,
            'Finish it: npx shifu-migrate rollback',
          ]);
        return told([
          `Stopped by a rollback (${record.runId} is ${record.status}): that rollback undoes this run; see it with npx shifu-migrate status. ${first}`,
        ]);
      case 'stopping':
        return told([
          `Stopped by a rollback (${record.runId} is ${record.status}): that rollback undoes this run; see it with npx shifu-migrate status. ${first}`,
        ]);
      default:
        return told([
          `Run ${record.runId} is ${record.status}${first === '' ? '' : `: ${first}`}${run.error === 'LockLost' ? ' (another execution took it over and goes on with it)' : ''}. See npx shifu-migrate status.`,
        ]);
    }
  } catch (error) {
    return {
      run: null,
      rolledBack: false,
      left: null,
      ledgerError: (error as Error).message,
      lines: [
        `The ledger could not be read (${(error as Error).message}), so whether anything was rolled back is not known here: see npx shifu-migrate status.`,
      ],
    };
  } finally {
    await deps.close();
  }
}
