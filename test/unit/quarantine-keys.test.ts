import { describe, expect, it } from 'vitest';
import type { Row, SqlParam, SqlSession } from '../../lambdas/core/sql/port.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { quarantinedKeys } from '../../lambdas/data/compare.ts';

/** migration_quarantine as a list, answering the paged read the way the server would. */
function quarantine(count: number) {
  const rows = Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    row_key: `[${(i + 1) * 10}]`,
    chunk_no: i % 7,
  }));
  const asked: { sql: string; params: SqlParam[] }[] = [];
  const session = {
    query: async (sql: string, params: SqlParam[] = []): Promise<Row[]> => {
      asked.push({ sql, params });
      const limit = Number(params.at(-1));
      const after = Number(params.at(-2));
      const chunk = /chunk_no = \?/.test(sql) ? Number(params[2]) : undefined;
      return rows
        .filter((r) => r.id > after && (chunk === undefined || r.chunk_no === chunk))
        .slice(0, limit);
    },
  } as unknown as SqlSession;
  return { session, asked };
}

const job = {
  info: { name: 'orders', columns: [{ name: 'id', dataType: 'bigint' }] },
  key: ['id'],
} as never;

describe('quarantined keys', () => {
  it('are read page by page, however many a table holds', async () => {
    const { session, asked } = quarantine(12_345);
    const keys = await quarantinedKeys({} as TaskDeps, 'orders', job, session);
    expect(keys).toHaveLength(12_345);
    expect(keys.at(-1)?.text).toBe('[123450]');
    expect(asked).toHaveLength(3);
    expect(asked.map((a) => a.params.at(-2))).toEqual([0, 5000, 10000]);
  });

  it('for a chunk, only those the run recorded in it (and any recorded otherwise)', async () => {
    const { session, asked } = quarantine(700);
    const keys = await quarantinedKeys({} as TaskDeps, 'orders', job, session, { runId: 'data-1', n: 3 });
    expect(keys).toHaveLength(100);
    expect(asked[0]?.sql).toMatch(/AND \(run_id <> \? OR chunk_no IS NULL OR chunk_no = \?\) AND id > \?/);
    expect(asked[0]?.params.slice(0, 3)).toEqual(['orders', 'data-1', 3]);
  });
});
