import { join } from 'node:path';
import type { AssessOutput, AssessReport } from '../../lambdas/assess/schema.ts';
import { openArchive } from '../../lambdas/core/archive/open.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import type { SyncSummary } from '../../lambdas/sync/finish.ts';
import { DEFAULT_POLL_SECONDS, runOnAws } from '../aws-run.ts';
import { type PhaseRun, type RunPhaseOptions, runPhase } from '../run-phase.ts';
import { explainRun, INPUT_ERRORS } from './outcome.ts';
import { count, type Output } from './output.ts';
import { assertAssessmentPassed, assertMayWrite } from './preflight.ts';
import { progressPrinter } from './progress.ts';
import { leaveRunReport } from './report.ts';

/** Phases that run locally today, in the order a migration takes them. */
export const LOCAL_PHASES = [
  'assess',
  'foundation',
  'data',
  'sync',
  'application',
  'integration',
  'golive',
] as const;
export type LocalPhase = (typeof LOCAL_PHASES)[number];
/** Phases the rollback state machine can undo. */
export { ROLLBACK_PHASES } from '../../lambdas/registry.ts';

export interface PhaseOutcome {
  /** The CLI's exit code: 0 done, 1 failed (or, for assess, blocked), 2 refused for bad input or config. */
  readonly code: 0 | 1 | 2;
  /** The one JSON object `--json` prints. */
  readonly json: Record<string, unknown>;
}

export function parsePhase(raw: string | undefined, allowed: readonly string[], what: string): string {
  if (raw === undefined) throw new InputError(`name the ${what}: one of ${allowed.join(', ')}`);
  if (!allowed.includes(raw))
    throw new InputError(`unknown ${what} ${JSON.stringify(raw)}: use one of ${allowed.join(', ')}`);
  return raw;
}

/** A failed execution, told as the ledger has it: what happened to its run, what is left, what to do. */
async function failure(
  loaded: LoadedConfig,
  cwd: string,
  run: PhaseRun,
  out: Output,
  phase: string,
): Promise<PhaseOutcome> {
  const outcome = await explainRun(loaded, cwd, phase, run);
  // The ledger's lines carry the detail when it could be read; otherwise the execution's own error does.
  out.info(
    `${phase} ${run.status === 'FAILED' ? 'failed' : run.status.toLowerCase()}: ${run.error ?? ''}${run.cause && outcome.run === null ? `: ${run.cause}` : ''}`,
  );
  for (const line of outcome.lines) out.info(line);
  out.info(`Event log: ${run.eventLog}`);
  const input =
    INPUT_ERRORS.has(run.error ?? '') && (outcome.run === null || outcome.run.status === 'refused');
  return {
    code: input ? 2 : 1,
    json: {
      status: run.status,
      stateMachine: run.stateMachine,
      executionId: run.executionId,
      error: run.error,
      cause: run.cause,
      rolledBack: outcome.rolledBack,
      run: outcome.run,
      ...(outcome.left === null ? {} : { left: outcome.left }),
      ...(outcome.ledgerError === null ? {} : { ledgerError: outcome.ledgerError }),
      eventLog: run.eventLog,
    },
  };
}

