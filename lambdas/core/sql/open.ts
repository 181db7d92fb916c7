import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { createDataApiClient } from './data-api.ts';
import { DEFAULT_MAX_STATEMENT_BYTES, type MysqlClientOptions, mysqlTlsOptions } from './mysql-options.ts';
import type { SqlClient } from './port.ts';
import type { DatabaseUrl, MysqlUrl } from './url.ts';

export interface OpenSqlOptions extends MysqlClientOptions {
  /** Wraps each AWS SDK client when it is created (X-Ray on Lambda). */
  readonly awsClient?: <T extends object>(client: T) => T;
}

const dataApiClients = new Map<string, RDSDataClient>();

/**
 * Opens the adapter a database URL names. SDK clients are created once per region and per process
 * (per Lambda container), as the SDK recommends.
 */
export function openSql(url: DatabaseUrl, options: OpenSqlOptions = {}): SqlClient {
  if (url.kind === 'mysql') return lazyMysqlClient(url, options);
  let client = dataApiClients.get(url.region);
  if (client === undefined) {
    const created = new RDSDataClient({ region: url.region });
    client = options.awsClient?.(created) ?? created;
    dataApiClients.set(url.region, client);
  }
  return createDataApiClient({
    client,
    resourceArn: url.resourceArn,
    secretArn: url.secretArn,
    database: url.database,
  });
}

let mysqlAdapter: Promise<typeof import('./mysql.ts')> | undefined;

/**
 * The mysql2 adapter, its module (and mysql2 with it) loaded on first use: a function that reaches its databases
 * through the Data API never evaluates the driver. The URL's TLS files are read now, so a wrong one fails here.
 */
function lazyMysqlClient(url: MysqlUrl, options: MysqlClientOptions): SqlClient {
  const tls = url.tls === undefined ? undefined : mysqlTlsOptions(url.tls, url.raw);
  let opened: Promise<SqlClient> | undefined;
  const client = (): Promise<SqlClient> => {
    mysqlAdapter ??= import('./mysql.ts');
    opened ??= mysqlAdapter.then((m) => m.createMysqlClient(url, options, tls));
    return opened;
  };
  return {
    adapter: 'mysql',
    database: url.database,
    maxStatementBytes: options.maxStatementBytes ?? DEFAULT_MAX_STATEMENT_BYTES,
    preparesStatements: true,
    query: async (sql, params) => (await client()).query(sql, params),
    execute: async (sql, params, execOptions) => (await client()).execute(sql, params, execOptions),
    batch: async (sql, paramSets) => (await client()).batch(sql, paramSets),
    transaction: async (work) => (await client()).transaction(work),
    close: async () => {
      if (opened !== undefined) await (await opened).close();
    },
  };
}
