import { rangeCondition, rowHashExpression } from '../core/checksum.ts';
import { ident, qualified } from '../core/identifiers.ts';
import type { Row, SqlParam, SqlSession, SqlValue } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { quarantinedKeys } from './compare.ts';
import { type CopyJob, exactKeyValues, type KeyBounds } from './context.ts';
import { keyIn, rowKeyText } from './exact.ts';

/**
 * Row-level looks at a chunk that still differs after an exact re-copy, on a source that is being written: which
 * rows differ, and whether a difference is the source moving on (left to sync) or the target not holding what was
 * written to it (a defect).
 */

/** A row that differs: its key, and each side's row hash (null: no such row). */
export interface DifferingRow {
  readonly key: SqlParam[];
  readonly source: string | null;
  readonly target: string | null;
}

/** Rows that differ, by key text (rowKeyText). */
export type RowDiff = Map<string, DifferingRow>;

/** One row's hash per key text, on one side: rows of `where` (a condition on alias `a`). */
export async function rowHashes(
  session: SqlSession,
  database: string,
  job: Pick<CopyJob, 'info' | 'key' | 'columns'>,
  where: { sql: string; params: SqlParam[] },
): Promise<Map<string, { readonly key: SqlParam[]; readonly hash: string }>> {
  const { info, key, columns } = job;
  const rows = await session.query(
    `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')}, ${rowHashExpression(columns, 'a')} AS row_hash
       FROM ${qualified(database, info.name)} a WHERE ${where.sql}`,
    where.params,
  );
  return new Map(
    rows.map((row) => [
      rowKeyText(info, key, row),
      {
        key: exactKeyValues(
          info,
          key,
          key.map((k) => row[k] ?? null),
        ),
        hash: str(row, 'row_hash'),
      },
    ]),
  );
}

/**
 * The rows of a chunk that differ, compared by row hash (quarantined rows, absent from the target on purpose, left
 * out); with `only`, just those keys.
 */
export async function diffRows(
  deps: TaskDeps,
  job: CopyJob,
  chunk: KeyBounds,
  only?: readonly (readonly SqlParam[])[],
): Promise<RowDiff> {
  const { info, key } = job;
  const held = new Set(
    (await quarantinedKeys(deps, info.name, job, deps.target, { runId: job.runId, n: chunk.n })).map(
      (q) => q.text,
    ),
  );
  const where = only === undefined ? rangeCondition(key, chunk, 'a') : keyIn(key, only, 'a');
  const [source, target] = await Promise.all([
    rowHashes(deps.source, deps.sourceUrl.database, job, where),
    rowHashes(deps.target, deps.targetUrl.database, job, where),
  ]);
  const diff: RowDiff = new Map();
  for (const [k, s] of source) {
    if (held.has(k)) continue;
    const t = target.get(k)?.hash ?? null;
    if (t !== s.hash) diff.set(k, { key: s.key, source: s.hash, target: t });
  }
  for (const [k, t] of target) if (!source.has(k)) diff.set(k, { key: t.key, source: null, target: t.hash });
  return diff;
}

function sameValue(a: SqlValue | undefined, b: SqlValue | undefined): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return (a ?? null) === (b ?? null);
}

/**
 * Of rows that differ although their source hash was the same at two looks, the ones the target really gets wrong.
 * A row the source merely flipped and flipped back (A → B → A between the looks) also looks unchanged, so each is
 * put to the test that does not depend on the source standing still: its source values are read now and written to
 * the target row (tenant_bid kept), and the target row read back must hold exactly those values. A row missing on
 * one side is copied again (`recopy`) and looked at once more. Returns the keys that fail.
 */
export async function confirmDefects(
  deps: TaskDeps,
  job: CopyJob,
  chunk: KeyBounds,
  suspects: readonly DifferingRow[],
  recopy: () => Promise<unknown>,
): Promise<string[]> {
  const { info, key, columns } = job;
  const names = columns.map((c) => c.name);
  const select = (alias: string) => names.map((n) => `${alias}.${ident(n)}`).join(', ');
  const defects: string[] = [];
  const both = suspects.filter((s) => s.source !== null && s.target !== null);
  const oneSided = suspects.filter((s) => s.source === null || s.target === null);
  for (let i = 0; i < both.length; i += 500) {
    const slice = both.slice(i, i + 500).map((s) => s.key);
    const where = keyIn(key, slice, 'a');
    const now = await deps.source.query(
      `SELECT ${select('a')} FROM ${qualified(deps.sourceUrl.database, info.name)} a WHERE ${where.sql}`,
      where.params,
    );
    const nonKey = names.filter((n) => !key.includes(n));
    for (const row of now) {
      const values = nonKey.map((n) => row[n] ?? null);
      const at = keyIn(
        key,
        [
          exactKeyValues(
            info,
            key,
            key.map((k) => row[k] ?? null),
          ),
        ],
        't',
      );
      if (nonKey.length > 0) {
        await deps.target.execute(
          `UPDATE ${qualified(deps.targetUrl.database, info.name)} t SET ${nonKey.map((n) => `t.${ident(n)} = ?`).join(', ')} WHERE ${at.sql}`,
          [...values, ...at.params],
        );
      }
      const [back] = await deps.target.query(
        `SELECT ${select('t')} FROM ${qualified(deps.targetUrl.database, info.name)} t WHERE ${at.sql}`,
        at.params,
      );
      const written = back as Row | undefined;
      if (written === undefined || names.some((n) => !sameValue(written[n], row[n])))
        defects.push(rowKeyText(info, key, row));
    }
  }
  if (oneSided.length > 0) {
    await recopy();
    const again = await diffRows(
      deps,
      job,
      chunk,
      oneSided.map((s) => s.key),
    );
    for (const s of oneSided) {
      const k = rowKeyText(info, key, Object.fromEntries(key.map((c, i) => [c, s.key[i] ?? null])));
      const now = again.get(k);
      if (now !== undefined && now.source === s.source) defects.push(k);
    }
  }
  return defects;
}