/** What the first Ctrl-C of a local run is answered with, before the work in flight has stopped. */
export function interruptNotice(phase: string): string {
  if (phase === 'rollback')
    return 'Ctrl-C: stopping the rollback half-way. What it removed stays removed; finish it with npx shifu-migrate rollback. Ctrl-C again quits at once.';
  return `Ctrl-C: stopping. No new work starts; work in flight stops and its transaction rolls back; nothing done is undone. The run is left interrupted: npx shifu-migrate run ${phase} resumes it. Ctrl-C again quits at once.`;
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

/**
 * Runs one phase (locally or on AWS) and reports it the way the CLI contract says. A local run of a phase other
 * than assess (which writes its own) leaves its report: JSON, Markdown and an HTML page with charts.
 */
export async function runPhaseCommand(
  loaded: LoadedConfig,
  phase: LocalPhase,
  out: Output,
  cwd: string,
  run_: Runner = runPhase,
  attached?: string,
  extra: Pick<RunPhaseOptions, 'graceful'> & {
    /** Leave the run's report (default); `sync --every` leaves one for a failed pass and for its last one. */
    report?: 'always' | 'if-failed';
  } = {},
): Promise<PhaseOutcome> {
  const { report = 'always', ...options } = extra;
  const outcome = await runPhaseOnce(loaded, phase, out, cwd, run_, attached, options);
  const runId = runIdOf(outcome);
  // A go-live that succeeded wrote its final report as its last step.
  const wrote = phase === 'golive' && outcome.code === 0;
  if (
    phase !== 'assess' &&
    !isAwsMode(loaded) &&
    runId !== null &&
    !wrote &&
    (report === 'always' || outcome.code !== 0)
  )
    out.info(await leaveRunReport(loaded, runId, cwd));
  return outcome;
}

/** The ledger's run a phase command worked on, when it recorded one. */
export function runIdOf(outcome: PhaseOutcome): string | null {
  const runId = outcome.json.runId ?? (outcome.json.run as { runId?: unknown } | null | undefined)?.runId;
  return typeof runId === 'string' ? runId : null;
}

async function runPhaseOnce(
  loaded: LoadedConfig,
  phase: LocalPhase,
  out: Output,
  cwd: string,
  run_: Runner = runPhase,
  /** Set when the CLI follows (or redrives) an execution that exists instead of starting one. */
  attached?: string,
  extra: Pick<RunPhaseOptions, 'graceful'> = {},
): Promise<PhaseOutcome> {
  const aws = isAwsMode(loaded);
  // Assess only reads; a phase that writes refuses a target that is the source, and waits until every raised
  // (local) alarm is cleared.
  if (phase !== 'assess' && !aws) await assertMayWrite(loaded, cwd, { alarms: true });
  // A data run goes only on an assessment that passed, of these rules (when there is one).
  if (phase === 'data' && attached === undefined) out.info(await assertAssessmentPassed(loaded, cwd));
  out.info(
    attached !== undefined
      ? attached
      : aws
        ? `Starting ${phase} on AWS (${loaded.config.aws?.stateMachines?.[phase]})`
        : `Running ${phase} locally (${loaded.sourceUrl.database} → ${loaded.targetUrl.database})`,
  );
  let run: PhaseRun;
  try {
    run = await run_({
      loaded,
      stateMachine: phase,
      input: {},
      cwd,
      watch: (d) => progressPrinter(out, d),
      onInterrupt: () => out.info(interruptNotice(phase)),
      ...extra,
    });
  } finally {
    out.status(null);
  }
  if (run.status !== 'SUCCEEDED') return failure(loaded, cwd, run, out, phase);
  if (phase === 'assess') return assessOutcome(loaded, run, out, cwd);
  if (phase === 'data') {
    const data = run.output as {
      runId: string;
      tables: number;
      chunks: number;
      rows: number;
      quarantined: number;
      changing: number;
      syncSchedule?: string;
    };
    out.info(
      `Data copied (${data.runId}): ${count(data.rows)} rows of ${data.tables} tables in ${count(data.chunks)} chunks, every chunk ${data.changing > 0 ? 'compared' : 'validated'} ` +
        `(count and checksum) as it was copied, tenant isolation verified; ${count(data.quarantined)} rows in migration_quarantine.`,
    );
    if (data.changing > 0)
      out.info(
        `${count(data.changing)} chunks held rows the source was still writing when they were compared: they are marked changing, and sync brings them level.`,
      );
    const schedule = data.syncSchedule ?? 'none';
    out.info(
      schedule === 'none'
        ? `The source goes on changing: sync keeps the target in step (npx shifu-migrate run sync for one pass, sync --every ${loaded.config.sync.every} to go on); verify compares the two at any time.`
        : schedule.startsWith('failed')
          ? `The sync schedule could not be enabled (${schedule.slice('failed: '.length)}): no pass starts by itself until it is; start passes by hand (npx shifu-migrate run sync) or enable the schedule in the EventBridge Scheduler console.`
          : `The sync schedule is enabled (${schedule === 'unchanged' ? 'it was already' : 'now'}): a sync pass every ${loaded.config.sync.every} keeps the target in step.`,
    );
    return {
      code: 0,
      json: { status: run.status, executionId: run.executionId, ...data, eventLog: run.eventLog },
    };
  }
  if (phase === 'sync') return syncOutcome(loaded, run, out);
  if (phase === 'integration') {
    const done = run.output as {
      runId: string;
      providers: number;
      plans: number;
      subscriptions: number;
      paymentSettings: number;
    };
    out.info(
      `Integration done (${done.runId}): ${count(done.providers)} identity providers (client secrets by reference only), ${count(done.plans)} subscription plans, ${count(done.subscriptions)} active subscriptions, ${count(done.paymentSettings)} legacy payment settings assigned to their owner's tenant; every tenant validated. Report: reports/integration/${done.runId}/report.md in the archive.`,
    );
    return { code: 0, json: { status: run.status, ...done } };
  }
  if (phase === 'golive') return goLiveOutcome(loaded, run, out);
  if (phase === 'application') {
    const app = run.output as { runId: string; legacy: string[]; saas: string[] };
    out.info(
      `Application switched (${app.runId}): the multi-tenant side serves ${app.saas.length === 0 ? 'no tenant' : app.saas.join(', ')}; legacy serves ${app.legacy.length === 0 ? 'no tenant' : app.legacy.join(', ')}. ` +
        'Their rows flow both ways on every sync pass (forward for legacy’s tenants, reverse for the switched ones); roll one back with npx shifu-migrate rollback --tenant <bid>.',
    );
    return { code: 0, json: { status: run.status, ...app } };
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
  // A warning repeated for several tables is one line naming them all: nothing hidden, nothing said ten times.
  const warnings = (report?.problems ?? []).filter((p) => p.severity === 'warning');
  const lines: string[] = [];
  for (const [code, same] of Map.groupBy(warnings, (p) => p.code)) {
    const tables = same.flatMap((p) => (p.table === undefined ? [] : [p.table]));
    if (same.length >= 3 && tables.length === same.length)
      lines.push(
        `${code} in ${same.length} tables (${tables.join(', ')}); the first: ${same[0]?.message ?? ''}`,
      );
    else lines.push(...same.map((p) => p.message));
  }
  for (const line of lines.slice(0, 10)) out.info(`  warning: ${line}`);
  if (lines.length > 10)
    out.info(
      `  … and ${lines.length - 10} more warnings: see ${join(archive.location, output.reportMarkdown)}`,
    );
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
  request: { phase?: string; alarm?: string; tenant?: string },
  out: Output,
  cwd: string,
  run_: Runner = runPhase,
  attached?: string,
): Promise<PhaseOutcome> {
  if (!isAwsMode(loaded)) await assertMayWrite(loaded, cwd, { alarms: false });
  out.info(
    attached ??
      `Rolling back ${request.tenant !== undefined ? `tenant ${request.tenant} (application)` : (request.phase ?? 'the phase in flight or failed half-way')} on ${loaded.targetUrl.database}${request.alarm === undefined ? '' : ` (alarm ${request.alarm})`}`,
  );
  const run = await run_({
    loaded,
    stateMachine: 'rollback',
    input: request,
    cwd,
    watch: (d) => progressPrinter(out, d),
    onInterrupt: () => out.info(interruptNotice('rollback')),
  }).finally(() => out.status(null));
  if (run.status !== 'SUCCEEDED') {
    out.info(`rollback failed: ${run.error ?? ''}${run.cause ? `: ${run.cause}` : ''}`);
    out.info(
      run.error === 'RunLocked'
        ? 'Not rolled back: nothing was changed. Wait for the holder to end, or name what to undo.'
        : run.error === 'TenantsSwitched'
          ? 'Not rolled back: refused, nothing was changed. Take the switched tenants back first: npx shifu-migrate rollback --phase application'
          : run.error === 'TableHoldsData'
            ? 'Not rolled back: refused, nothing was changed. Roll back the data phase first (npx shifu-migrate rollback --phase data), then foundation.'
            : run.error === 'RollbackIncomplete'
              ? 'NOT rolled back completely: the message above says what is left; fix the cause, then run npx shifu-migrate rollback again.'
              : 'Not rolled back: see npx shifu-migrate status, and run npx shifu-migrate rollback again once the cause is fixed.',
    );
    out.info(`Event log: ${run.eventLog}`);
    return {
      code: 1,
      json: {
        status: run.status,
        executionId: run.executionId,
        error: run.error,
        cause: run.cause,
        rolledBack: false,
        eventLog: run.eventLog,
      },
    };
  }
  const output = run.output as {
    phase: string | null;
    rolledBack?: boolean;
    rollbackRunId?: string;
    undone?: number;
    truncated?: string[];
    stoppedRuns?: string[];
    stoppedSync?: string | null;
    tenants?: string[];
    saas?: string[];
  };
  if (output.phase === 'application') {
    const back = output.tenants ?? [];
    out.info(
      back.length === 0
        ? request.tenant !== undefined
          ? `${request.tenant} is neither switched nor paused: nothing to take back. The multi-tenant side serves ${(output.saas ?? []).join(', ') || 'no tenant'}.`
          : 'Nothing of application to roll back: no tenant was switched or paused.'
        : `Routed back to legacy: ${back.join(', ')}. Their writes on the multi-tenant side were drained back first (a full sync pass, their writes paused); legacy owns them again. Still on the multi-tenant side: ${(output.saas ?? []).join(', ') || 'no tenant'}.`,
    );
    return {
      code: 0,
      json: {
        status: run.status,
        executionId: run.executionId,
        ...output,
        rolledBack: back,
        eventLog: run.eventLog,
      },
    };
  }
  const nothing =
    (output.phase === null && (output.stoppedSync === undefined || output.stoppedSync === null)) ||
    (output.phase !== null && output.rolledBack !== true);
  if (output.phase === null) {
    if (output.stoppedSync !== undefined && output.stoppedSync !== null)
      out.info(
        `Stopped the sync pass in flight (${output.stoppedSync}): it ends failed, RunStopped; nothing of it needs undoing (each repair is one transaction). The next pass (npx shifu-migrate run sync, or the schedule) starts afresh.`,
      );
    out.info(
      request.phase !== undefined
        ? `Nothing to roll back: no ${request.phase} run is recorded in ${loaded.targetUrl.database}.`
        : 'Nothing to roll back: no phase is in flight or failed half-way. To undo a finished phase, name it, the last first: rollback --phase application (tenants back to legacy, or --tenant <bid> for one), then --phase data, then --phase foundation.',
    );
  } else if (output.rolledBack !== true) {
    out.info(`Nothing of ${output.phase} was recorded to roll back (${output.rollbackRunId}).`);
  } else {
    const stopped = output.stoppedRuns ?? [];
    out.info(
      `Rolled back ${output.phase}: ${
        output.phase === 'integration'
          ? `${count(output.undone ?? 0)} integration rows deleted (providers, plans, subscriptions)`
          : output.phase === 'data'
            ? `${count(output.undone ?? 0)} rows deleted${(output.truncated ?? []).length > 0 ? ` and ${(output.truncated ?? []).length} tables emptied at once (TRUNCATE)` : ''}, the migrated tables are empty`
            : `${count(output.undone ?? 0)} objects removed`
      } (${output.rollbackRunId}); ` +
        `${stopped.length > 0 ? `runs ${stopped.join(', ')} undone; ` : ''}the ledger keeps the record.`,
    );
  }
  return {
    code: 0,
    json: {
      status: run.status,
      executionId: run.executionId,
      ...output,
      ...(nothing ? { nothingToDo: true } : {}),
      eventLog: run.eventLog,
    },
  };
}

/** One sync pass, told: what it applied and deleted, what it compared, the lag, conflicts left open. */
function syncOutcome(loaded: LoadedConfig, run: PhaseRun, out: Output): PhaseOutcome {
  const pass = run.output as SyncSummary;
  const lag = pass.maxLagSeconds;
  out.info(
    `Sync pass ${pass.runId}: ${pass.tables.length} tables; ${count(pass.rowsApplied)} rows written and ${count(pass.rowsDeleted)} deleted on the target; ` +
      `${pass.reverseApplied + pass.reverseDeleted > 0 ? `reverse sync (switched tenants): ${count(pass.reverseApplied)} rows written and ${count(pass.reverseDeleted)} deleted on legacy; ` : ''}` +
      `${count(pass.chunksChecked)} chunks compared, ${count(pass.chunksRepaired)} repaired${pass.chunksChanging > 0 ? ` (${count(pass.chunksChanging)} written again meanwhile: the next pass looks again)` : ''}; ` +
      `largest lag ${lag === null ? 'unknown' : `${lag} s`}${lag !== null && lag > loaded.config.sync.maxLagSeconds ? ` (over sync.maxLagSeconds ${loaded.config.sync.maxLagSeconds})` : ''}.`,
  );
  for (const t of pass.tables.filter(
    (t) =>
      t.rowsApplied + t.rowsDeleted + t.conflicts + t.rowsWaiting + t.reverseApplied + t.reverseDeleted > 0,
  ))
    out.info(
      `  ${t.table}: ${count(t.rowsApplied)} written, ${count(t.rowsDeleted)} deleted${t.conflicts > 0 ? `, ${count(t.conflicts)} tenant conflicts` : ''}${t.rowsWaiting > 0 ? `, ${count(t.rowsWaiting)} waiting for their parent row (the next pass)` : ''}; lag ${t.lagSeconds === null ? 'unknown' : `${t.lagSeconds} s`}${t.reverseApplied + t.reverseDeleted > 0 || t.reverseLagSeconds !== null ? `; to legacy ${count(t.reverseApplied)} written, ${count(t.reverseDeleted)} deleted, lag ${t.reverseLagSeconds === null ? 'unknown' : `${t.reverseLagSeconds} s`}` : ''}`,
    );
  if (pass.openConflicts > 0)
    out.info(
      `${count(pass.openConflicts)} rows would change tenant and were left as the target has them (migration_sync_conflicts; npx shifu-migrate status lists them): fix the rows or the rules; sync settles each once source and target agree.`,
    );
  return {
    code: 0,
    json: { status: run.status, executionId: run.executionId, ...pass, eventLog: run.eventLog },
  };
}

/** Go-live done: what was verified and archived, where the archive and the report are, what is left to do. */
function goLiveOutcome(loaded: LoadedConfig, run: PhaseRun, out: Output): PhaseOutcome {
  const done = run.output as {
    runId: string;
    checks: number;
    passed: number;
    archive: {
      manifest: string;
      location: string;
      tables: number;
      rows: number;
      objects: number;
      bytes: number;
    };
    report: { html: string } | null;
    schedule: string;
  };
  const where = (key: string) =>
    loaded.config.archive.url.startsWith('s3://')
      ? `${done.archive.location}/${key}`
      : join(done.archive.location, key);
  out.info(
    `Go-live done (${done.runId}): every tenant is served by the multi-tenant side; ${done.passed} of ${done.checks} checks passed (verification and health).`,
  );
  out.info(
    `Legacy archived: ${count(done.archive.tables)} tables, ${count(done.archive.rows)} rows in ${count(done.archive.objects)} objects (${(done.archive.bytes / 1_048_576).toFixed(1)} MiB), manifest ${where(done.archive.manifest)}.`,
  );
  out.info(
    done.schedule === 'none'
      ? 'Sync is stopped: no pass starts any more (legacy no longer follows the multi-tenant side).'
      : done.schedule.startsWith('failed')
        ? `Sync passes are refused from now on, but the schedule could not be disabled (${done.schedule.slice('failed: '.length)}): disable it in the EventBridge Scheduler console.`
        : 'Sync is stopped: the schedule is disabled and no pass starts any more.',
  );
  out.info(
    done.report === null
      ? 'The final report was not written: npx shifu-migrate report writes it.'
      : `Report: ${where(done.report.html)}`,
  );
  out.info(
    `Legacy tables are kept. Prove the archive restores (npx shifu-migrate restore-archive latest --into <mysql://…/scratch>), then, after golive.archive.retentionDays (${loaded.config.golive.archive.retentionDays}), npx shifu-migrate cleanup-legacy --confirm drops them.`,
  );
  return {
    code: 0,
    json: { status: run.status, executionId: run.executionId, ...done, eventLog: run.eventLog },
  };
}
