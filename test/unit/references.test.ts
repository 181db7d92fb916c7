import { describe, expect, it } from 'vitest';
import {
  findBusinessKey,
  inferReferences,
  ownIdentityNames,
  singular,
} from '../../lambdas/core/schema/references.ts';
import type { ColumnInfo, IndexInfo, TableInfo } from '../../lambdas/core/schema/types.ts';

function column(name: string, position: number): ColumnInfo {
  return {
    name,
    position,
    dataType: 'varchar',
    columnType: 'varchar(32)',
    nullable: false,
    defaultValue: null,
    defaultIsExpression: false,
    charset: 'utf8mb4',
    collation: 'utf8mb4_unicode_ci',
    extra: '',
    generated: false,
    maxLength: 32,
    numericPrecision: null,
    numericScale: null,
    datetimePrecision: null,
    isJson: false,
  };
}

function table(name: string, columns: string[], indexes: IndexInfo[] = []): TableInfo {
  const cols = ['id', ...columns].map(column);
  const all = [{ name: 'PRIMARY', unique: true, columns: ['id'], prefix: false }, ...indexes];
  return {
    name,
    engine: 'InnoDB',
    collation: null,
    rowsEstimate: 0,
    dataBytes: 0,
    indexBytes: 0,
    autoIncrement: null,
    columns: cols,
    primaryKey: ['id'],
    uniqueKeys: indexes.filter((i) => i.unique),
    indexes: all,
    foreignKeys: [],
    businessKey: findBusinessKey(name, cols, all),
  };
}

const unique = (column: string): IndexInfo => ({
  name: `uk_${column}`,
  unique: true,
  columns: [column],
  prefix: false,
});
const plain = (column: string): IndexInfo => ({
  name: `idx_${column}`,
  unique: false,
  columns: [column],
  prefix: false,
});

describe('business keys and inferred references', () => {
  it('singularises table words', () => {
    expect(['users', 'categories', 'boxes', 'status', 'records', 'address'].map(singular)).toEqual([
      'user',
      'category',
      'box',
      'status',
      'record',
      'address',
    ]);
  });

  it('takes a unique *_bid as the key, else the one named after the table even when not unique', () => {
    expect(
      table('learn_progress_records', ['progress_bid', 'user_bid'], [unique('progress_bid')]).businessKey,
    ).toEqual({
      column: 'progress_bid',
      reason: 'unique index',
      unique: true,
    });
    expect(table('user_users', ['user_bid'], [plain('user_bid')]).businessKey).toEqual({
      column: 'user_bid',
      reason: 'table name',
      unique: false,
    });
    expect(table('user_auth_credentials', ['user_bid']).businessKey).toBeNull();
    // `shifus` looks like `status` to the singulariser; the key is still found.
    expect(table('shifu_shifus', ['shifu_bid'], [plain('shifu_bid')]).businessKey).toEqual({
      column: 'shifu_bid',
      reason: 'table name',
      unique: false,
    });
  });

  it('links *_bid columns to the table whose key they name, plain or qualified', () => {
    const tables = [
      table('user_users', ['user_bid'], [plain('user_bid')]),
      table('shifu_shifus', ['shifu_bid', 'created_user_bid'], [unique('shifu_bid')]),
      table('order_orders', ['order_bid', 'user_bid', 'shifu_bid', 'parent_bid'], [unique('order_bid')]),
    ];
    const { references, ambiguous } = inferReferences(tables);
    expect(
      references.map((r) => `${r.fromTable}.${r.fromColumn}→${r.toTable}.${r.toColumn}:${r.toUnique}`),
    ).toEqual([
      'shifu_shifus.created_user_bid→user_users.user_bid:false',
      'order_orders.user_bid→user_users.user_bid:false',
      'order_orders.shifu_bid→shifu_shifus.shifu_bid:true',
    ]);
    expect(ambiguous).toEqual([]);
  });

  it('reports a name that fits the keys of two tables instead of guessing', () => {
    const tables = [
      table('shifu_shifus', ['shifu_bid'], [unique('shifu_bid')]),
      table('draft_shifus', ['shifu_bid'], [unique('shifu_bid')]),
      table('order_orders', ['order_bid', 'shifu_bid'], [unique('order_bid')]),
    ];
    const { references, ambiguous } = inferReferences(tables);
    expect(references.filter((r) => r.fromTable === 'order_orders')).toEqual([]);
    expect(ambiguous).toEqual([
      { fromTable: 'order_orders', fromColumn: 'shifu_bid', candidates: ['shifu_shifus', 'draft_shifus'] },
    ]);
  });

  it("never reports a table's own identity column as a reference to another table", () => {
    // progress_record_bid ends like study_records' record_bid, but it names the progress record itself (and is
    // not even unique here, so the business key finder cannot tell).
    const tables = [
      table('study_records', ['record_bid', 'user_bid'], [unique('record_bid')]),
      table('learn_progress_records', ['progress_record_bid', 'record_bid'], [unique('record_bid')]),
    ];
    const { references } = inferReferences(tables);
    expect(references.map((r) => `${r.fromTable}.${r.fromColumn}→${r.toTable}`)).toEqual([]);
    const own = ownIdentityNames('learn_progress_records');
    for (const name of ['learn_progress_record_bid', 'progress_record_bid', 'record_bid'])
      expect(own.has(name), name).toBe(true);
    expect(own.has('user_bid')).toBe(false);
  });
});
