import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openArchive } from '../lambdas/core/archive/open.ts';
import type { LoadedConfig } from '../lambdas/core/config/load.ts';
import { keepAlive, releaseLock } from '../lambdas/core/ledger/lock.ts';
import { findRuns, setRunStatus } from '../lambdas/core/ledger/runs.ts';
import { type MetricsSink, noMetrics } from '../lambdas/core/metrics.ts';
import type { SyncSchedule } from '../lambdas/core/schedule.ts';
import { openSql } from '../lambdas/core/sql/open.ts';
import type { SqlClient } from '../lambdas/core/sql/port.ts';
import { parseDatabaseUrl, withDatabase } from '../lambdas/core/sql/url.ts';
import type { TaskDeps } from '../lambdas/core/task.ts';
import { secretCheck } from '../lambdas/integration/secrets.ts';
import { type LoadedDefinition, loadDefinition } from './engine/definition.ts';
import { localInvoker, localSubstitutions } from './engine/functions.ts';
import { type ExecutionEvent, type ExecutionResult, localExecutionId, runLocal } from './engine/run.ts';

export interface PhaseRun extends ExecutionResult {
  /** The execution's id as the ledger records it (`migration_runs.execution_id`, the lock's owner). */
  readonly ledgerExecutionId: string;
  /** The JSON-lines event log of the execution. */
  readonly eventLog: string;
}

export interface RunPhaseOptions {
  readonly loaded: LoadedConfig;
  /** The state machine: `assess`, `foundation`, `rollback`. */
  readonly stateMachine: string;
  readonly input: unknown;
  readonly cwd: string;
  /** Called with the loaded definition once, before the run: returns the event listener (progress display). */
  readonly watch?: (definition: LoadedDefinition) => (event: ExecutionEvent) => void;
  readonly timeScale?: number;
  /**
   * The first Ctrl-C is the caller's (`sync --every` finishes the pass in flight, then stops); the second stops the
   * execution, as the first does otherwise.
   */
  readonly graceful?: boolean;
  /** Where the functions' metrics go (a test's list); locally they go nowhere by default. */
  readonly metrics?: MetricsSink;
  /** A sync schedule to enable and disable (a test's stand-in: locally there is none, `sync --every` is the loop). */
  readonly syncSchedule?: SyncSchedule;
  /** Told at the Ctrl-C that stops the execution, before work in flight has stopped (the CLI says what happens). */
  readonly onInterrupt?: () => void;
  /** Events of the executions this one starts and waits for (application's sync passes). */
  readonly onNestedEvent?: (machine: string, event: ExecutionEvent) => void;
}

/** The data state machine's `Copy Level` MaxConcurrency: tables of one level copied at the same time. */
const TABLES_AT_ONCE = 2;

/** Opens the dependencies once for an execution; they are closed when it ends. */
export function openDeps(
  loaded: LoadedConfig,
  cwd: string,
  metrics: MetricsSink = noMetrics,
  syncSchedule?: SyncSchedule,
): Omit<TaskDeps, 'signal'> & { close(): Promise<void> } {
  // In one process every chunk copy in flight shares these pools: up to TABLES_AT_ONCE tables of a level, each
  // with maxConcurrency chunks, each holding a target connection for its transaction; two more for the ledger.
  const connections = { connectionLimit: TABLES_AT_ONCE * loaded.config.chunking.maxConcurrency + 2 };
  // The source is opened read-only at the server: a write there fails, whatever the SQL.
  const source = openSql(loaded.sourceUrl, { ...connections, label: 'source', readOnly: true });
  // Reverse sync's writes to legacy: only the functions granted source:write get it (lambdas/registry.ts).
  const sourceWriter = openSql(
    loaded.config.source.writeUrl === undefined
      ? loaded.sourceUrl
      : parseDatabaseUrl(loaded.config.source.writeUrl),
    { ...connections, label: 'source' },
  );
  const target = openSql(loaded.targetUrl, { ...connections, label: 'target' });
  const targetServer = openSql(withDatabase(loaded.targetUrl, 'information_schema'), {
    label: 'target',
    display: loaded.targetUrl.raw,
  });
  return {
    config: loaded.config,
    sourceUrl: loaded.sourceUrl,
    targetUrl: loaded.targetUrl,
    source,
    sourceWriter,
    // Locally a secret reference is an environment variable (a Secrets Manager ARN cannot be checked here).
    secrets: secretCheck(process.env),
    target,
    targetServer,
    archive: openArchive(loaded.config.archive.url, cwd),
    metrics,
    ...(syncSchedule === undefined ? {} : { syncSchedule }),
    async close() {
      await Promise.all([source.close(), sourceWriter.close(), target.close(), targetServer.close()]);
    },
  };
}

