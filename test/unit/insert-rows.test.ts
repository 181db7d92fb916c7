import { describe, expect, it } from 'vitest';
import { insertRows } from '../../lambdas/core/sql/insert.ts';
import type { ExecOptions, SqlParam, SqlSession } from '../../lambdas/core/sql/port.ts';

/** A session that records what insertRows sends: rows per statement and whether it asked to prepare. */
function recorder(columns: number) {
  const sent: { rows: number; prepared: boolean }[] = [];
  const texts: string[] = [];
  const session: SqlSession = {
    query: async () => [],
    batch: async () => undefined,
    execute: async (sql: string, params: readonly SqlParam[] = [], options?: ExecOptions) => {
      texts.push(sql);
      sent.push({ rows: params.length / columns, prepared: options?.prepared === true });
      return { affectedRows: params.length / columns };
    },
  };
  return { session, sent, texts };
}

const rows = (n: number, columns: number) =>
  Array.from({ length: n }, (_, i) => Array.from({ length: columns }, (_, c) => i * columns + c));

describe('insertRows, prepared', () => {
  it('sends power-of-two row counts of at most 8,192 placeholders each', async () => {
    const { session, sent } = recorder(12);
    const columns = Array.from({ length: 12 }, (_, c) => `c${c}`);
    const affected = await insertRows(session, {
      table: 't',
      columns,
      rows: rows(2000, 12),
      maxStatementBytes: 64 * 1024 * 1024,
      prepared: true,
    });
    expect(affected).toBe(2000);
    expect(sent.map((s) => s.rows)).toEqual([512, 512, 512, 256, 128, 64, 16]);
    expect(sent.every((s) => s.prepared && s.rows * 12 <= 8192)).toBe(true);
  });

  it('keeps each shape its own statement text (table, columns, duplicate handling)', async () => {
    const { session, sent, texts } = recorder(2);
    const send = (table: string, columns: string[], onDuplicate?: 'update' | 'ignore') =>
      insertRows(session, {
        table,
        columns,
        rows: rows(4, 2),
        maxStatementBytes: 1024 * 1024,
        prepared: true,
        ...(onDuplicate === undefined ? {} : { onDuplicate }),
      });
    await send('a', ['x', 'y']);
    await send('a', ['x', 'y']);
    await send('b', ['x', 'y']);
    await send('a', ['x', 'z']);
    await send('a', ['x', 'y'], 'update');
    await send('a', ['x', 'y'], 'ignore');
    expect(sent.every((s) => s.rows === 4)).toBe(true);
    const tuples = ' VALUES (?, ?), (?, ?), (?, ?), (?, ?)';
    expect(texts).toEqual([
      `INSERT INTO \`a\` (\`x\`, \`y\`)${tuples}`,
      `INSERT INTO \`a\` (\`x\`, \`y\`)${tuples}`,
      `INSERT INTO \`b\` (\`x\`, \`y\`)${tuples}`,
      `INSERT INTO \`a\` (\`x\`, \`z\`)${tuples}`,
      `INSERT INTO \`a\` (\`x\`, \`y\`)${tuples} ON DUPLICATE KEY UPDATE \`x\` = VALUES(\`x\`), \`y\` = VALUES(\`y\`)`,
      `INSERT IGNORE INTO \`a\` (\`x\`, \`y\`)${tuples}`,
    ]);
  });

  it('sends one plain statement per batch when not prepared', async () => {
    const { session, sent } = recorder(3);
    await insertRows(session, {
      table: 't',
      columns: ['a', 'b', 'c'],
      rows: rows(1000, 3),
      maxStatementBytes: 64 * 1024 * 1024,
    });
    expect(sent).toEqual([{ rows: 1000, prepared: false }]);
  });
});
