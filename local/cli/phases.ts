import { join } from 'node:path';
import type { AssessOutput, AssessReport } from '../../lambdas/assess/schema.ts';
import { openArchive } from '../../lambdas/core/archive/open.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { DEFAULT_POLL_SECONDS, runOnAws } from '../aws-run.ts';
import { type PhaseRun, type RunPhaseOptions, runPhase } from '../run-phase.ts';
import { assertNoAlarm } from './alarm.ts';
import { count, type Output } from './output.ts';
import { progressPrinter } from './progress.ts';

/** Phases that run locally today, in the order a migration takes them. */
export const LOCAL_PHASES = ['assess', 'foundation', 'data'] as const;
export type LocalPhase = (typeof LOCAL_PHASES)[number];
/** Phases the rollback state machine can undo. */
export { ROLLBACK_PHASES } from '../../lambdas/registry.ts';

export interface PhaseOutcome {
  /** The CLI's exit code: 0 done, 1 failed (or, for assess, blocked). */
  readonly code: 0 | 1;
  /** The one JSON object `--json` prints. */
  readonly json: Record<string, unknown>;
}

export function parsePhase(raw: string | undefined, allowed: readonly string[], what: string): string {
  if (raw === undefined) throw new InputError(`name the ${what}: one of ${allowed.join(', ')}`);
  if (!allowed.includes(raw))
    throw new InputError(`unknown ${what} ${JSON.stringify(raw)}: use one of ${allowed.join(', ')}`);
  return raw;
}

function failure(run: PhaseRun, out: Output, title: string): PhaseOutcome {
  out.info(
    `${title} ${run.status === 'FAILED' ? 'failed' : run.status.toLowerCase()}: ${run.error ?? ''}${run.cause ? `: ${run.cause}` : ''}`,
  );
  out.info(
    run.error === 'RunStopped'
      ? 'Stopped by a rollback (npx shifu-migrate rollback, or an alarm): that rollback undoes this run; see it with npx shifu-migrate status.'
      : run.rolledBack
        ? 'Rolled back: what this run created was removed (the ledger, migration_ddl, records it).'
        : 'Not rolled back: see the ledger (migration_runs, migration_ddl) and the event log.',
  );
  out.info(`Event log: ${run.eventLog}`);
  return {
    code: 1,
    json: {
      status: run.status,
      stateMachine: run.stateMachine,
      executionId: run.executionId,
      error: run.error,
      cause: run.cause,
      rolledBack: run.rolledBack,
      eventLog: run.eventLog,
    },
  };
}

/** Runs a state machine: locally (the engine in this process), or on AWS (the deployed one). */
export type Runner = (options: RunPhaseOptions) => Promise<PhaseRun>;

/** AWS mode when the config names the deployed state machines; local otherwise. */
export function isAwsMode(loaded: LoadedConfig): boolean {
  return loaded.config.aws?.stateMachines !== undefined;
}

/** The runner the config asks for; `pollSeconds` is how often AWS mode reads the execution history. */
export function runnerFor(loaded: LoadedConfig, pollSeconds = DEFAULT_POLL_SECONDS): Runner {
  return isAwsMode(loaded) ? (options) => runOnAws({ ...options, pollSeconds }) : runPhase;
}

