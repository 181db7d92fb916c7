import { type CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import type { Config } from '../core/config/schema.ts';
import { targetHasTable } from '../core/ledger/runs.ts';
import { sameServer } from '../core/preflight.ts';
import type { SqlClient } from '../core/sql/port.ts';
import { num, numOrNull, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';

/**
 * The gates a wave passes before its switch, and its bake rounds after: each named, with what it saw. A wave
 * switches only when every gate is open; a bake round fails on the first closed alarm or probe.
 */
export interface Gate {
  readonly name: string;
  readonly open: boolean;
  readonly detail: string;
}

/** Alarms in ALARM, wherever they are kept: the ledger's (`alarm raise`), and CloudWatch's on AWS. */
export interface AlarmWatch {
  firing(): Promise<{ readonly name: string; readonly reason: string }[]>;
}

/**
 * CloudWatch alarms in ALARM: the stack's own (their names begin with the stack's name: failed phases, checksum
 * mismatches, sync lag, undelivered events) and the operator's (`aws.rollbackOnAlarms`, by name; at most 100 a
 * request).
 */
export function cloudWatchAlarms(
  client: CloudWatchClient,
  watch: { readonly prefix: string; readonly names: readonly string[] },
): AlarmWatch {
  const requests = [
    { AlarmNamePrefix: watch.prefix },
    ...Array.from({ length: Math.ceil(watch.names.length / 100) }, (_, i) => ({
      AlarmNames: watch.names.slice(i * 100, i * 100 + 100),
    })),
  ];
  return {
    async firing() {
      const found = new Map<string, string>();
      for (const request of requests) {
        let token: string | undefined;
        do {
          const page = await client.send(
            new DescribeAlarmsCommand({
              ...request,
              StateValue: 'ALARM',
              ...(token === undefined ? {} : { NextToken: token }),
            }),
          );
          for (const a of [...(page.MetricAlarms ?? []), ...(page.CompositeAlarms ?? [])])
            found.set(a.AlarmName ?? '', a.StateReason ?? '');
          token = page.NextToken;
        } while (token !== undefined);
      }
      return [...found].map(([name, reason]) => ({ name, reason }));
    },
  };
}

async function alarmsGate(deps: TaskDeps): Promise<Gate> {
  const firing: string[] = [];
  if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_alarms'))
    for (const r of await deps.target.query(
      "SELECT name FROM migration_alarms WHERE state = 'ALARM' ORDER BY changed_at, name",
    ))
      firing.push(str(r, 'name'));
  for (const a of (await deps.alarms?.firing()) ?? []) firing.push(a.name);
  return {
    name: 'alarms',
    open: firing.length === 0,
    detail: firing.length === 0 ? 'none in ALARM' : `in ALARM: ${firing.join(', ')}`,
  };
}

/**
 * The last sync pass that ended (scheduled, or run by this phase) succeeded, and every table's lag, both ways, is in
 * bound. A pass interrupted (its process died, an error that may pass) did not end: the one before it counts.
 */
async function syncGate(deps: TaskDeps): Promise<Gate> {
  const bound = deps.config.application.maxLagSeconds;
  const [last] = await deps.target.query(
    // A pass whose execution died (closed RunAbandoned) did not end either.
    "SELECT run_id, status FROM migration_runs WHERE phase = 'sync' AND status IN ('succeeded', 'failed') AND COALESCE(error_name, '') <> 'RunAbandoned' ORDER BY started_at DESC LIMIT 1",
  );
  if (last === undefined)
    return {
      name: 'sync',
      open: false,
      detail: 'no sync pass has run: run sync (npx shifu-migrate run sync)',
    };
  const runId = str(last, 'run_id');
  if (str(last, 'status') !== 'succeeded')
    return { name: 'sync', open: false, detail: `the last sync pass ${runId} is ${str(last, 'status')}` };
  const rows = await deps.target.query(
    'SELECT table_name, lag_seconds, reverse_lag_seconds FROM migration_sync_passes WHERE run_id = ?',
    [runId],
  );
  const over = rows.flatMap((r) => {
    const lag = Math.max(numOrNull(r, 'lag_seconds') ?? 0, numOrNull(r, 'reverse_lag_seconds') ?? 0);
    return lag > bound ? [`${str(r, 'table_name')} ${lag} s`] : [];
  });
  return {
    name: 'sync',
    open: over.length === 0,
    detail:
      over.length === 0
        ? `last pass ${runId}: every table's lag at most ${bound} s`
        : `last pass ${runId}: lag over application.maxLagSeconds (${bound} s): ${over.join(', ')}`,
  };
}

/**
 * The copy validated: the followed data run succeeded (every chunk's count and checksum, tenant isolation). Chunks
 * a sync pass found changing under live traffic are not a failure: the drain before the switch levels the wave's
 * rows, with its writes paused.
 */
async function validationGate(deps: TaskDeps): Promise<Gate> {
  const [data] = await deps.target.query(
    "SELECT run_id, status FROM migration_runs WHERE phase = 'data' AND status <> 'refused' ORDER BY started_at DESC LIMIT 1",
  );
  if (data === undefined || str(data, 'status') !== 'succeeded')
    return {
      name: 'validation',
      open: false,
      detail:
        data === undefined
          ? 'no data run has copied the tables'
          : `the latest data run ${str(data, 'run_id')} is ${str(data, 'status')}`,
    };
  return {
    name: 'validation',
    open: true,
    detail: `data run ${str(data, 'run_id')} validated every chunk and tenant isolation`,
  };
}

/**
 * Ids the two sides allocate never meet: each server allocates AUTO_INCREMENT ids from its own series (the same
 * auto_increment_increment of at least 2, different offsets), so a row the multi-tenant application creates reaches
 * legacy with its id, and neither side's next id is one the other has used. `application.idSeries: "sessions"`
 * says the application's sessions set it themselves (the check then cannot see it, and says so). Assess reports it
 * too, as a warning.
 */
export async function idSeries(
  source: SqlClient,
  target: SqlClient,
  config: Pick<Config, 'application'>,
): Promise<{ readonly open: boolean; readonly detail: string }> {
  if (config.application.idSeries === 'sessions')
    return {
      open: true,
      detail:
        "not checked: application.idSeries is 'sessions' (the application's sessions set their own series)",
    };
  const read = async (session: SqlClient) => {
    const [row] = await session.query(
      'SELECT @@GLOBAL.auto_increment_increment AS step, @@GLOBAL.auto_increment_offset AS first',
    );
    return { step: num(row ?? {}, 'step'), offset: num(row ?? {}, 'first') };
  };
  const [legacy, saas] = await Promise.all([read(source), read(target)]);
  const problems: string[] = [];
  if (await sameServer(target, source))
    problems.push('both databases are on one server, whose settings are one');
  if (legacy.step < 2 || saas.step < 2 || legacy.step !== saas.step)
    problems.push(
      `auto_increment_increment is ${legacy.step} on legacy and ${saas.step} on the multi-tenant side (both must be the same, at least 2)`,
    );
  else if (legacy.offset % legacy.step === saas.offset % saas.step)
    problems.push(
      `auto_increment_offset is ${legacy.offset} on legacy and ${saas.offset} on the multi-tenant side (they must differ)`,
    );
  return problems.length === 0
    ? {
        open: true,
        detail: `legacy allocates ids ${legacy.offset} + ${legacy.step}n, the multi-tenant side ${saas.offset} + ${saas.step}n`,
      }
    : {
        open: false,
        detail: `${problems.join('; ')}: set auto_increment_increment = 2 on both servers, auto_increment_offset = 1 on legacy and 2 on the multi-tenant side (docs/routing.md), or set application.idSeries to "sessions" if the application's sessions do it`,
      };
}

async function idSeriesGate(deps: TaskDeps): Promise<Gate> {
  return { name: 'id series', ...(await idSeries(deps.source, deps.target, deps.config)) };
}

/** One health probe: GET, within its latency bound, answering the expected status (and text). */
export async function probe(p: {
  readonly name: string;
  readonly url: string;
  readonly expectStatus: number;
  readonly bodyIncludes?: string | undefined;
  readonly timeoutMs: number;
}): Promise<Gate> {
  const name = `probe ${p.name}`;
  const began = performance.now();
  try {
    const response = await fetch(p.url, { signal: AbortSignal.timeout(p.timeoutMs), redirect: 'manual' });
    const body = await response.text();
    const ms = Math.round(performance.now() - began);
    if (response.status !== p.expectStatus)
      return {
        name,
        open: false,
        detail: `${p.url} answered ${response.status}, not ${p.expectStatus} (${ms} ms)`,
      };
    if (p.bodyIncludes !== undefined && !body.includes(p.bodyIncludes))
      return {
        name,
        open: false,
        detail: `${p.url} answered without ${JSON.stringify(p.bodyIncludes)} (${ms} ms)`,
      };
    return { name, open: true, detail: `${p.url} answered ${response.status} in ${ms} ms` };
  } catch (error) {
    const e = error as Error;
    const reason =
      e.name === 'TimeoutError'
        ? `no answer within ${p.timeoutMs} ms`
        : (e.cause as Error)?.message || e.message;
    return { name, open: false, detail: `${p.url}: ${reason}` };
  }
}

/** The gates before a switch (every one), or of a bake round (alarms and probes). */
export async function checkGates(deps: TaskDeps, which: 'switch' | 'bake'): Promise<Gate[]> {
  const gates = [await alarmsGate(deps)];
  if (which === 'switch')
    gates.push(await syncGate(deps), await validationGate(deps), await idSeriesGate(deps));
  gates.push(...(await Promise.all(deps.config.application.probes.map(probe))));
  return gates;
}
