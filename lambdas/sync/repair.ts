import { ident, qualified } from '../core/identifiers.ts';
import { fenceRun } from '../core/ledger/phase-run.ts';
import { nowText } from '../core/ledger/runs.ts';
import { insertRows } from '../core/sql/insert.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { asText, rowTenant, unmappedReason } from '../core/tenant/rules.ts';
import {
  type CopyJob,
  copyKey,
  exactKeyValues,
  lookupColumns,
  onUnmapped,
  type RunContext,
  referenceRules,
} from '../data/context.ts';
import { rowDataText } from '../data/copy-client.ts';
import { UnmappedRows } from '../data/errors.ts';
import { keyIn, rowKeyText } from '../data/exact.ts';
import { referenceLookups } from '../data/parents.ts';
import { rowHashes } from '../data/recheck.ts';
import { TenantChangeConflict } from './errors.ts';

/**
 * Key-by-key repair, pt-table-sync's method across a transformed target: the rows of a set of keys are hashed on
 * both sides, and each that differs is made what the source says now, with its tenant by the same rules as `data`:
 * inserted when the target lacks it, updated when it differs, deleted when the source no longer has it. A row whose
 * tenant would change is never moved: it is a conflict (migration_sync_conflicts), left as the target has it, or
 * the pass fails (`sync.onTenantChange`). Rows of a tenant the target owns (switched) are never touched on the
 * target: with a writer on legacy (`source:write`), they go the other way (reverse sync): legacy is made what the
 * target holds, inserts, updates and deletes, without tenant_bid and with the same keys.
 */

/** Keys per statement: a few hundred rows of the widest table stay far inside a response's 1 MiB. */
const KEYS_PER_READ = 200;

/**
 * Keys whose rows differ between the sides, within `where` (a key range, or a list of keys): compared by row hash,
 * read on both sides at once. With `leaveOut` (reconciliation), a quarantined row (absent from the target on
 * purpose) and a row in an open tenant conflict (left as it is on purpose) do not count; without it (catch-up saw
 * them change), they do: the rules may map them now.
 */
export async function differingKeys(
  deps: TaskDeps,
  job: CopyJob,
  /** A condition on alias `a`: a key range, or a list of keys. */
  where: { sql: string; params: SqlParam[] },
  leaveOut?: { readonly held: ReadonlySet<string>; readonly conflicts: ReadonlySet<string> },
): Promise<SqlParam[][]> {
  const [source, target] = await Promise.all([
    rowHashes(deps.source, deps.sourceUrl.database, job, where),
    rowHashes(deps.target, deps.targetUrl.database, job, where),
  ]);
  const differ: SqlParam[][] = [];
  for (const [k, s] of source) {
    const t = target.get(k);
    if (leaveOut?.conflicts.has(k) || (t === undefined && leaveOut?.held.has(k))) continue;
    if (t?.hash !== s.hash) differ.push(s.key);
  }
  for (const [k, t] of target) if (!source.has(k) && !leaveOut?.conflicts.has(k)) differ.push(t.key);
  return differ;
}

export interface RepairCounts {
  /** Rows inserted or updated. */
  applied: number;
  deleted: number;
  quarantined: number;
  /** Rows whose tenant would change: left as they are. */
  conflicts: number;
  /** Rows of a tenant the target owns now: left to reverse sync. */
  owned: number;
  /** Rows whose parent the source has but the target not yet (written after its table's turn): the next pass. */
  waiting: number;
  /** Reverse sync: legacy rows inserted or updated from the target (tenants the target owns). */
  reverseApplied: number;
  /** Reverse sync: legacy rows deleted because the target deleted them. */
  reverseDeleted: number;
}

export const noRepairs = (): RepairCounts => ({
  applied: 0,
  deleted: 0,
  quarantined: 0,
  conflicts: 0,
  owned: 0,
  waiting: 0,
  reverseApplied: 0,
  reverseDeleted: 0,
});

