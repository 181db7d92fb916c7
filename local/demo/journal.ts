import type { Config } from '../../lambdas/core/config/schema.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import type { Journal } from './traffic.ts';

export interface JournalCheck {
  /** Rows the simulator wrote (its last write of each). */
  readonly rows: number;
  /** Of those, on the side that owns them now: as written (or gone, when deleted). */
  readonly kept: number;
  /** Rows whose last write is not on the owning side: what, where, and what was found instead. */
  readonly lost: { readonly row: string; readonly side: 'legacy' | 'saas'; readonly found: string }[];
}

/**
 * Every write the simulator made, looked for where it must be: on the side that owns the row's tenant now (the
 * routing table; a row the target does not hold, or of a tenant legacy owns, is legacy's), by plain SELECTs of the
 * columns it set: none of the product's checksums or ledger is read. Legacy ∪ target by ownership must equal the
 * journal.
 */
export async function checkJournal(
  journal: Journal,
  sides: {
    readonly legacy: SqlClient;
    readonly legacyDb: string;
    readonly target: SqlClient;
    readonly targetDb: string;
  },
  config: Pick<Config, 'tables'>,
): Promise<JournalCheck> {
  const routes = new Map(
    (
      await sides.target.query(
        `SELECT tenant_bid, target FROM ${qualified(sides.targetDb, 'traffic_routing')} WHERE scope = 'tenant'`,
      )
    ).map((r) => [str(r, 'tenant_bid'), str(r, 'target')]),
  );
  const lost: JournalCheck['lost'][number][] = [];
  let kept = 0;
  for (const [row, last] of journal) {
    const [table = '', id = ''] = row.split(':');
    const columns = Object.keys(last.values);
    // A global table's rows are legacy's until go-live.
    const [onTarget] =
      config.tables[table]?.tenant === undefined
        ? []
        : await sides.target.query(
            `SELECT tenant_bid FROM ${qualified(sides.targetDb, table)} WHERE id = ?`,
            [id],
          );
    const tenant = onTarget === undefined ? null : str(onTarget, 'tenant_bid');
    const side = tenant !== null && routes.get(tenant) === 'saas' ? 'saas' : 'legacy';
    const [client, database] =
      side === 'saas' ? [sides.target, sides.targetDb] : [sides.legacy, sides.legacyDb];
    const [found] = await client.query(
      `SELECT ${['id', ...columns].map((c) => `CAST(\`${c}\` AS CHAR) AS \`${c}\``).join(', ')} FROM ${qualified(database, table)} WHERE id = ?`,
      [id],
    );
    if (last.deleted) {
      if (found === undefined) kept += 1;
      else lost.push({ row, side, found: 'the row, which the simulator deleted' });
      continue;
    }
    if (found === undefined) {
      lost.push({ row, side, found: 'no row' });
      continue;
    }
    const differ = columns.filter((c) => strOrNull(found, c) !== last.values[c]);
    if (differ.length === 0) kept += 1;
    else
      lost.push({
        row,
        side,
        found: differ
          .map(
            (c) => `${c} ${JSON.stringify(strOrNull(found, c))}, written ${JSON.stringify(last.values[c])}`,
          )
          .join('; '),
      });
  }
  return { rows: journal.size, kept, lost };
}
