import { setTimeout as sleep } from 'node:timers/promises';
import {
  DescribeRulesCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { InputError } from '../core/errors.ts';
import { qualified } from '../core/identifiers.ts';
import { reclaimLock, releaseLock } from '../core/ledger/lock.ts';
import { assertRunOwner, beginOwnRollback, beginRun, failStart } from '../core/ledger/phase-run.ts';
import {
  closeAbandonedRuns,
  findRuns,
  nowText,
  RunStopped,
  setRunStatus,
  succeedRun,
  targetHasTable,
} from '../core/ledger/runs.ts';
import { assertSourceIsNotTarget } from '../core/preflight.ts';
import { setSyncSchedule } from '../core/schedule.ts';
import { sourceClock } from '../core/sql/clock.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { followedDataRun } from '../sync/start.ts';
import { ApplicationNotReady, GateClosed, LegacyDropped, NotDrained } from './errors.ts';
import { checkGates, type Gate } from './gates.ts';
import {
  loadBalancerRouter,
  type Route,
  routeGlobal,
  routingTable,
  type TrafficRouter,
  tenantStates,
} from './router.ts';

/**
 * The application phase: tenants switched to the multi-tenant side wave by wave. Per wave: gates (alarms, sync,
 * validation, probes) → the wave's writes paused → a full sync pass drains them (nested execution) → the wave is
 * marked `switched` and routed to the multi-tenant side → bake rounds re-check alarms and probes. Any failure rolls
 * the wave back: paused, reverse-drained by a full sync pass, routed back to legacy, marked `rolled_back`.
 */

export const PHASE = 'application';

/** The load balancer's client: the one the function was given (on AWS, tests), else one for the config's region. */
function loadBalancerClient(deps: TaskDeps): ElasticLoadBalancingV2Client {
  return (
    deps.loadBalancer ??
    new ElasticLoadBalancingV2Client(
      deps.config.aws?.region === undefined ? {} : { region: deps.config.aws.region },
    )
  );
}

/** Where each tenant's requests go: the routing table always, the load balancer when configured. */
export function routers(deps: TaskDeps): TrafficRouter[] {
  const list = [routingTable(deps.target)];
  const lb = deps.config.application.loadBalancer;
  if (lb !== undefined) {
    list.push(loadBalancerRouter(loadBalancerClient(deps), lb, deps.config, deps.target));
  }
  return list;
}

/** Routes tenants: the load balancer first (it may fail), then the routing table the application reads. */
async function route(deps: TaskDeps, runId: string, tenants: readonly string[], to: Route, reason: string) {
  for (const tenant of tenants)
    for (const router of routers(deps).reverse()) await router.apply({ tenant, route: to, runId, reason });
}

/**
 * Before any wave: the load balancer's listener answers (region, credentials, permission), so a switch does not
 * fail half-way on what could be known at the start.
 */
async function checkLoadBalancer(deps: TaskDeps): Promise<void> {
  const lb = deps.config.application.loadBalancer;
  if (lb === undefined) return;
  if (
    deps.loadBalancer === undefined &&
    deps.config.aws?.region === undefined &&
    process.env.AWS_REGION === undefined
  )
    throw new InputError(
      'application.loadBalancer is set, but no AWS region is: set aws.region in the config (or AWS_REGION) to the load balancer’s region',
    );
  const client = loadBalancerClient(deps);
  try {
    await client.send(new DescribeRulesCommand({ ListenerArn: lb.listenerArn, PageSize: 1 }));
  } catch (error) {
    throw new ApplicationNotReady(
      `the load balancer listener ${lb.listenerArn} cannot be read (${(error as Error).name}: ${(error as Error).message}): check application.loadBalancer, the region and the credentials; no route was changed`,
    );
  }
}

/** Rows per tenant on the target, over every table with tenant rules: the default order is smallest first. */
async function tenantSizes(deps: TaskDeps): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const [table, rules] of Object.entries(deps.config.tables)) {
    if (rules.tenant === undefined) continue;
    const rows = await deps.target.query(
      `SELECT tenant_bid, COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)} GROUP BY tenant_bid`,
    );
    for (const r of rows)
      sizes.set(str(r, 'tenant_bid'), (sizes.get(str(r, 'tenant_bid')) ?? 0) + num(r, 'n'));
  }
  return sizes;
}

export interface Wave {
  readonly wave: number;
  readonly tenants: string[];
}