export function addCounts(a: RepairCounts, b: RepairCounts): RepairCounts {
  return {
    applied: a.applied + b.applied,
    deleted: a.deleted + b.deleted,
    quarantined: a.quarantined + b.quarantined,
    conflicts: a.conflicts + b.conflicts,
    owned: a.owned + b.owned,
    waiting: a.waiting + b.waiting,
    reverseApplied: a.reverseApplied + b.reverseApplied,
    reverseDeleted: a.reverseDeleted + b.reverseDeleted,
  };
}

/** Tenants whose writes the multi-tenant side owns (switched by the application phase): sync leaves them be. */
export async function tenantsOwnedByTarget(session: SqlSession): Promise<Set<string>> {
  const rows = await session.query(
    "SELECT tenant_bid FROM tenant_migration_status WHERE status = 'switched'",
  );
  return new Set(rows.map((r) => str(r, 'tenant_bid')));
}

/**
 * For a table other tables look rows up in (by `lookupColumns`): a function giving, for a source row, the tenants of
 * the target's other rows that share one of its lookup values.
 */
async function siblingTenants(
  deps: TaskDeps,
  tx: SqlSession,
  job: CopyJob,
  rows: readonly Row[],
): Promise<(row: Row, rowKey: string) => string[]> {
  const { info, key } = job;
  const columns = lookupColumns(deps.config, info.name);
  const found = new Map<string, { rowKey: string; tenant: string }[]>();
  for (const column of columns) {
    const values = [
      ...new Set(
        rows.map((r) => asText(r[column] ?? null)).filter((v): v is string => v !== null && v !== ''),
      ),
    ];
    if (values.length === 0) continue;
    const present = await tx.query(
      `SELECT a.${ident(column)} AS v, a.tenant_bid, ${key.map((k) => `a.${ident(k)}`).join(', ')} FROM ${qualified(deps.targetUrl.database, info.name)} a WHERE a.${ident(column)} IN (${values.map(() => '?').join(', ')})`,
      values,
    );
    for (const p of present) {
      const at = `${column}\u0000${asText(p.v ?? null) ?? ''}`;
      const list = found.get(at) ?? [];
      list.push({ rowKey: rowKeyText(info, key, p), tenant: str(p, 'tenant_bid') });
      found.set(at, list);
    }
  }
  return (row, rowKey) =>
    columns.flatMap((column) =>
      (found.get(`${column}\u0000${asText(row[column] ?? null) ?? ''}`) ?? [])
        .filter((s) => s.rowKey !== rowKey)
        .map((s) => s.tenant),
    );
}

/**
 * Rows of other tables, already on the target, that follow these arriving rows' lookup values (a reference rule to
 * this table) and hold another tenant than the arriving row's: conflict rows (table, key, their tenant, the new one).
 */
async function childConflicts(
  deps: TaskDeps,
  tx: SqlSession,
  context: RunContext,
  table: string,
  arriving: readonly { row: Row; tenant: string }[],
  now: string,
): Promise<SqlParam[][]> {
  const found: SqlParam[][] = [];
  if (arriving.length === 0) return found;
  for (const child of Object.keys(deps.config.tables)) {
    const info = context.tables.get(child);
    if (info === undefined || deps.config.tables[child]?.exclude !== undefined) continue;
    for (const rule of referenceRules(deps.config, child).filter((r) => r.references.table === table)) {
      const tenantOf = new Map<string, string>();
      for (const { row, tenant } of arriving) {
        const v = asText(row[rule.references.column] ?? null);
        if (v !== null && v !== '') tenantOf.set(v, tenant);
      }
      const values = [...tenantOf.keys()];
      const key = copyKey(info);
      for (let i = 0; i < values.length; i += KEYS_PER_READ) {
        const slice = values.slice(i, i + KEYS_PER_READ);
        const rows = await tx.query(
          `SELECT a.${ident(rule.column)} AS v, a.tenant_bid, ${key.map((k) => `a.${ident(k)}`).join(', ')} FROM ${qualified(deps.targetUrl.database, child)} a WHERE a.${ident(rule.column)} IN (${slice.map(() => '?').join(', ')})`,
          slice,
        );
        for (const r of rows) {
          const wanted = tenantOf.get(asText(r.v ?? null) ?? '');
          const held = str(r, 'tenant_bid');
          if (wanted === undefined || wanted === held) continue;
          const rowKey = rowKeyText(info, key, r);
          if (deps.config.sync.onTenantChange === 'fail')
            throw new TenantChangeConflict(
              `${child} row ${rowKey} is in tenant ${held} on the target, and the ${table} row its ${rule.column} points at arrives now in tenant ${wanted}: sync.onTenantChange is "fail". Decide which tenant owns it, or set sync.onTenantChange to "report"`,
            );
          found.push([child, rowKey, held, wanted, context.runId, now, now]);
        }
      }
    }
  }
  return found;
}