/** Runs one phase (locally or on AWS) and reports it the way the CLI contract says. */
export async function runPhaseCommand(
  loaded: LoadedConfig,
  phase: LocalPhase,
  out: Output,
  cwd: string,
  run_: Runner = runPhase,
): Promise<PhaseOutcome> {
  const aws = isAwsMode(loaded);
  // Assess only reads; a phase that writes waits until every raised (local) alarm is cleared.
  if (phase !== 'assess' && !aws) await assertNoAlarm(loaded, cwd);
  out.info(
    aws
      ? `Starting ${phase} on AWS (${loaded.config.aws?.stateMachines?.[phase]})`
      : `Running ${phase} locally (${loaded.sourceUrl.database} → ${loaded.targetUrl.database})`,
  );
  const run = await run_({
    loaded,
    stateMachine: phase,
    input: {},
    cwd,
    watch: (d) => progressPrinter(out, d),
  });
  if (run.status !== 'SUCCEEDED') return failure(run, out, phase);
  if (phase === 'assess') return assessOutcome(loaded, run, out, cwd);
  if (phase === 'data') {
    const data = run.output as {
      runId: string;
      tables: number;
      chunks: number;
      rows: number;
      quarantined: number;
    };
    out.info(
      `Data copied (${data.runId}): ${count(data.rows)} rows of ${data.tables} tables in ${count(data.chunks)} chunks, every chunk validated ` +
        `(count and checksum), tenant isolation verified; ${count(data.quarantined)} rows in migration_quarantine.`,
    );
    return {
      code: 0,
      json: { status: run.status, executionId: run.executionId, ...data, eventLog: run.eventLog },
    };
  }
  const output = run.output as { runId: string; tables: number; tenants: number; created: number };
  out.info(
    `Foundation ready (${output.runId}): ${output.tables} tables and ${output.tenants} tenants on the target; ` +
      `${output.created} objects created by this run${output.created === 0 ? ' (everything was there already)' : ''}.`,
  );
  return {
    code: 0,
    json: { status: run.status, executionId: run.executionId, ...output, eventLog: run.eventLog },
  };
}

async function assessOutcome(
  loaded: LoadedConfig,
  run: PhaseRun,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const output = run.output as AssessOutput;
  const archive = openArchive(loaded.config.archive.url, cwd);
  // On AWS the report is in the stack's bucket: readable here when the config's archive.url names it.
  const body = await archive.get(output.reportJson).catch((error: Error) => {
    out.info(`(the report could not be read from ${archive.location}: ${error.message})`);
    return undefined;
  });
  const report = body === undefined ? undefined : (JSON.parse(body.toString('utf8')) as AssessReport);
  out.info(
    `Assessment ${output.runId}: ${output.ready ? 'READY' : `BLOCKED by ${output.blocking} problem${output.blocking === 1 ? '' : 's'}`}; ` +
      `${output.tables} tables, ${count(output.rows)} rows, ${output.warnings} warnings.`,
  );
  for (const problem of report?.problems ?? []) {
    if (problem.severity === 'blocking') out.info(`  blocking: ${problem.message}`);
  }
  for (const problem of (report?.problems ?? []).filter((p) => p.severity === 'warning').slice(0, 10)) {
    out.info(`  warning: ${problem.message}`);
  }
  out.info(`Report: ${join(archive.location, output.reportMarkdown)}`);
  return {
    code: output.ready ? 0 : 1,
    json: { status: run.status, executionId: run.executionId, ...output, eventLog: run.eventLog, report },
  };
}

/**
 * `rollback [--phase <phase>]`: the rollback state machine, run locally. Without a phase it stops and undoes the
 * phase in flight or failed half-way; `alarm` names the alarm that started it (`alarm raise`).
 */
export async function runRollbackCommand(
  loaded: LoadedConfig,
  request: { phase?: string; alarm?: string },
  out: Output,
  cwd: string,
  run_: Runner = runPhase,
): Promise<PhaseOutcome> {
  out.info(
    `Rolling back ${request.phase ?? 'the phase in flight or failed half-way'} on ${loaded.targetUrl.database}${request.alarm === undefined ? '' : ` (alarm ${request.alarm})`}`,
  );
  const run = await run_({
    loaded,
    stateMachine: 'rollback',
    input: request,
    cwd,
    watch: (d) => progressPrinter(out, d),
  });
  if (run.status !== 'SUCCEEDED') return failure(run, out, 'rollback');
  const output = run.output as {
    phase: string | null;
    rollbackRunId?: string;
    undone?: number;
    stoppedRuns?: string[];
  };
  if (output.phase === null) {
    out.info(
      'Nothing to roll back: no phase is in flight or failed half-way. To undo a finished phase, name it: rollback --phase data (or foundation).',
    );
  } else {
    const stopped = output.stoppedRuns ?? [];
    out.info(
      `Rolled back ${output.phase}: ${count(output.undone ?? 0)} ${output.phase === 'data' ? 'rows deleted from the target' : 'objects removed'} (${output.rollbackRunId}); ` +
        `${stopped.length > 0 ? `stopped ${stopped.join(', ')}; ` : ''}the ledger keeps the record.`,
    );
  }
  return {
    code: 0,
    json: { status: run.status, executionId: run.executionId, ...output, eventLog: run.eventLog },
  };
}