/** The config's waves, or one tenant a wave, smallest first, the default tenant last. */
export async function plannedWaves(deps: TaskDeps): Promise<string[][]> {
  const { waves } = deps.config.application;
  if (waves !== undefined) return waves.map((w) => [...w]);
  const sizes = await tenantSizes(deps);
  const others = deps.config.tenants
    .map((t) => t.bid)
    .filter((b) => b !== deps.config.defaultTenant)
    .sort((a, b) => (sizes.get(a) ?? 0) - (sizes.get(b) ?? 0) || a.localeCompare(b));
  return [...others.map((b) => [b]), [deps.config.defaultTenant]];
}

async function statuses(deps: TaskDeps): Promise<Map<string, string>> {
  const rows = await deps.target.query('SELECT tenant_bid, status FROM tenant_migration_status');
  return new Map(rows.map((r) => [str(r, 'tenant_bid'), str(r, 'status')]));
}

export interface ApplicationStart {
  readonly runId: string;
  /** The waves still to switch (tenants switched already are left out; a wave of none is dropped). */
  readonly waves: Wave[];
  /** Bake rounds per wave: one every 30 s of application.bakeMinutes. */
  readonly bakeRounds: number;
}

/**
 * Start: the source is not the target, a data run copied the tables, the routing state is there; the run lock is
 * taken (never two application runs, nor a phase or sync pass beside it: the phase runs its own sync passes).
 */
export async function startApplication(deps: TaskDeps, execution: string): Promise<ApplicationStart> {
  await assertSourceIsNotTarget(deps);
  await followedDataRun(deps);
  const start = await beginRun(deps.target, 'application', execution, { resumable: false });
  try {
    const status = await statuses(deps);
    const missing = deps.config.tenants.map((t) => t.bid).filter((b) => !status.has(b));
    if (missing.length > 0)
      throw new ApplicationNotReady(
        `tenant_migration_status has no row for ${missing.join(', ')}: run foundation again (it adds the config's tenants)`,
      );
    // A wave switched by a run that ended before its bake did is switched again (paused, drained, baked).
    const baked = new Set(
      (
        await deps.target.query(
          "SELECT tenant_bid FROM tenant_migration_status WHERE status = 'switched' AND baked = 1",
        )
      ).map((r) => str(r, 'tenant_bid')),
    );
    // Runs of this phase whose process died are not resumed: this run takes their waves over.
    await closeAbandonedRuns(deps.target, 'application', start.runId, 'took its waves over');
    if (deps.config.application.loadBalancer !== undefined) await checkLoadBalancer(deps);
    const waves = (await plannedWaves(deps))
      .map((tenants) => tenants.filter((t) => !baked.has(t)))
      .filter((tenants) => tenants.length > 0)
      .map((tenants, i) => ({ wave: i + 1, tenants }));
    return {
      runId: start.runId,
      waves,
      bakeRounds: Math.max(1, Math.ceil((deps.config.application.bakeMinutes * 60) / 30)),
    };
  } catch (error) {
    await failStart(deps.target, { runId: start.runId, resumed: false }, execution, error);
    throw error;
  }
}

/** A task of the run: the lock back from a nested pass that died holding it, then the run checked as ours. */
async function ownRun(deps: TaskDeps, runId: string, execution: string): Promise<void> {
  await reclaimLock(deps.target, { runId, phase: 'application', kind: 'run', owner: execution });
  await assertRunOwner(deps.target, runId, execution);
}

/** The gates before a wave: every one must be open; otherwise the wave stops before any route changes. */
export async function gateWave(
  deps: TaskDeps,
  runId: string,
  execution: string,
  wave: Wave,
): Promise<{ gates: Gate[] }> {
  await ownRun(deps, runId, execution);
  const gates = await checkGates(deps, 'switch');
  await recordGates(deps, runId, wave.wave, 'switch', gates);
  const closed = gates.filter((g) => !g.open);
  if (closed.length > 0)
    throw new GateClosed(
      `wave ${wave.wave} (${wave.tenants.join(', ')}) not switched, no route changed: ${closed.map((g) => `${g.name}: ${g.detail}`).join('; ')}`,
    );
  return { gates };
}

async function recordGates(
  deps: TaskDeps,
  runId: string,
  wave: number,
  when: string,
  gates: readonly Gate[],
): Promise<void> {
  for (const g of gates)
    await deps.target.execute(
      'INSERT INTO migration_application_gates (run_id, wave, checked_for, gate, open, detail, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [runId, wave, when, g.name, g.open ? 1 : 0, g.detail.slice(0, 1000), nowText()],
    );
}