/**
 * Makes the target rows of `keys` what the source holds now, inside the caller's transaction `tx` (a repair lands
 * whole or not at all). `runId` is the sync run, recorded with conflicts and quarantined rows.
 */
export async function repairKeys(
  deps: TaskDeps,
  tx: SqlSession,
  context: RunContext,
  job: CopyJob,
  mode: 'tenant' | 'global',
  keys: readonly (readonly SqlParam[])[],
): Promise<RepairCounts> {
  const counts = noRepairs();
  if (keys.length === 0) return counts;
  const owned = mode === 'tenant' ? await tenantsOwnedByTarget(tx) : new Set<string>();
  for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
    const slice = keys.slice(i, i + KEYS_PER_READ);
    const part = await repairSlice(deps, tx, context, job, mode, slice, owned);
    Object.assign(counts, addCounts(counts, part));
  }
  return counts;
}

/**
 * One repair of a pass: in its own transaction, fenced by the run (a rollback's stop waits for it, and none starts
 * after), the rows of `keys` repaired and the pass's counters of the table moved with them (a retry counts nothing
 * twice: what committed is not repaired again).
 */
export async function repairInPass(
  deps: TaskDeps,
  pass: { readonly runId: string; readonly execution: string },
  context: RunContext,
  job: CopyJob,
  mode: 'tenant' | 'global',
  keys: readonly (readonly SqlParam[])[],
): Promise<RepairCounts> {
  return deps.target.transaction(async (tx) => {
    await fenceRun(tx, pass.runId, pass.execution);
    const c = await repairKeys(deps, tx, context, job, mode, keys);
    await tx.execute(
      'UPDATE migration_sync_passes SET rows_applied = rows_applied + ?, rows_deleted = rows_deleted + ?, rows_quarantined = rows_quarantined + ?, rows_waiting = rows_waiting + ?, reverse_applied = reverse_applied + ?, reverse_deleted = reverse_deleted + ? WHERE run_id = ? AND table_name = ?',
      [
        c.applied,
        c.deleted,
        c.quarantined,
        c.waiting,
        c.reverseApplied,
        c.reverseDeleted,
        pass.runId,
        job.info.name,
      ],
    );
    return c;
  });
}

/**
 * Reverse sync of a slice: legacy made what the target holds for rows of tenants the target owns, in one legacy
 * transaction, committed before the caller's target transaction (which holds these target rows locked): a crash
 * between the two repeats an idempotent write. Without tenant_bid, with the target's keys (the id series of the two
 * sides are kept apart: docs/routing.md).
 */
