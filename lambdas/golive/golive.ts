import { routeGlobal, tenantStates } from '../application/router.ts';
import { describeHolder, RunLocked, readLock, reclaimLock, releaseLock } from '../core/ledger/lock.ts';
import { assertRunOwner, beginRun, failStart, giveLockBack } from '../core/ledger/phase-run.ts';
import {
  assertNoRollback,
  ensureLedger,
  findRuns,
  nowText,
  setRunStatus,
  succeedRun,
  targetHasTable,
} from '../core/ledger/runs.ts';
import { assertSourceIsNotTarget } from '../core/preflight.ts';
import { setSyncSchedule } from '../core/schedule.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { verifyTarget } from '../data/verify.ts';
import { followedDataRun } from '../sync/start.ts';
import {
  type ArchivePart,
  archivePart,
  finishArchive,
  type PartResult,
  planArchive,
  planTableParts,
} from './archive.ts';
import { GoLiveRefused, HealthCheckFailed } from './errors.ts';
import { type HealthCheck, healthChecks, recordChecks, verificationChecks } from './health.ts';

export const PHASE = 'golive';

/** Verify rounds before go-live gives up: a difference left by a write in flight is drained by another pass. */
export const VERIFY_ROUNDS = 3;

/**
 * Before anything moves (the tenants left are switched first): every refusal go-live has, so that a refused go-live
 * changes nothing. Go-live done already, a rollback in progress, the lock held by another run, quarantined rows or
 * open conflicts the config does not accept.
 */
async function assertMayGoLive(deps: TaskDeps): Promise<void> {
  await assertSourceIsNotTarget(deps);
  await followedDataRun(deps);
  const done = await liveSince(deps);
  if (done !== null)
    throw new GoLiveRefused(
      `go-live ${done} is done already: every tenant is on the multi-tenant side and legacy is archived (npx shifu-migrate status). To go back to legacy: npx shifu-migrate rollback --phase application`,
    );
  await assertNoRollback(deps.target, PHASE);
  await assertNoRollback(deps.target, 'application');
  const holder = await readLock(deps.target);
  if (holder !== null && holder.stale === null)
    throw new RunLocked(
      `the target is locked by ${describeHolder(holder)}: wait for it to end (npx shifu-migrate status), then run golive`,
      holder,
    );
  const open = await unreviewed(deps);
  const { accept } = deps.config.golive;
  const problems = [
    ...(open.quarantined.length > 0 && !accept.quarantined
      ? [
          `rows are quarantined (${open.quarantined.join(', ')}): review them in migration_quarantine (npx shifu-migrate status), fix the rules and run data again, or accept them with golive.accept.quarantined`,
        ]
      : []),
    ...(open.conflicts.length > 0 && !accept.conflicts
      ? [
          `tenant conflicts are open (${open.conflicts.join(', ')}): resolve them (migration_sync_conflicts), or accept them with golive.accept.conflicts`,
        ]
      : []),
  ];
  if (problems.length > 0) throw new GoLiveRefused(`go-live refused: ${problems.join('; ')}`);
}

/**
 * Tenants the multi-tenant side does not serve yet: the application phase switches them first. Every refusal of
 * go-live is checked here, before that switch.
 */
export async function remainingTenants(deps: TaskDeps): Promise<{ remaining: string[] }> {
  await ensureLedger(deps.target);
  await assertMayGoLive(deps);
  return { remaining: await tenantsLeft(deps) };
}

async function tenantsLeft(deps: TaskDeps): Promise<string[]> {
  const states = await tenantStates(deps.target);
  const known = new Set(states.map((s) => s.tenant));
  const remaining = [
    ...states.filter((s) => s.status !== 'switched' || s.route !== 'saas').map((s) => s.tenant),
    ...deps.config.tenants.map((t) => t.bid).filter((b) => !known.has(b)),
  ];
  return remaining;
}

