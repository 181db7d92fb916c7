import { createInterface } from 'node:readline/promises';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { findRuns, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { num, str } from '../../lambdas/core/sql/rows.ts';
import { withDatabase } from '../../lambdas/core/sql/url.ts';
import { count, type Output } from './output.ts';

/** A terminal to ask on: stdin that is a TTY, where the answer is typed. */
export type Terminal = NodeJS.ReadableStream & { readonly isTTY?: boolean };

/**
 * What a rollback may remove, from the ledger and the target: the runs not rolled back, and the rows now in the
 * migrated tables (the server's estimate) or the objects foundation made. Read-only.
 */
export async function rollbackPreview(loaded: LoadedConfig, phase: string | undefined): Promise<string[]> {
  const url = loaded.targetUrl;
  const server = openSql(withDatabase(url, 'information_schema'), { label: 'target', display: url.raw });
  const target = openSql(url, { label: 'target' });
  try {
    if (!(await targetHasTable(server, url.database, 'migration_runs')))
      return [`${url.database} has no ledger: nothing to roll back.`];
    const runs = await findRuns(
      target,
      "phase <> 'rollback' AND status NOT IN ('rolled_back', 'refused')",
      [],
      20,
    );
    const lines = [
      `Runs not rolled back in ${url.database}: ${runs.length === 0 ? 'none' : runs.map((r) => `${r.runId} (${r.status})`).join(', ')}`,
    ];
    if (phase === undefined || phase === 'data') {
      const tables = Object.entries(loaded.config.tables)
        .filter(([, rules]) => rules.exclude === undefined)
        .map(([name]) => name);
      const rows =
        tables.length === 0
          ? []
          : await server.query(
              `SELECT TABLE_NAME AS name, TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (${tables.map(() => '?').join(', ')}) ORDER BY TABLE_NAME`,
              [url.database, ...tables],
            );
      const total = rows.reduce((sum, r) => sum + num(r, 'n'), 0);
      lines.push(
        `The data rollback empties the ranges the data runs copied: about ${count(total)} rows now in ${rows.length} tables${rows.length === 0 ? '' : ` (${rows.map((r) => `${str(r, 'name')} ~${count(num(r, 'n'))}`).join(', ')})`}.`,
      );
    }
    if (phase === 'application' && (await targetHasTable(server, url.database, 'tenant_migration_status'))) {
      const switched = (
        await target.query(
          "SELECT tenant_bid FROM tenant_migration_status WHERE status = 'switched' ORDER BY tenant_bid",
        )
      ).map((r) => str(r, 'tenant_bid'));
      lines.push(
        `The application rollback pauses the writes of ${switched.length === 0 ? 'no switched tenant' : switched.join(', ')} (all, or the one named), drains them back to legacy, and routes them there.`,
      );
    }
    if (phase === undefined || phase === 'foundation') {
      const [made] = (await targetHasTable(server, url.database, 'migration_ddl'))
        ? await target.query('SELECT COUNT(*) AS n FROM migration_ddl WHERE rolled_back_at IS NULL')
        : [];
      lines.push(
        `The foundation rollback drops what foundation created and has not undone: ${count(made === undefined ? 0 : num(made, 'n'))} objects (tables, columns, indexes); it refuses while they hold data.`,
      );
    }
    return lines;
  } finally {
    await target.close();
    await server.close();
  }
}

/**
 * Asks before a rollback removes anything: with `--yes`, no question; on a terminal, what it may remove and a
 * question (anything but y or yes is no); without a terminal and without `--yes`, refused (exit 2).
 */
export async function confirmRollback(
  loaded: LoadedConfig,
  phase: string | undefined,
  options: { yes: boolean; stdin: Terminal | undefined; out: Output; prompt: NodeJS.WritableStream },
): Promise<boolean> {
  if (options.yes) return true;
  if (options.stdin?.isTTY !== true)
    throw new InputError(
      `rollback removes what the phases wrote to ${loaded.targetUrl.database}: run it on a terminal to see what and confirm, or pass --yes`,
    );
  for (const line of await rollbackPreview(loaded, phase)) options.out.info(line);
  const ask = createInterface({ input: options.stdin, output: options.prompt, terminal: false });
  try {
    const answer = await ask.question(
      `Roll back ${phase ?? 'the phase in flight'} on ${loaded.targetUrl.database}? [y/N] `,
    );
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    ask.close();
  }
}