async function carryBack(
  deps: TaskDeps,
  tx: SqlSession,
  job: CopyJob,
  targetRows: readonly Row[],
  keyTexts: readonly string[],
  deletes: readonly (readonly SqlParam[])[],
): Promise<{ applied: number; deleted: number }> {
  const writer = deps.sourceWriter;
  if (writer === undefined) return { applied: 0, deleted: 0 };
  const { info, key, columns } = job;
  const names = columns.map((c) => c.name);
  const byText = new Map(targetRows.map((r) => [rowKeyText(info, key, r), r]));
  const tuples = keyTexts.map((t) =>
    exactKeyValues(
      info,
      key,
      key.map((k) => byText.get(t)?.[k] ?? null),
    ),
  );
  const rows: SqlParam[][] = [];
  if (tuples.length > 0) {
    const where = keyIn(key, tuples, 'a');
    const full = await tx.query(
      `SELECT ${names.map((n) => `a.${ident(n)}`).join(', ')} FROM ${qualified(deps.targetUrl.database, info.name)} a WHERE ${where.sql}`,
      where.params,
    );
    for (const row of full) rows.push(names.map((n) => row[n] ?? null));
  }
  return writer.transaction(async (ltx) => {
    let deleted = 0;
    if (deletes.length > 0) {
      const del = keyIn(key, deletes);
      deleted = (
        await ltx.execute(
          `DELETE FROM ${qualified(deps.sourceUrl.database, info.name)} WHERE ${del.sql}`,
          del.params,
        )
      ).affectedRows;
    }
    if (rows.length > 0)
      await insertRows(ltx, {
        schema: deps.sourceUrl.database,
        table: info.name,
        columns: names,
        rows,
        onDuplicate: 'update',
        maxStatementBytes: writer.maxStatementBytes,
        prepared: writer.preparesStatements,
      });
    return { applied: rows.length, deleted };
  });
}

