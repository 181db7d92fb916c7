import { setTimeout as sleep } from 'node:timers/promises';
import { targetHasTable } from './ledger/runs.ts';
import type { SqlClient } from './sql/port.ts';
import { type TaskDeps, throwIfStopping } from './task.ts';

/**
 * New chunk work waits while the migration is paused (`shifu-migrate pause`, a ledger flag) or while either
 * database is busier than `chunking.maxLoad` says (status variables, as pt-online-schema-change and gh-ost do);
 * over `chunking.criticalLoad` the run stops, resumable. Nothing is rolled back: the chunks in flight finish.
 */

/** A server far busier than `chunking.criticalLoad`: the run stops, resumable (`run data` resumes it). */
export class CriticalLoad extends Error {
  override name = 'CriticalLoad';
}

export interface LoadRule {
  readonly variable: string;
  readonly max: number;
}

/** `Threads_running=25,Threads_connected=400` → rules. */
export function parseLoad(text: string | undefined): LoadRule[] {
  if (text === undefined || text === '') return [];
  return text.split(',').map((part) => {
    const [variable = '', max = ''] = part.split('=');
    return { variable: variable.trim(), max: Number(max) };
  });
}

/** How often a waiting chunk looks again. */
const POLL_MS = 1_000;

/** The status variables named by the rules, on one server. */
async function loadOf(client: SqlClient, rules: readonly LoadRule[]): Promise<Map<string, number>> {
  // Every variable, filtered here: SHOW with placeholders is not preparable on every server.
  const names = new Set(rules.map((r) => r.variable.toLowerCase()));
  const rows = await client.query('SHOW GLOBAL STATUS');
  return new Map(
    rows
      .map((r) => [String(r.Variable_name ?? r.VARIABLE_NAME), Number(r.Value ?? r.VALUE)] as const)
      .filter(([name]) => names.has(name.toLowerCase()))
      .map(([name, value]) => [name.toLowerCase(), value]),
  );
}

/** The rules a server breaks now, as `Threads_running 31 > 25 on the target`. */
async function over(deps: TaskDeps, rules: readonly LoadRule[]): Promise<string[]> {
  if (rules.length === 0) return [];
  const broken: string[] = [];
  for (const [side, client] of [
    ['source', deps.source],
    ['target', deps.target],
  ] as const) {
    const load = await loadOf(client, rules);
    for (const rule of rules) {
      const value = load.get(rule.variable.toLowerCase());
      if (value !== undefined && value > rule.max)
        broken.push(`${rule.variable} ${value} > ${rule.max} on the ${side}`);
    }
  }
  return broken;
}

/** Whether the migration is paused, and why. */
export async function pausedNow(deps: Pick<TaskDeps, 'target' | 'targetServer' | 'targetUrl'>) {
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_pause'))) return null;
  const [row] = await deps.target.query(
    "SELECT reason, since FROM migration_pause WHERE name = 'target' AND paused = 1",
  );
  return row === undefined ? null : { reason: String(row.reason ?? ''), since: String(row.since ?? '') };
}

/**
 * Before a chunk's work: waits while paused or over `chunking.maxLoad`, throws {@link CriticalLoad} over
 * `chunking.criticalLoad`. `onWait` hears why it waits (once per reason).
 */
export async function waitForGo(
  deps: TaskDeps,
  what: string,
  stopped: () => Error,
  onWait?: (why: string) => void,
): Promise<void> {
  const maxLoad = parseLoad(deps.config.chunking.maxLoad);
  const critical = parseLoad(deps.config.chunking.criticalLoad);
  let said = '';
  for (;;) {
    throwIfStopping(deps.signal, stopped);
    const tooMuch = await over(deps, critical);
    if (tooMuch.length > 0)
      throw new CriticalLoad(
        `${what} not started: ${tooMuch.join('; ')} (chunking.criticalLoad): the run stops here, resumable, nothing undone. Once the server is calmer: npx shifu-migrate run data`,
      );
    const paused = await pausedNow(deps);
    const busy = paused === null ? await over(deps, maxLoad) : [];
    const why =
      paused !== null
        ? `paused since ${paused.since} UTC${paused.reason === '' ? '' : ` (${paused.reason})`}: npx shifu-migrate resume`
        : busy.length > 0
          ? `${busy.join('; ')} (chunking.maxLoad)`
          : '';
    if (why === '') return;
    if (why !== said) onWait?.(`${what} waits: ${why}`);
    said = why;
    await sleep(POLL_MS, undefined, { signal: deps.signal }).catch(() => undefined);
  }
}
