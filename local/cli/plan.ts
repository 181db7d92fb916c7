import { estimateDataSeconds } from '../../lambdas/assess/assess.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { ident, qualified } from '../../lambdas/core/identifiers.ts';
import { LEDGER_TABLES, TABLE_OPTIONS, TENANT_TABLES } from '../../lambdas/core/ledger/schema.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { planLevels } from '../../lambdas/data/plan.ts';
import { targetCreateStatement } from '../../lambdas/foundation/ddl.ts';
import { MigrationNotReady } from '../../lambdas/foundation/errors.ts';
import { planTables } from '../../lambdas/foundation/foundation.ts';
import { loadDefinition } from '../engine/definition.ts';
import { localSubstitutions } from '../engine/functions.ts';
import { openDeps } from '../run-phase.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';
import { AssessmentNotPassed, assertAssessmentPassed } from './preflight.ts';
import { shortDuration } from './status-line.ts';

export interface PlannedTableView {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
  /** foundation: what it would do to the target table. */
  readonly action?: 'create' | 'exists';
  readonly ddl?: string;
  /** data: the copy's level (a table waits for the tables its tenant comes from), rows and chunks. */
  readonly level?: number;
  readonly rows?: number;
  readonly rowsExact?: boolean;
  readonly chunks?: number;
}

/** Tables counted exactly below this estimate; above, the server's estimate, said as one. */
const EXACT_BELOW = 5_000_000;

/** The top-level steps of a phase's state machine, in the order its happy path takes them. */
function happyPath(phase: string): string[] {
  const definition = loadDefinition(phase, localSubstitutions());
  const states = definition.definition.States as Record<
    string,
    { Type: string; Next?: string; Default?: string; End?: boolean }
  >;
  const steps: string[] = [];
  let at: string | undefined = String(definition.definition.StartAt);
  while (at !== undefined && !steps.includes(at) && steps.length < 50) {
    steps.push(at);
    const state: { Type: string; Next?: string; Default?: string } | undefined = states[at];
    at = state?.Next ?? state?.Default;
  }
  return steps;
}

/**
 * `plan <phase>` (and `run <phase> --dry-run`): what a run of the phase would do, read from the source, the target
 * and the config, with nothing written anywhere: for foundation every CREATE TABLE it would run; for data every
 * table with its level, rows, chunks and an estimated time from a timed sample; for the others, their steps.
 */