/**
 * The wave's writes wait (route `paused`) while a full sync pass drains them: when it ends, nothing of theirs is
 * on legacy that is not on the target. Returns the source's clock at the pause: the drain must begin after it.
 */
export async function pauseWave(
  deps: TaskDeps,
  runId: string,
  execution: string,
  wave: Wave,
): Promise<{ pausedAt: string }> {
  await ownRun(deps, runId, execution);
  await route(
    deps,
    runId,
    wave.tenants,
    'paused',
    `wave ${wave.wave}: draining forward sync before the switch`,
  );
  await settle(deps);
  return { pausedAt: nowText() };
}

/**
 * After a pause, the writes of requests that read the route just before it commit: the drain begins only once
 * `application.settleSeconds` (longer than the application's longest write request) have passed. Real time, on
 * Lambda and locally alike (it is not a Wait state, which the local runtime scales down).
 */
async function settle(deps: TaskDeps): Promise<void> {
  const ms = deps.config.application.settleSeconds * 1000;
  if (ms > 0) await sleep(ms, undefined, { signal: deps.signal }).catch(() => undefined);
}

/** The last sync pass this run ran succeeded, and began after `since`: what it drained is level. */
async function assertDrained(deps: TaskDeps, runId: string, since: string, what: string): Promise<string> {
  const [pass] = await deps.target.query(
    'SELECT run_id, status, started_at FROM migration_runs WHERE parent_run_id = ? ORDER BY started_at DESC LIMIT 1',
    [runId],
  );
  if (pass === undefined || str(pass, 'status') !== 'succeeded' || str(pass, 'started_at') < since)
    throw new NotDrained(
      `${what}: no sync pass of run ${runId} succeeded after the pause${pass === undefined ? '' : ` (the last, ${str(pass, 'run_id')}, is ${str(pass, 'status')})`}`,
    );
  return str(pass, 'run_id');
}

/** After the drain: the wave is the multi-tenant side's (`switched`), and routed there. */
export async function switchWave(
  deps: TaskDeps,
  runId: string,
  execution: string,
  wave: Wave,
  pausedAt: string,
): Promise<{ drainedBy: string; switchedAt: string }> {
  await ownRun(deps, runId, execution);
  const drainedBy = await assertDrained(deps, runId, pausedAt, `wave ${wave.wave} not switched`);
  const switchedAt = await sourceClock(deps.target);
  const marks = wave.tenants.map(() => '?').join(', ');
  await deps.target.execute(
    `UPDATE tenant_migration_status SET status = 'switched', switched_at = ?, run_id = ?, baked = 0, note = ? WHERE tenant_bid IN (${marks})`,
    [switchedAt, runId, `wave ${wave.wave}`, ...wave.tenants],
  );
  await route(deps, runId, wave.tenants, 'saas', `wave ${wave.wave}: switched, drained by ${drainedBy}`);
  return { drainedBy, switchedAt };
}

/** One bake round: alarms and probes again; after the last, the wave is baked (an alarm no longer undoes it). */
export async function bakeRound(
  deps: TaskDeps,
  runId: string,
  execution: string,
  wave: Wave,
  round: number,
  rounds: number,
): Promise<{ round: number; baked: boolean; syncDue: boolean }> {
  await ownRun(deps, runId, execution);
  const gates = await checkGates(deps, 'bake');
  const closed = gates.filter((g) => !g.open);
  if (closed.length > 0) {
    await recordGates(deps, runId, wave.wave, `bake ${round + 1}`, gates);
    throw new GateClosed(
      `wave ${wave.wave} (${wave.tenants.join(', ')}) failed its bake, round ${round + 1} of ${rounds}: ${closed.map((g) => `${g.name}: ${g.detail}`).join('; ')}`,
    );
  }
  const next = round + 1;
  if (next < rounds) return { round: next, baked: false, syncDue: await syncDue(deps) };
  await recordGates(deps, runId, wave.wave, 'baked', gates);
  await deps.target.execute(
    `UPDATE tenant_migration_status SET baked = 1 WHERE run_id = ? AND status = 'switched' AND tenant_bid IN (${wave.tenants.map(() => '?').join(', ')})`,
    [runId, ...wave.tenants],
  );
  return { round: next, baked: true, syncDue: false };
}

