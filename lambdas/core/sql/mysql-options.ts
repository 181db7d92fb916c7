import { readFileSync } from 'node:fs';
import { InvalidDatabaseUrl } from '../errors.ts';
import type { MysqlUrl } from './url.ts';
import { redactUrl } from './url.ts';

/** Options of the mysql2 adapter. */
export interface MysqlClientOptions {
  /**
   * Connections kept in the pool.
   * @default 4
   */
  readonly connectionLimit?: number;
  /**
   * Largest multi-row statement writers should build, in bytes (stay under the server's max_allowed_packet).
   * @default 4 MiB
   */
  readonly maxStatementBytes?: number;
  /** Which database this is, for errors people read ("the source database refused the login"). */
  readonly label?: 'source' | 'target';
  /**
   * The URL to name in errors (passwords hidden), when it is not the one connected to: a pool on
   * information_schema stands for the configured database.
   * @default the URL connected to
   */
  readonly display?: string;
  /**
   * Every connection is made read-only at the server (`SET SESSION TRANSACTION READ ONLY`): a write fails there,
   * whatever the SQL. The source is opened so.
   * @default false
   */
  readonly readOnly?: boolean;
}

/** Largest multi-row statement the mysql2 adapter's writers build, unless told: under MySQL's default packet. */
export const DEFAULT_MAX_STATEMENT_BYTES = 4 * 1024 * 1024;

/**
 * The TLS options a `mysql://` URL's `ssl` and `ssl-ca` give: the CA bundle read now, so a file that cannot be read
 * is an error when the client is opened, naming the URL.
 */
export function mysqlTlsOptions(
  tls: NonNullable<MysqlUrl['tls']>,
  raw: string,
): { ca?: Buffer; rejectUnauthorized: boolean } {
  let ca: Buffer | undefined;
  if (tls.caFile !== undefined) {
    try {
      ca = readFileSync(tls.caFile);
    } catch (error) {
      throw new InvalidDatabaseUrl(
        `ssl-ca=${tls.caFile} in ${redactUrl(raw)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): name the CA bundle file`,
      );
    }
  }
  return { ...(ca === undefined ? {} : { ca }), rejectUnauthorized: tls.verify };
}
