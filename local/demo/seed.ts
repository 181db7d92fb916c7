import { InputError } from '../../lambdas/core/errors.ts';
import { ident, qualified } from '../../lambdas/core/identifiers.ts';
import { insertRows } from '../../lambdas/core/sql/insert.ts';
import type { SqlClient, SqlParam } from '../../lambdas/core/sql/port.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { DemoShape, type TableRows } from './generate.ts';
import { DEMO_MARKER, DEMO_TABLES } from './schema.ts';

export interface SeedOptions {
  /** A client on the server that will hold the database (its own database does not matter). */
  readonly client: SqlClient;
  /** The database to create, e.g. `shifu_legacy`. */
  readonly database: string;
  readonly users: number;
  /** Drop and recreate the database when it exists (only if seed-demo made it). */
  readonly reset: boolean;
  /**
   * Tables loaded at the same time.
   * @default 3
   */
  readonly concurrency?: number;
  readonly onProgress?: (event: SeedProgress) => void;
}

export type SeedProgress =
  | { readonly kind: 'table-started'; readonly table: string; readonly rows: number }
  | { readonly kind: 'rows'; readonly table: string; readonly done: number; readonly rows: number }
  | { readonly kind: 'table-loaded'; readonly table: string; readonly rows: number; readonly seconds: number }
  | { readonly kind: 'indexing'; readonly table: string };

export interface SeedResult {
  readonly database: string;
  readonly users: number;
  readonly tables: readonly { readonly name: string; readonly rows: number }[];
  readonly totalRows: number;
  readonly seconds: number;
}

/** Rows handed to one insertRows call; it splits them further to fit the statement size. */
const BATCH_ROWS = 4_000;

/** Largest demo accepted: ~50 rows a user, so 2 million users is about 100 million rows. */
export const MAX_DEMO_USERS = 2_000_000;

/**
 * Creates the demo legacy database and fills it with deterministic data (see generate.ts).
 * Refuses to touch an existing database unless `reset` is set and the database carries seed-demo's marker.
 */
export async function seedDemo(options: SeedOptions): Promise<SeedResult> {
  const { client, database, users } = options;
  if (!Number.isInteger(users) || users < 1 || users > MAX_DEMO_USERS) {
    throw new InputError(`--users must be a whole number from 1 to ${MAX_DEMO_USERS}, got ${users}`);
  }
  const started = performance.now();
  await prepareDatabase(client, database, options.reset);

  const shape = new DemoShape(users);
  const sources = shape.tables();
  for (const table of DEMO_TABLES) {
    const comment = table.comment === undefined ? '' : ' COMMENT = ?';
    await client.execute(
      `CREATE TABLE ${qualified(database, table.name)} (\n  ${table.body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci${comment}`,
      table.comment === undefined ? [] : [table.comment],
    );
  }

  // Largest tables first, so the parallel loads finish together.
  const queue = [...sources].sort((a, b) => b.count - a.count);
  const workers = Array.from({ length: Math.max(1, options.concurrency ?? 3) }, async () => {
    for (let source = queue.shift(); source !== undefined; source = queue.shift()) {
      await loadTable(client, database, source, options.onProgress);
    }
  });
  await Promise.all(workers);

  for (const table of DEMO_TABLES) {
    options.onProgress?.({ kind: 'indexing', table: table.name });
    await client.execute(`ALTER TABLE ${qualified(database, table.name)} ${table.indexes.join(', ')}`);
  }
  // Fresh statistics, so that row estimates (introspection, chunk planning) are right from the start.
  await client.query(`ANALYZE TABLE ${DEMO_TABLES.map((t) => qualified(database, t.name)).join(', ')}`);

  const tables = sources.map((s) => ({ name: s.table, rows: s.count }));
  return {
    database,
    users,
    tables,
    totalRows: tables.reduce((sum, t) => sum + t.rows, 0),
    seconds: (performance.now() - started) / 1000,
  };
}

async function prepareDatabase(client: SqlClient, database: string, reset: boolean): Promise<void> {
  const exists = await client.query(
    'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
    [database],
  );
  if (exists.length > 0) {
    const tables = await client.query(
      'SELECT TABLE_NAME AS name, TABLE_COMMENT AS comment FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [database],
    );
    const isDemo = tables.some((t) => str(t, 'comment') === DEMO_MARKER);
    if (tables.length > 0 && !isDemo) {
      throw new InputError(
        `database ${database} exists and was not made by seed-demo (${tables.length} tables): refusing to touch it. ` +
          'Point the source URL (--config or SOURCE_DATABASE_URL) at another database name',
      );
    }
    if (tables.length > 0 && !reset) {
      throw new InputError(
        `database ${database} already holds the demo: pass --reset to drop and recreate it`,
      );
    }
    await client.execute(`DROP DATABASE ${ident(database, 'database')}`);
  }
  await client.execute(
    `CREATE DATABASE ${ident(database, 'database')} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
  );
}

async function loadTable(
  client: SqlClient,
  database: string,
  source: TableRows,
  onProgress: SeedOptions['onProgress'],
): Promise<void> {
  const started = performance.now();
  onProgress?.({ kind: 'table-started', table: source.table, rows: source.count });
  let batch: SqlParam[][] = [];
  let done = 0;
  const flush = async (): Promise<void> => {
    await insertRows(client, {
      schema: database,
      table: source.table,
      columns: source.columns,
      rows: batch,
      maxStatementBytes: client.maxStatementBytes,
    });
    done += batch.length;
    batch = [];
    onProgress?.({ kind: 'rows', table: source.table, done, rows: source.count });
  };
  for (const row of source.rows()) {
    batch.push(row);
    if (batch.length >= BATCH_ROWS) await flush();
  }
  if (batch.length > 0) await flush();
  if (done !== source.count) {
    throw new Error(`demo generator made ${done} rows for ${source.table}, expected ${source.count}`);
  }
  onProgress?.({
    kind: 'table-loaded',
    table: source.table,
    rows: done,
    seconds: (performance.now() - started) / 1000,
  });
}