/**
 * Whether a sync pass is due while a wave bakes: the phase holds the lock, so the schedule's passes are refused; it
 * runs one itself (both directions) once `sync.every` has passed since the last pass began.
 */
export async function syncDue(deps: TaskDeps): Promise<boolean> {
  const match = /^(\d+)(m|h)$/.exec(deps.config.sync.every);
  const every = match === null ? 300 : Number(match[1]) * (match[2] === 'h' ? 3_600 : 60);
  const [last] = await deps.target.query(
    "SELECT TIMESTAMPDIFF(SECOND, MAX(started_at), ?) AS ago FROM migration_runs WHERE phase = 'sync' AND status IN ('succeeded', 'running')",
    [nowText()],
  );
  const ago = last === undefined || last.ago === null ? Number.POSITIVE_INFINITY : Number(last.ago);
  return ago >= every;
}

/** Which side serves each tenant now. */
export async function sides(deps: TaskDeps): Promise<{ legacy: string[]; saas: string[]; paused: string[] }> {
  const rows = await deps.target.query(
    "SELECT tenant_bid, target FROM traffic_routing WHERE scope = 'tenant' ORDER BY tenant_bid",
  );
  const by = new Map(rows.map((r) => [str(r, 'tenant_bid'), str(r, 'target')]));
  const all = deps.config.tenants.map((t) => t.bid);
  return {
    legacy: all.filter((t) => (by.get(t) ?? 'legacy') === 'legacy'),
    saas: all.filter((t) => by.get(t) === 'saas'),
    paused: all.filter((t) => by.get(t) === 'paused'),
  };
}

export async function finishApplication(deps: TaskDeps, runId: string, execution: string) {
  await ownRun(deps, runId, execution);
  await succeedRun(deps.target, runId);
  await releaseLock(deps.target, execution, runId);
  return { runId, ...(await sides(deps)) };
}

/** What a rollback undoes, and who holds the lock for it. */
export type RollbackScope =
  | {
      readonly kind: 'own';
      readonly runId: string;
      readonly error?: { Error: string; Cause?: string | undefined };
    }
  | {
      readonly kind: 'runs' | 'phase' | 'tenant';
      readonly rollbackRunId: string;
      readonly runs: readonly string[];
      readonly tenant?: string | undefined;
    };

/**
 * The tenants a rollback takes back to legacy, and their writes paused for the reverse drain:
 * - its own Catch, and the rollback of runs in flight (an alarm): the wave that has not finished baking (switched
 *   by those runs and not baked), and a wave paused before its switch;
 * - `rollback --phase application`: every tenant the multi-tenant side serves;
 * - `rollback --tenant T`: that tenant.
 */
export async function pauseForRollback(
  deps: TaskDeps,
  execution: string,
  scope: RollbackScope,
): Promise<{ runId: string; tenants: string[]; pausedAt: string }> {
  let runId: string;
  // Go-live's own Catch takes every tenant back; an application run's, its wave in flight.
  const golive = scope.kind === 'own' && scope.runId.startsWith('golive-');
  if (scope.kind === 'own') {
    const phase = golive ? 'golive' : 'application';
    await reclaimLock(deps.target, { runId: scope.runId, phase, kind: 'run', owner: execution });
    await beginOwnRollback(deps.target, phase, scope.runId, execution, scope.error);
    runId = scope.runId;
  } else {
    await assertRunOwner(deps.target, scope.rollbackRunId, execution).catch(async (error) => {
      // The rollback state machine's Take Lock made the run; the lock may have come back from a nested pass.
      await reclaimLock(deps.target, {
        runId: scope.rollbackRunId,
        phase: 'application',
        kind: 'rollback',
        owner: execution,
      });
      if ((await findRuns(deps.target, 'run_id = ?', [scope.rollbackRunId], 1))[0]?.status !== 'running')
        throw error;
    });
    runId = scope.rollbackRunId;
  }
  // Taking a tenant back to legacy after go-live reopens the hybrid period: sync runs again, both ways.
  if (scope.kind === 'phase' || scope.kind === 'tenant') await undoGoLive(deps, runId);
  // Go-live's own rollback: the global route too, if its End Sync had moved it.
  if (golive) await routeGlobal(deps.target, runId, 'legacy', `go-live ${runId} rolled back`);
  const states = await tenantStates(deps.target);
  // The runs whose wave in flight goes back: its own, or those the rollback stopped (with --tenant too: a run
  // stopped to free the lock cannot finish its wave).
  const runs = scope.kind === 'own' ? [scope.runId] : [...scope.runs];
  const tenants = states
    .filter((t) => {
      const switched = t.status === 'switched';
      const paused = t.route === 'paused';
      const inFlight = paused || (switched && runs.includes(t.runId ?? '') && !t.baked);
      if (scope.kind === 'tenant') return (t.tenant === scope.tenant && switched) || inFlight;
      if (scope.kind === 'phase' || golive) return switched || paused;
      return inFlight;
    })
    .map((t) => t.tenant);
  await route(deps, runId, tenants, 'paused', 'rollback: draining reverse sync before routing back');
  if (tenants.length > 0) await settle(deps);
  return { runId, tenants, pausedAt: nowText() };
}

