import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { createDataApiClient } from './data-api.ts';
import { createMysqlClient, type MysqlClientOptions } from './mysql.ts';
import type { SqlClient } from './port.ts';
import type { DatabaseUrl } from './url.ts';

const dataApiClients = new Map<string, RDSDataClient>();

/**
 * Opens the adapter a database URL names. SDK clients are created once per region and per process
 * (per Lambda container), as the SDK recommends.
 */
export function openSql(url: DatabaseUrl, options: MysqlClientOptions = {}): SqlClient {
  if (url.kind === 'mysql') return createMysqlClient(url, options);
  let client = dataApiClients.get(url.region);
  if (client === undefined) {
    client = new RDSDataClient({ region: url.region });
    dataApiClients.set(url.region, client);
  }
  return createDataApiClient({
    client,
    resourceArn: url.resourceArn,
    secretArn: url.secretArn,
    database: url.database,
  });
}