/** What Ctrl-C left: a phase's run resumable with nothing undone; a rollback half-done, to be finished. */
function interruptedCause(stateMachine: string): string {
  return stateMachine === 'rollback'
    ? 'the rollback was stopped by the operator (Ctrl-C) half-way: what it removed stays removed; finish it: npx shifu-migrate rollback'
    : 'stopped by the operator (Ctrl-C); nothing was undone';
}

/**
 * After Ctrl-C: the execution's running runs become `interrupted` (resumable), and its lock is given up. Returns
 * what to say: a run this execution was rolling back is left half-way, to be finished by `rollback`.
 */
async function leaveInterrupted(deps: { target: SqlClient }, owner: string, cause: string): Promise<string> {
  const undoing = await findRuns(deps.target, "execution_id = ? AND status = 'rolling_back'", [owner]);
  if (undoing.length > 0)
    cause =
      'stopped by the operator (Ctrl-C) while its rollback ran, half-way: what it removed stays removed; finish it: npx shifu-migrate rollback';
  const runs = await findRuns(deps.target, "execution_id = ? AND status = 'running'", [owner]);
  for (const run of runs)
    await setRunStatus(deps.target, run.runId, 'interrupted', {
      from: ['running'],
      error: { name: 'Interrupted', message: cause },
    });
  await releaseLock(deps.target, owner);
  return cause;
}

/**
 * An event as the log keeps it: a Map iteration's event without its Map's whole input (a batch of chunks, repeated
 * for every iteration, would make the log grow with the square of a table's size); the iteration's own state events
 * keep theirs.
 */
function forLog(event: ExecutionEvent): unknown {
  if (!('parentState' in event) || typeof event.parentState !== 'object' || event.parentState === null)
    return event;
  const { input: _input, output: _output, ...parent } = event.parentState as Record<string, unknown>;
  return { ...event, parentState: parent };
}

/** Runs one state machine locally, with our handlers, keeping its event log under `.shifu-migrate/executions/`. */
export async function runPhase(options: RunPhaseOptions): Promise<PhaseRun> {
  const deps = openDeps(options.loaded, options.cwd, options.metrics, options.syncSchedule);
  const logDir = join(options.cwd, '.shifu-migrate', 'executions');
  mkdirSync(logDir, { recursive: true });
  const eventLog = join(
    logDir,
    `${options.stateMachine}-${new Date().toISOString().replace(/[:.]/g, '')}-${randomUUID().slice(0, 8)}.jsonl`,
  );
  let stopBeating: (() => void) | undefined;
  try {
    const definition = loadDefinition(options.stateMachine, localSubstitutions());
    const onEvent = options.watch?.(definition);
    const invoke = localInvoker(deps);
    const log = (event: ExecutionEvent) => appendFileSync(eventLog, `${JSON.stringify(forLog(event))}\n`);
    // A nested execution (application's sync passes): run here, its events in the same log, its own heartbeat
    // (the run lock is handed to it while it runs).
    const startExecution = async (machine: string, input: unknown, signal: AbortSignal) => {
      const child = runLocal({
        definition: loadDefinition(machine, localSubstitutions()),
        input,
        invoke,
        archive: deps.archive,
        startExecution,
        ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
        onEvent: (event) => {
          log(event);
          options.onNestedEvent?.(machine, event);
        },
      });
      const stop = keepAlive(deps.target, localExecutionId(child.executionId));
      const abort = () => child.abort();
      signal.addEventListener('abort', abort, { once: true });
      try {
        return await child.result;
      } finally {
        signal.removeEventListener('abort', abort);
        stop();
      }
    };
    const execution = runLocal({
      definition,
      input: options.input,
      invoke,
      archive: deps.archive,
      startExecution,
      ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
      onEvent: (event) => {
        log(event);
        onEvent?.(event);
      },
    });
    // The run lock stays this process's while it runs, between tasks too (waits, retries).
    const ledgerExecutionId = localExecutionId(execution.executionId);
    stopBeating = keepAlive(deps.target, ledgerExecutionId);
    // Ctrl-C: no new work starts, work in flight stops (its transaction rolls back), and the run is left
    // interrupted, resumable, with the lock given up; a second Ctrl-C ends the process at once.
    let interrupted = false;
    let spared = options.graceful !== true;
    const onInterrupt = (): void => {
      if (!spared) {
        spared = true;
        return;
      }
      if (interrupted) process.exit(130);
      interrupted = true;
      options.onInterrupt?.();
      execution.abort();
    };
    process.on('SIGINT', onInterrupt);
    let result: ExecutionResult;
    try {
      result = await execution.result;
    } finally {
      process.removeListener('SIGINT', onInterrupt);
    }
    if (interrupted) {
      const said = interruptedCause(options.stateMachine);
      const cause = await leaveInterrupted(deps, ledgerExecutionId, said).catch(() => said);
      return { ...result, error: 'Interrupted', cause, ledgerExecutionId, eventLog };
    }
    return { ...result, ledgerExecutionId, eventLog };
  } finally {
    stopBeating?.();
    await deps.close();
  }
}
