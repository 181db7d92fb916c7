import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createMysqlClient } from '../../lambdas/core/sql/mysql.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { type MysqlUrl, parseDatabaseUrl } from '../../lambdas/core/sql/url.ts';

/** The test server: MariaDB on 127.0.0.1:3306 as root without password, unless TEST_MYSQL_URL says otherwise. */
export const SERVER_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/information_schema';

export function mysqlUrl(database: string): MysqlUrl {
  const base = parseDatabaseUrl(SERVER_URL);
  if (base.kind !== 'mysql') throw new Error('TEST_MYSQL_URL must be a mysql:// URL');
  const u = new URL(base.raw);
  u.pathname = `/${database}`;
  const url = parseDatabaseUrl(u.toString());
  if (url.kind !== 'mysql') throw new Error('unreachable');
  return url;
}

/** A database of its own for one test file, dropped by `drop()`: test files can run in parallel. */
export async function scratchDatabase(
  prefix: string,
): Promise<{ name: string; url: MysqlUrl; drop(): Promise<void> }> {
  const name = `smt_${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = await adminConnection();
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: mysqlUrl(name),
    async drop() {
      const conn = await adminConnection();
      try {
        await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await conn.end();
      }
    },
  };
}

/** A raw mysql2 connection for test setup and for looking at results independently of our adapters. */
export async function adminConnection(database?: string): Promise<mysql.Connection> {
  const url = mysqlUrl(database ?? 'information_schema');
  return mysql.createConnection({
    host: url.host,
    port: url.port,
    user: url.user,
    ...(url.password === undefined ? {} : { password: url.password }),
    database: url.database,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
    charset: 'utf8mb4_unicode_ci',
  });
}

export function mysqlClient(database: string): SqlClient {
  return createMysqlClient(mysqlUrl(database));
}