async function repairSlice(
  deps: TaskDeps,
  tx: SqlSession,
  context: RunContext,
  job: CopyJob,
  mode: 'tenant' | 'global',
  keys: readonly (readonly SqlParam[])[],
  owned: ReadonlySet<string>,
): Promise<RepairCounts> {
  const { info, key, columns } = job;
  const counts = noRepairs();
  const names = columns.map((c) => c.name);
  const table = info.name;
  const targetTable = qualified(deps.targetUrl.database, table);
  const where = keyIn(key, keys, 'a');
  const sourceRows = await deps.source.query(
    `SELECT ${names.map((n) => `a.${ident(n)}`).join(', ')} FROM ${qualified(deps.sourceUrl.database, table)} a WHERE ${where.sql}`,
    where.params,
  );
  // The target's rows of these keys, locked until the repair commits: their tenant decides what may be written.
  const targetRows = await tx.query(
    `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')}${mode === 'tenant' ? ', a.tenant_bid' : ''} FROM ${targetTable} a WHERE ${where.sql} FOR UPDATE`,
    where.params,
  );
  const targetTenant = new Map(
    targetRows.map((r) => [rowKeyText(info, key, r), mode === 'tenant' ? str(r, 'tenant_bid') : '']),
  );
  const sourceKeys = new Set(sourceRows.map((r) => rowKeyText(info, key, r)));
  const writes: SqlParam[][] = [];
  const settled: string[] = [];
  const held: SqlParam[][] = [];
  const conflicts: SqlParam[][] = [];
  /** Rows left for their parent: every catch-up looks at them again, whatever their change time. */
  const waiting: SqlParam[][] = [];
  const now = nowText();
  // Reverse sync: the target's rows of these keys that go to legacy, and the keys legacy holds that the target
  // deleted (both of tenants the target owns).
  const reverse = mode === 'tenant' && owned.size > 0 && deps.sourceWriter !== undefined;
  const backToLegacy: string[] = [];
  const goneFromTarget: SqlParam[][] = [];
  if (mode === 'global') {
    for (const row of sourceRows) writes.push(names.map((n) => row[n] ?? null));
  } else {
    const parents = await referenceLookups(deps, tx, context, referenceRules(deps.config, table), sourceRows);
    const policy = onUnmapped(deps.config, table);
    const candidates: { row: Row; rowKey: string; tenant: string }[] = [];
    const arriving: { row: Row; tenant: string }[] = [];
    for (const row of sourceRows) {
      const rowKey = rowKeyText(info, key, row);
      // A parent row written after its table's turn in this pass is not on the target yet: the row waits for the
      // next pass rather than take a tenant its parent would not give it.
      let tenant = rowTenant(deps.config, table, row, parents.lookup);
      if (tenant === null && parents.waits(row)) {
        counts.waiting += 1;
        waiting.push([table, rowKey, context.runId, now]);
        continue;
      }
      if (tenant === null && policy === 'default') tenant = deps.config.defaultTenant;
      const existing = targetTenant.get(rowKey);
      if ((existing !== undefined && owned.has(existing)) || (tenant !== null && owned.has(tenant))) {
        if (reverse && existing !== undefined && owned.has(existing)) {
          // Legacy holds another tenant's row under this key (the two sides allocated the same id): never
          // overwritten, a conflict.
          if (tenant !== null && tenant !== existing) {
            if (deps.config.sync.onTenantChange === 'fail')
              throw new TenantChangeConflict(
                `${table} row ${rowKey} is tenant ${existing}'s on the multi-tenant side and tenant ${tenant}'s on legacy: both sides wrote this key (their id series meet: docs/routing.md). Decide which row keeps it; sync.onTenantChange is "fail"`,
              );
            conflicts.push([table, rowKey, existing, tenant, context.runId, now, now]);
          } else backToLegacy.push(rowKey);
        } else if (reverse && existing === undefined)
          goneFromTarget.push(
            exactKeyValues(
              info,
              key,
              key.map((k) => row[k] ?? null),
            ),
          );
        else counts.owned += 1;
        continue;
      }
      if (existing !== undefined && tenant !== existing) {
        if (deps.config.sync.onTenantChange === 'fail')
          throw new TenantChangeConflict(
            `${table} row ${rowKey} belongs to tenant ${existing} on the target, and the rules now give it ${tenant ?? 'no tenant'}: sync.onTenantChange is "fail". Decide which tenant owns it (fix the source row or the rules), or set sync.onTenantChange to "report" to record such rows and go on`,
          );
        conflicts.push([table, rowKey, existing, tenant, context.runId, now, now]);
        continue;
      }
      if (tenant === null) {
        if (policy === 'fail')
          throw new UnmappedRows(
            `${table} row ${rowKey} gets no tenant from the rules and onUnmapped is "fail"`,
          );
        held.push([
          context.runId,
          table,
          rowKey,
          unmappedReason(deps.config, table, row),
          rowDataText(job.columns, row),
        ]);
        continue;
      }
      candidates.push({ row, rowKey, tenant });
    }
    // Rows that share a value other tables look their tenant up by (a user_bid) share a tenant: a row that would
    // bring another tenant (a re-registration under another tenant's domain) would move every row that follows
    // that value. It is a conflict, left out, and its siblings stay as they are.
    const siblings = await siblingTenants(
      deps,
      tx,
      job,
      candidates.map((c) => c.row),
    );
    for (const { row, rowKey, tenant } of candidates) {
      const other = siblings(row, rowKey).find((t) => t !== tenant);
      if (other !== undefined) {
        if (deps.config.sync.onTenantChange === 'fail')
          throw new TenantChangeConflict(
            `${table} row ${rowKey} gets tenant ${tenant} from the rules, but the rows sharing its ${lookupColumns(deps.config, table).join(', ')} are in tenant ${other} on the target (tables that follow it would move): sync.onTenantChange is "fail". Fix the source row or the rules, or set sync.onTenantChange to "report"`,
          );
        conflicts.push([table, rowKey, other, tenant, context.runId, now, now]);
        continue;
      }
      const values = names.map((n) => row[n] ?? null);
      values.push(tenant);
      writes.push(values);
      settled.push(rowKey);
      if (siblings(row, rowKey).length === 0 && !targetTenant.has(rowKey)) arriving.push({ row, tenant });
    }
    // A lookup value that arrives now (a user signed up after rows pointing at them were written, which took the
    // default tenant): those rows' tenant would change. Never moved silently: conflicts, as any other.
    conflicts.push(...(await childConflicts(deps, tx, context, table, arriving, now)));
  }
  // Deletes first: a key the collation holds equal to a new one (b → B) is gone before the new row is written.
  // Rows the source no longer has: deleted, unless a tenant the target owns holds them.
  const gone = targetRows
    .map((r) => ({ text: rowKeyText(info, key, r), tenant: mode === 'tenant' ? str(r, 'tenant_bid') : '' }))
    .filter((r) => !sourceKeys.has(r.text));
  const deletable = gone.filter((r) => !owned.has(r.tenant));
  for (const r of gone.filter((g) => owned.has(g.tenant))) {
    if (reverse) backToLegacy.push(r.text);
    else counts.owned += 1;
  }
  if (backToLegacy.length > 0 || goneFromTarget.length > 0) {
    const back = await carryBack(deps, tx, job, targetRows, backToLegacy, goneFromTarget);
    counts.reverseApplied += back.applied;
    counts.reverseDeleted += back.deleted;
  }
  if (deletable.length > 0) {
    const byText = new Map(targetRows.map((r) => [rowKeyText(info, key, r), r]));
    const tuples = deletable.map((r) =>
      exactKeyValues(
        info,
        key,
        key.map((k) => byText.get(r.text)?.[k] ?? null),
      ),
    );
    const del = keyIn(key, tuples);
    const result = await tx.execute(`DELETE FROM ${targetTable} WHERE ${del.sql}`, del.params);
    counts.deleted += result.affectedRows;
    settled.push(...deletable.map((r) => r.text));
  }
  if (writes.length > 0) {
    await insertRows(tx, {
      table,
      columns: mode === 'tenant' ? [...names, 'tenant_bid'] : names,
      rows: writes,
      onDuplicate: 'update',
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: deps.target.preparesStatements,
    });
    counts.applied += writes.length;
  }
  if (held.length > 0) {
    await insertRows(tx, {
      table: 'migration_quarantine',
      columns: ['run_id', 'table_name', 'row_key', 'reason', 'row_data'],
      rows: held,
      onDuplicate: 'update',
      updateColumns: ['run_id', 'reason', 'row_data'],
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: deps.target.preparesStatements,
    });
    counts.quarantined += held.length;
  }
  if (waiting.length > 0)
    await insertRows(tx, {
      table: 'migration_sync_waiting',
      columns: ['table_name', 'row_key', 'run_id', 'since'],
      rows: waiting,
      onDuplicate: 'update',
      updateColumns: ['run_id'],
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: false,
    });
  if (conflicts.length > 0) {
    await insertRows(tx, {
      table: 'migration_sync_conflicts',
      columns: [
        'table_name',
        'row_key',
        'target_tenant',
        'source_tenant',
        'run_id',
        'first_seen_at',
        'last_seen_at',
      ],
      rows: conflicts,
      onDuplicate: 'update',
      updateColumns: ['target_tenant', 'source_tenant', 'run_id', 'last_seen_at', 'resolved_at'],
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: false,
    });
    counts.conflicts += conflicts.length;
  }
  // Keys the source no longer has at all leave the quarantine; rows written or deleted settle their conflicts.
  const vanished = keys
    .map((k) => rowKeyText(info, key, Object.fromEntries(key.map((c, i) => [c, k[i] ?? null]))))
    .filter((text) => !sourceKeys.has(text));
  const leaving = [...new Set([...settled, ...vanished])];
  for (let i = 0; i < leaving.length; i += 500) {
    const part = leaving.slice(i, i + 500);
    const marks = part.map(() => '?').join(', ');
    await tx.execute(`DELETE FROM migration_quarantine WHERE table_name = ? AND row_key IN (${marks})`, [
      table,
      ...part,
    ]);
    await tx.execute(
      `UPDATE migration_sync_conflicts SET resolved_at = ? WHERE table_name = ? AND resolved_at IS NULL AND row_key IN (${marks})`,
      [now, table, ...part],
    );
    await tx.execute(`DELETE FROM migration_sync_waiting WHERE table_name = ? AND row_key IN (${marks})`, [
      table,
      ...part,
    ]);
  }
  return counts;
}
