import type { ColumnInfo } from '../core/schema/types.ts';
import { insertRows } from '../core/sql/insert.ts';
import { readKeyset } from '../core/sql/keyset.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { rowTenant, unmappedReason } from '../core/tenant/rules.ts';
import { quarantinedKeys } from './compare.ts';
import {
  type CopyJob,
  exactKeyValues,
  type KeyBounds,
  onUnmapped,
  type RunContext,
  referenceRules,
} from './context.ts';
import { ChunkCancelled, UnmappedRows } from './errors.ts';
import { deleteMissingFromSource, dropStaleQuarantine, releaseFromQuarantine, rowKeyText } from './exact.ts';
import { referenceLookups } from './parents.ts';

/**
 * The client-side copy path: rows read in keyset pages, the tenant rules applied in JS (parents' tenants looked
 * up in the target a page at a time), rows written with multi-row upserts, all in the caller's transaction.
 */

/**
 * Rows read per page: a whole chunk (so memory follows the chunk size, never the table's), at most this many;
 * the Data API adapter halves it on its 1 MiB limit.
 */
const MAX_PAGE_ROWS = 2_000;

/** A row as the quarantine keeps it: JSON of every column, binary values as `{ $base64 }`. */
export function rowDataText(columns: readonly ColumnInfo[], row: Row): string {
  return JSON.stringify(
    Object.fromEntries(
      columns.map((c) => {
        const v = row[c.name] ?? null;
        return [c.name, Buffer.isBuffer(v) ? { $base64: v.toString('base64') } : v];
      }),
    ),
  );
}

/** A row's values in the order of `names`, then its tenant: the parameters of one target row. */
function withTenant(names: readonly string[], row: Row, tenant: string): SqlParam[] {
  const values = new Array<SqlParam>(names.length + 1);
  for (let i = 0; i < names.length; i += 1) values[i] = row[names[i] as string] ?? null;
  values[names.length] = tenant;
  return values;
}

/** Types whose values may outgrow a response row (64 KB on the Data API): read in slices when they do. */
const LARGE_TYPES = /^(tiny|medium|long)?(text|blob)$|^json$/;

/** The columns a row too large for one response is read in slices of: large types and long (VAR)CHAR/BINARY. */
export function sliceableColumns(columns: readonly ColumnInfo[]): { name: string; binary: boolean }[] {
  return columns
    .filter((c) => c.isJson || LARGE_TYPES.test(c.dataType) || (c.maxLength ?? 0) > 1024)
    .map((c) => ({ name: c.name, binary: /blob$|binary$/.test(c.dataType) }));
}

export async function copyClientSide(
  deps: TaskDeps,
  target: SqlSession,
  context: RunContext,
  table: string,
  mode: 'tenant' | 'global',
  chunk: KeyBounds,
  { info, key, columns }: CopyJob,
  exact: boolean,
): Promise<{ rows: number; quarantined: number }> {
  const names = columns.map((c) => c.name);
  const references = mode === 'tenant' ? referenceRules(deps.config, table) : [];
  const policy = onUnmapped(deps.config, table);
  // A re-copy: the keys copied, so that what the source no longer has can be removed after the last page.
  const kept = exact ? new Set<string>() : undefined;
  const quarantine =
    exact && mode === 'tenant'
      ? await quarantinedKeys(deps, table, { info, key }, target, { runId: context.runId, n: chunk.n })
      : [];
  let rows = 0;
  let quarantined = 0;
  for await (const page of readKeyset(deps.source, {
    schema: deps.sourceUrl.database,
    table,
    columns: names,
    key,
    after: chunk.after ?? undefined,
    upTo: chunk.upTo ?? undefined,
    pageRows: Math.min(MAX_PAGE_ROWS, deps.config.chunking.rowsPerChunk),
    boundOf: (values) => exactKeyValues(info, key, values),
    sliceable: sliceableColumns(columns),
  })) {
    throwIfStopping(
      deps.signal,
      () => new ChunkCancelled(`${table} chunk ${chunk.n} stopped: the run is stopping`),
    );
    if (mode === 'global') {
      await insertRows(target, {
        table,
        columns: names,
        rows: page.map((r) => names.map((c) => r[c] ?? null)),
        onDuplicate: 'update',
        maxStatementBytes: deps.target.maxStatementBytes,
        prepared: deps.target.preparesStatements,
      });
      if (kept !== undefined) for (const row of page) kept.add(rowKeyText(info, key, row));
      rows += page.length;
      continue;
    }
    // Reference rule → value → tenant: found without building a key text per row.
    const parents = await referenceLookups(deps, target, context, references, page);
    const copied: SqlParam[][] = [];
    const copiedKeys: string[] = [];
    const held: SqlParam[][] = [];
    for (const row of page) {
      // A parent written on the source after its table was copied is not on the target: the row is not copied
      // under a tenant its parent would not give it; it waits (its chunk is left to sync, which copies it after).
      let tenant = rowTenant(deps.config, table, row, parents.lookup);
      if (tenant === null && parents.waits(row)) continue;
      if (tenant === null && policy === 'default') tenant = deps.config.defaultTenant;
      if (tenant === null) {
        const rowKey = rowKeyText(info, key, row);
        if (policy === 'fail')
          throw new UnmappedRows(
            `${table} row ${rowKey} gets no tenant from the rules and onUnmapped is "fail"`,
          );
        held.push([
          context.runId,
          table,
          rowKey,
          unmappedReason(deps.config, table, row),
          rowDataText(columns, row),
          chunk.n,
        ]);
        continue;
      }
      copied.push(withTenant(names, row, tenant));
      if (kept !== undefined) {
        const rowKey = rowKeyText(info, key, row);
        kept.add(rowKey);
        copiedKeys.push(rowKey);
      }
    }
    if (held.length > 0) {
      await insertRows(target, {
        table: 'migration_quarantine',
        columns: ['run_id', 'table_name', 'row_key', 'reason', 'row_data', 'chunk_no'],
        rows: held,
        onDuplicate: 'update',
        updateColumns: ['run_id', 'reason', 'row_data', 'chunk_no'],
        maxStatementBytes: deps.target.maxStatementBytes,
        prepared: deps.target.preparesStatements,
      });
      quarantined += held.length;
    }
    // A row held before that maps now leaves the quarantine as it is copied.
    if (quarantine.length > 0) await releaseFromQuarantine(target, table, copiedKeys);
    await insertRows(target, {
      table,
      columns: [...names, 'tenant_bid'],
      rows: copied,
      onDuplicate: 'update',
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: deps.target.preparesStatements,
    });
    rows += copied.length;
  }
  if (kept !== undefined) {
    await deleteMissingFromSource(deps, target, info, key, chunk, kept);
    if (quarantine.length > 0) await dropStaleQuarantine(deps, target, info, key, chunk, quarantine);
  }
  return { rows, quarantined };
}