/** The quarantine and open conflicts go-live would leave behind, per table. */
async function unreviewed(deps: TaskDeps): Promise<{ quarantined: string[]; conflicts: string[] }> {
  const count = async (table: string, where: string) =>
    (await targetHasTable(deps.targetServer, deps.targetUrl.database, table))
      ? (
          await deps.target.query(
            `SELECT table_name, COUNT(*) AS n FROM ${table}${where} GROUP BY table_name ORDER BY table_name`,
          )
        ).map((r) => `${str(r, 'table_name')} ${num(r, 'n')}`)
      : [];
  return {
    quarantined: await count('migration_quarantine', ''),
    conflicts: await count('migration_sync_conflicts', ' WHERE resolved_at IS NULL'),
  };
}

/**
 * Start: every tenant is the multi-tenant side's (switched and routed there), no quarantined row or open conflict
 * is left unless the config accepts them; the lock is taken. A run that was interrupted is resumed (its archive
 * parts are kept).
 */
export async function startGoLive(
  deps: TaskDeps,
  execution: string,
): Promise<{
  runId: string;
  /** A resumed run: its archive parts done so far (those are kept). */
  resumed: { chunksDone: number; chunksTotal: number; tablesPlanned: number } | null;
}> {
  await assertSourceIsNotTarget(deps);
  await followedDataRun(deps);
  const start = await beginRun(deps.target, PHASE, execution, { resumable: true });
  const resumed = start.resumed !== null;
  try {
    const remaining = await tenantsLeft(deps);
    if (remaining.length > 0)
      throw new GoLiveRefused(
        `${remaining.join(', ')} ${remaining.length === 1 ? 'is' : 'are'} not served by the multi-tenant side: run application first (npx shifu-migrate run application switches the remaining waves)`,
      );
    // The lock is ours now: the rest of the refusals again, as they may have changed since Start With Tenants Left.
    const done = await liveSince(deps);
    if (done !== null) throw new GoLiveRefused(`go-live ${done} is done already`);
    const open = await unreviewed(deps);
    const { accept } = deps.config.golive;
    if (
      (open.quarantined.length > 0 && !accept.quarantined) ||
      (open.conflicts.length > 0 && !accept.conflicts)
    )
      throw new GoLiveRefused(
        `go-live refused: ${[...(accept.quarantined ? [] : open.quarantined.map((t) => `quarantined ${t}`)), ...(accept.conflicts ? [] : open.conflicts.map((t) => `conflicts ${t}`))].join(', ')} (golive.accept)`,
      );
    if (!resumed) return { runId: start.runId, resumed: null };
    const [parts] = await deps.target.query(
      "SELECT COUNT(*) AS total, COALESCE(SUM(status = 'archived'), 0) AS done, COUNT(DISTINCT table_name) AS tables FROM migration_archive_chunks WHERE run_id = ?",
      [start.runId],
    );
    return {
      runId: start.runId,
      resumed: {
        chunksDone: parts === undefined ? 0 : num(parts, 'done'),
        chunksTotal: parts === undefined ? 0 : num(parts, 'total'),
        tablesPlanned: parts === undefined ? 0 : num(parts, 'tables'),
      },
    };
  } catch (error) {
    await failStart(deps.target, { runId: start.runId, resumed }, execution, error);
    throw error;
  }
}

/** A task of the run: the lock back from a nested pass that died holding it, then the run checked as ours. */
async function ownRun(deps: TaskDeps, runId: string, execution: string): Promise<void> {
  await reclaimLock(deps.target, { runId, phase: PHASE, kind: 'run', owner: execution });
  await assertRunOwner(deps.target, runId, execution);
}

