import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import type { TableInfo } from '../../lambdas/core/schema/types.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { largestFirst, planLevels } from '../../lambdas/data/plan.ts';

const ref = (column: string, table: string) => ({
  by: 'reference' as const,
  column,
  references: { table, column },
});

const config = ConfigSchema.parse({
  source: { url: 'mysql://root@127.0.0.1:3306/legacy' },
  target: { url: 'mysql://root@127.0.0.1:3306/saas' },
  archive: { url: './archive' },
  tenants: [{ bid: 'acme', name: 'Acme' }],
  defaultTenant: 'acme',
  tables: {
    settings: { global: true },
    users: { tenant: { by: 'fixed', tenant: 'acme' } },
    courses: { tenant: ref('user_bid', 'users') },
    lessons: { tenant: ref('course_bid', 'courses') },
    // Two references: the second parent (lessons, level 2) is deeper than the first (users, level 0).
    answers: { tenant: [ref('user_bid', 'users'), ref('lesson_bid', 'lessons')] },
    logs: { tenant: ref('user_bid', 'users') },
    scratch: { exclude: 'not migrated' },
  },
});
const deps = { config } as unknown as TaskDeps;

function table(name: string, rowsEstimate: number): TableInfo {
  return {
    name,
    engine: 'InnoDB',
    collation: null,
    rowsEstimate,
    dataBytes: 0,
    indexBytes: 0,
    autoIncrement: null,
    columns: [],
    primaryKey: ['id'],
    uniqueKeys: [],
    indexes: [],
    foreignKeys: [],
    businessKey: null,
  };
}

const source = [
  table('settings', 10),
  table('users', 1_000),
  table('courses', 50),
  table('lessons', 500),
  table('answers', 90_000),
  table('logs', 400_000),
  table('scratch', 7),
];

describe('planLevels', () => {
  it('puts a table after the deepest of all the tables it takes its tenant from', () => {
    const levels = planLevels(deps, source).map((l) => l.map((p) => p.table));
    expect(levels).toEqual([['users', 'settings'], ['logs', 'courses'], ['lessons'], ['answers']]);
  });

  it('marks the tables a reference rule looks rows up in, and only those', () => {
    const referenced = planLevels(deps, source)
      .flat()
      .filter((p) => p.referenced)
      .map((p) => p.table);
    expect(referenced.sort()).toEqual(['courses', 'lessons', 'users']);
  });

  it('lists every migrated table largest first for the end of the run', () => {
    expect(largestFirst(deps, source).map((p) => `${p.table}:${p.mode}`)).toEqual([
      'logs:tenant',
      'answers:tenant',
      'users:tenant',
      'lessons:tenant',
      'courses:tenant',
      'settings:global',
    ]);
  });
});