/**
 * `rollback --phase application` or `--tenant` after go-live: the go-live is undone (sync runs again, so the reverse
 * drain can carry the multi-tenant side's writes back to legacy, which go-live never dropped); the archive stays as
 * it was. Refused once cleanup-legacy dropped the legacy tables (nothing to route back to).
 */
async function undoGoLive(deps: TaskDeps, rollbackRunId: string): Promise<void> {
  if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_archives')) {
    const dropped = await deps.target.query(
      'SELECT table_name FROM migration_archives WHERE dropped_at IS NOT NULL ORDER BY table_name LIMIT 5',
    );
    if (dropped.length > 0)
      throw new LegacyDropped(
        `cleanup-legacy dropped the legacy tables (${dropped.map((r) => str(r, 'table_name')).join(', ')}…): there is no legacy to route back to; nothing was paused or routed. Restore them first (npx shifu-migrate restore-archive latest --into <the legacy database>), then roll back`,
      );
  }
  // A go-live that finished, or stopped half-way (interrupted, failed, its own rollback dead): never resumed after
  // this, since what it archived and verified no longer holds once tenants went back.
  const undone = await deps.target.execute(
    `UPDATE migration_runs SET status = 'rolled_back', finished_at = ?, error_message = COALESCE(error_message, ?)
      WHERE phase = 'golive' AND status IN ('succeeded', 'interrupted', 'failed', 'rolling_back', 'rollback_failed', 'stopping')`,
    [nowText(), `undone by ${rollbackRunId}: every tenant went back to legacy`],
  );
  if (undone.affectedRows > 0) {
    await routeGlobal(deps.target, rollbackRunId, 'legacy', `go-live undone by ${rollbackRunId}`);
    await setSyncSchedule(deps.syncSchedule, 'ENABLED');
  }
}

/**
 * After the reverse drain: the tenants are legacy's again (`rolled_back`, routed to legacy), and the run ends:
 * its own rollback `rolled_back`; a rollback run succeeded, the application runs it stopped rolled back.
 */
export async function routeBack(
  deps: TaskDeps,
  execution: string,
  scope: RollbackScope,
  runId: string,
  tenants: readonly string[],
  pausedAt: string,
): Promise<{ runId: string; rolledBack: string[]; legacy: string[]; saas: string[]; paused: string[] }> {
  if (tenants.length > 0) await assertDrained(deps, runId, pausedAt, 'not routed back');
  if (tenants.length > 0)
    await deps.target.execute(
      `UPDATE tenant_migration_status SET status = 'rolled_back', baked = 0, note = ? WHERE status = 'switched' AND tenant_bid IN (${tenants.map(() => '?').join(', ')})`,
      [`rolled back by ${runId}`, ...tenants],
    );
  await route(deps, runId, tenants, 'legacy', `rolled back by ${runId}`);
  if (scope.kind === 'own') {
    await setRunStatus(deps.target, runId, 'rolled_back', { from: ['rolling_back'] });
  } else {
    // The application runs it stopped (or found unfinished): their wave in flight went back.
    if (scope.runs.length > 0)
      await deps.target.execute(
        `UPDATE migration_runs SET status = 'rolled_back', finished_at = ? WHERE phase IN ('application', 'golive') AND status IN ('stopping', 'failed', 'interrupted', 'rolling_back', 'rollback_failed') AND run_id IN (${scope.runs.map(() => '?').join(', ')})`,
        [nowText(), ...scope.runs],
      );
    if (!(await setRunStatus(deps.target, runId, 'succeeded', { from: ['running'] })))
      throw new RunStopped(`rollback run ${runId} changed state while it ended`);
  }
  await releaseLock(deps.target, execution, runId);
  return { runId, rolledBack: [...tenants], ...(await sides(deps)) };
}