/** The last pass nested under this run succeeded: every write of the switched tenants reached legacy. */
export async function checkDrained(
  deps: TaskDeps,
  runId: string,
  execution: string,
): Promise<{ pass: string; reverseApplied: number }> {
  await ownRun(deps, runId, execution);
  const [pass] = await deps.target.query(
    'SELECT run_id, status FROM migration_runs WHERE parent_run_id = ? ORDER BY started_at DESC LIMIT 1',
    [runId],
  );
  if (pass === undefined || str(pass, 'status') !== 'succeeded')
    throw new GoLiveRefused(
      `the final sync pass of ${runId} did not succeed${pass === undefined ? '' : ` (${str(pass, 'run_id')} is ${str(pass, 'status')})`}`,
    );
  const [applied] = await deps.target.query(
    'SELECT COALESCE(SUM(reverse_applied + reverse_deleted), 0) AS n FROM migration_sync_passes WHERE run_id = ?',
    [str(pass, 'run_id')],
  );
  return { pass: str(pass, 'run_id'), reverseApplied: applied === undefined ? 0 : num(applied, 'n') };
}

/**
 * The full verification: every table's checksum on both sides and its tenant isolation, recorded as checks. A
 * difference (a write made after the drain read its row) sends the run through another drain, up to
 * {@link VERIFY_ROUNDS} rounds; then go-live fails (and rolls back) naming the tables.
 */
export async function verifyGoLive(
  deps: TaskDeps,
  runId: string,
  execution: string,
  round: number,
): Promise<{ round: number; differences: number; tables: string[] }> {
  await ownRun(deps, runId, execution);
  const began = performance.now();
  // Writes the tenants make on the multi-tenant side after the last drain began are theirs, newer than legacy's:
  // left out of the comparison (counted), so steady traffic does not fail go-live.
  const [drain] = await deps.target.query(
    'SELECT source_clock FROM migration_runs WHERE parent_run_id = ? ORDER BY started_at DESC LIMIT 1',
    [runId],
  );
  const since = drain === undefined ? null : strOrNull(drain, 'source_clock');
  const verification = await verifyTarget(deps, since === null ? {} : { changedSince: since });
  const checks = verificationChecks(verification, performance.now() - began);
  const failed = checks.filter((c) => !c.passed);
  const next = round + 1;
  const isolation = failed.filter((c) => c.kind === 'isolation');
  // Isolation is not a matter of time: another drain does not change a row's tenant.
  if (isolation.length > 0 || (failed.length > 0 && next >= VERIFY_ROUNDS)) {
    await recordChecks(deps.target, runId, checks);
    throw new GoLiveRefused(
      `verification failed${isolation.length > 0 ? '' : ` after ${next} rounds`}: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`,
    );
  }
  if (failed.length === 0) await recordChecks(deps.target, runId, checks);
  return {
    round: next,
    differences: failed.length,
    tables: failed.map((c) => c.name.replace(/^checksum /, '')),
  };
}

/** The health verification: every check runs and is recorded; any failed one fails go-live (it rolls back). */
export async function checkHealth(
  deps: TaskDeps,
  runId: string,
  execution: string,
): Promise<{ checks: number; passed: number }> {
  await ownRun(deps, runId, execution);
  const checks: HealthCheck[] = await healthChecks(deps);
  await recordChecks(deps.target, runId, checks);
  const failed = checks.filter((c) => !c.passed);
  deps.metrics.put(PHASE, { HealthChecksFailed: failed.length });
  if (failed.length > 0)
    throw new HealthCheckFailed(
      `${failed.length} of ${checks.length} health checks failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`,
    );
  return { checks: checks.length, passed: checks.length };
}

export async function planGoLiveArchive(deps: TaskDeps, runId: string, execution: string) {
  await ownRun(deps, runId, execution);
  return planArchive(deps, runId);
}

export async function planGoLiveTable(deps: TaskDeps, runId: string, execution: string, table: string) {
  await assertRunOwner(deps.target, runId, execution);
  return planTableParts(deps, runId, table);
}

/**
 * An error that may pass stopped the archive: the run is left interrupted (nothing undone, every tenant still on the
 * multi-tenant side, the parts archived kept) and the lock given up; `run golive` resumes it.
 */
export async function interruptGoLive(
  deps: TaskDeps,
  runId: string,
  execution: string,
  error: { Error: string; Cause?: string | undefined } | undefined,
): Promise<{ runId: string; status: 'interrupted' }> {
  await setRunStatus(deps.target, runId, 'interrupted', {
    from: ['running'],
    ...(error === undefined ? {} : { error: { name: error.Error, message: error.Cause ?? error.Error } }),
  });
  await giveLockBack(deps.target, runId, execution);
  return { runId, status: 'interrupted' };
}