export async function runPlanCommand(
  loaded: LoadedConfig,
  phase: string,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    const steps = happyPath(phase);
    const [source] = await deps.source
      .query('SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
        deps.sourceUrl.database,
      ])
      .catch(() => [undefined]);
    if (source === undefined && (phase === 'foundation' || phase === 'data'))
      throw new InputError(
        `the source database ${deps.sourceUrl.database} does not exist on the server source.url names: check source.url (or SOURCE_DATABASE_URL)`,
      );
    const say = (line: string) => (out.json ? out.info(line) : out.result(line));
    say(
      `Plan of ${phase} (${loaded.sourceUrl.database} → ${loaded.targetUrl.database}); nothing is written.`,
    );
    say(`Steps: ${steps.join(' → ')}`);
    const tables: PlannedTableView[] = [];
    let estimate: { seconds: number; basis: string } | null = null;
    let wouldRefuse: string | null = null;
    let uncovered: string[] = [];
    /** data: the interrupted run a start would resume. */
    let resumes: string | null = null;
    if (phase === 'foundation' || phase === 'data') {
      const schema = await introspect(deps.source, deps.sourceUrl.database);
      // Foundation refuses a source table the config says nothing about; the plan says so the same way (exit 2).
      const planned =
        phase === 'foundation'
          ? (() => {
              try {
                return planTables({ ...deps, signal: new AbortController().signal }, schema);
              } catch (error) {
                throw error instanceof MigrationNotReady ? new InputError(error.message) : error;
              }
            })()
          : [];
      const existing = new Set(
        (
          await deps.targetServer.query(
            'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
            [deps.targetUrl.database],
          )
        ).map((r) => str(r, 't')),
      );
      const withTenant = new Set(
        (
          await deps.targetServer.query(
            'SELECT TABLE_NAME AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME = ?',
            [deps.targetUrl.database, 'tenant_bid'],
          )
        ).map((r) => str(r, 't')),
      );
      if (phase === 'foundation') {
        const [database] = await deps.targetServer.query(
          'SELECT 1 AS found FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
          [deps.targetUrl.database],
        );
        if (database === undefined)
          say(
            `CREATE DATABASE IF NOT EXISTS ${ident(deps.targetUrl.database, 'database')} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
          );
        const ledger = LEDGER_TABLES.filter((t) => !existing.has(t.name));
        if (ledger.length > 0)
          say(
            `-- the ledger: ${ledger.length} tables (${ledger.map((t) => t.name).join(', ')}), CREATE TABLE IF NOT EXISTS`,
          );
        for (const t of TENANT_TABLES.filter((t) => !existing.has(t.name)))
          say(`CREATE TABLE ${ident(t.name, 'table')} (\n  ${t.body}\n) ${TABLE_OPTIONS};`);
        for (const p of planned) {
          const info = schema.tables.find((t) => t.name === p.table);
          if (info === undefined) continue;
          if (existing.has(p.table)) {
            tables.push({ table: p.table, mode: p.mode, action: 'exists' });
            say(
              p.mode === 'global' || withTenant.has(p.table)
                ? `-- ${p.table} exists on the target${p.mode === 'tenant' ? ' with tenant_bid' : ''}: left as it is (its columns are checked)`
                : `-- ${p.table} exists on the target without tenant_bid: foundation adds it and its index (online DDL) if the table is empty, else refuses`,
            );
            continue;
          }
          const [row] = await deps.source.query(
            `SHOW CREATE TABLE ${qualified(deps.sourceUrl.database, p.table)}`,
          );
          const { sql, droppedForeignKeys } = targetCreateStatement(
            row === undefined ? '' : str(row, 'Create Table'),
            info,
            p.mode,
          );
          tables.push({ table: p.table, mode: p.mode, action: 'create', ddl: sql });
          say(
            `${sql};${droppedForeignKeys.length > 0 ? `\n-- foreign keys left out: ${droppedForeignKeys.join('; ')}` : ''}`,
          );
        }
      } else {
        const levels = planLevels({ ...deps, signal: new AbortController().signal }, schema.tables);
        const perChunk = loaded.config.chunking.rowsPerChunk;
        say(
          `  ${'table'.padEnd(28)} ${'mode'.padEnd(6)} level ${'rows'.padStart(12)} ${'chunks'.padStart(7)}`,
        );
        for (const [level, group] of levels.entries())
          for (const p of group) {
            const info = schema.tables.find((t) => t.name === p.table);
            const exact = (info?.rowsEstimate ?? 0) < EXACT_BELOW;
            const rows = exact
              ? Number(
                  (
                    await deps.source.query(
                      `SELECT COUNT(*) AS n FROM ${qualified(deps.sourceUrl.database, p.table)}`,
                    )
                  )[0]?.n ?? 0,
                )
              : (info?.rowsEstimate ?? 0);
            const chunks = Math.max(1, Math.ceil(rows / perChunk));
            tables.push({ table: p.table, mode: p.mode, level, rows, rowsExact: exact, chunks });
            say(
              `  ${p.table.padEnd(28)} ${p.mode.padEnd(6)} ${String(level).padStart(5)} ${`${exact ? '' : '~'}${count(rows)}`.padStart(12)} ${count(chunks).padStart(7)}`,
            );
          }
        const measured = await estimateDataSeconds(
          { ...deps, signal: new AbortController().signal },
          schema,
          new Map(tables.map((t) => [t.table, t.rows ?? 0])),
        );
        if (measured !== null)
          estimate = {
            seconds: measured.seconds,
            basis: `${count(measured.sample.rows)} rows of ${measured.sample.table} read in ${Math.round(measured.sample.seconds * 1000)} ms; the copy, checksums, indexes and isolation about six times the reading, parallel chunks helping up to two at once`,
          };
        const totalRows = tables.reduce((n, t) => n + (t.rows ?? 0), 0);
        const totalChunks = tables.reduce((n, t) => n + (t.chunks ?? 0), 0);
        say(
          `${tables.length} tables, ${count(totalRows)} rows in about ${count(totalChunks)} chunks of up to ${count(perChunk)} rows${estimate === null ? '' : `; about ${shortDuration(estimate.seconds)} (an estimate: ${estimate.basis})`}.`,
        );
        const excluded = schema.tables.filter((t) => loaded.config.tables[t.name]?.exclude !== undefined);
        if (excluded.length > 0) say(`Left out (exclude): ${excluded.map((t) => t.name).join(', ')}.`);
        uncovered = schema.tables
          .filter((t) => loaded.config.tables[t.name] === undefined)
          .map((t) => t.name);
        if (uncovered.length > 0)
          say(
            `Not in the config: ${uncovered.join(', ')}. The copy leaves them out; assess blocks on them (say global, tenant or exclude for each).`,
          );
        // What run data checks before it starts: the latest assessment of these databases.
        try {
          say(await assertAssessmentPassed(loaded, cwd));
        } catch (error) {
          if (!(error instanceof AssessmentNotPassed)) throw error;
          wouldRefuse = error.message;
          say(`run data would refuse now: ${error.message}`);
        }
        const [interrupted] = await deps.targetServer
          .query(
            `SELECT run_id FROM ${qualified(deps.targetUrl.database, 'migration_runs')} WHERE phase = 'data' AND status = 'interrupted' ORDER BY started_at DESC LIMIT 1`,
          )
          .catch(() => []);
        resumes = interrupted === undefined ? null : str(interrupted, 'run_id');
        if (interrupted !== undefined && wouldRefuse === null)
          say(
            `An interrupted data run, ${str(interrupted, 'run_id')}, would be resumed: its chunks already copied are skipped (npx shifu-migrate status shows how far it got).`,
          );
      }
    }
    if (wouldRefuse === null) say(`To run it: npx shifu-migrate run ${phase}`);
    return {
      code: 0,
      json: { status: 'PREVIEWED', phase, steps, tables, estimate, wouldRefuse, resumes, uncovered },
    };
  } finally {
    await deps.close();
  }
}