/** A batch of archive parts (a Distributed Map child), one after another. */
export async function archiveParts(
  deps: TaskDeps,
  runId: string,
  execution: string,
  parts: readonly ArchivePart[],
): Promise<{ parts: number; rows: number; bytes: number }> {
  await assertRunOwner(deps.target, runId, execution);
  const done: PartResult[] = [];
  for (const part of parts) done.push(await archivePart(deps, runId, part));
  return {
    parts: done.length,
    rows: done.reduce((s, p) => s + p.rows, 0),
    bytes: done.reduce((s, p) => s + p.bytes, 0),
  };
}

export async function finishGoLiveArchive(deps: TaskDeps, runId: string, execution: string) {
  await ownRun(deps, runId, execution);
  const manifest = await finishArchive(deps, runId);
  return {
    manifest: `legacy-archive/${runId}/manifest.json`,
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((s, t) => s + t.rows, 0),
    bytes: manifest.tables.reduce((s, t) => s + t.bytes, 0),
    objects: manifest.tables.reduce((s, t) => s + t.objects, 0),
  };
}

/**
 * Sync ends: the schedule is disabled (on AWS), and from the run's success on no pass starts (reverse sync
 * stopped: legacy is archived and no longer follows).
 */
export async function endSync(
  deps: TaskDeps,
  runId: string,
  execution: string,
): Promise<{ schedule: string }> {
  await ownRun(deps, runId, execution);
  const schedule = await setSyncSchedule(deps.syncSchedule, 'DISABLED');
  // Global tables, and requests without a tenant of their own, are the multi-tenant side's from now on.
  await routeGlobal(deps.target, runId, 'saas', 'go-live: sync ended, legacy archived');
  return { schedule };
}

/** After the route back of a failed go-live: the sync schedule runs again (legacy owns its tenants). */
export async function resumeSync(deps: TaskDeps): Promise<{ schedule: string }> {
  return { schedule: await setSyncSchedule(deps.syncSchedule, 'ENABLED') };
}

export async function finishGoLive(deps: TaskDeps, runId: string, execution: string) {
  await ownRun(deps, runId, execution);
  await succeedRun(deps.target, runId);
  await releaseLock(deps.target, execution, runId);
  const [checks] = await deps.target.query(
    'SELECT COUNT(*) AS n, COALESCE(SUM(passed), 0) AS passed FROM migration_health_checks WHERE run_id = ?',
    [runId],
  );
  const [archive] = await deps.target.query(
    'SELECT COUNT(*) AS tables, COALESCE(SUM(rows_archived), 0) AS rows_archived, COALESCE(SUM(objects), 0) AS objects, COALESCE(SUM(bytes), 0) AS bytes FROM migration_archives WHERE run_id = ?',
    [runId],
  );
  return {
    runId,
    finishedAt: nowText(),
    checks: checks === undefined ? 0 : num(checks, 'n'),
    passed: checks === undefined ? 0 : num(checks, 'passed'),
    archive: {
      manifest: `legacy-archive/${runId}/manifest.json`,
      location: deps.archive.location,
      tables: archive === undefined ? 0 : num(archive, 'tables'),
      rows: archive === undefined ? 0 : num(archive, 'rows_archived'),
      objects: archive === undefined ? 0 : num(archive, 'objects'),
      bytes: archive === undefined ? 0 : num(archive, 'bytes'),
    },
    /** The final report's key, once Final Report (after this step) wrote it. */
    report: null as { html: string } | null,
  };
}

/** The latest go-live that succeeded and was not undone since: sync stays stopped, cleanup may follow. */
export async function liveSince(deps: Pick<TaskDeps, 'target'>): Promise<string | null> {
  const [run] = await findRuns(deps.target, "phase = 'golive' AND status = 'succeeded'", [], 1);
  return run?.runId ?? null;
}
