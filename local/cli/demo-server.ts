import { join } from 'node:path';
import { ENV_OVERRIDES, type LoadedConfig } from '../../lambdas/core/config/load.ts';
import { DatabaseUnreachable } from '../../lambdas/core/errors.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { type DatabaseUrl, parseDatabaseUrl, withDatabase } from '../../lambdas/core/sql/url.ts';
import { ensurePrivateServer, findPrivateServer, type PrivateServer } from '../demo/private-server.ts';
import type { Output } from './output.ts';

async function reachable(url: DatabaseUrl): Promise<boolean> {
  const client = openSql(withDatabase(url, 'information_schema'));
  try {
    await client.query('SELECT 1 AS ok');
    return true;
  } catch (error) {
    if (error instanceof DatabaseUnreachable) return false;
    throw error;
  } finally {
    await client.close();
  }
}

function onPort(url: DatabaseUrl, port: number): string {
  const u = new URL(url.raw);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

/**
 * With the built-in demo config (no config file, no URL overrides) and nothing answering at its address,
 * uses the private demo server under `.shifu-migrate/mysql`; `demo` starts one when a server binary is
 * installed. Any other config is used as it is: the user named those databases.
 */
export async function resolveDemoServer(
  loaded: LoadedConfig,
  options: {
    readonly env: Readonly<Record<string, string | undefined>>;
    readonly cwd: string;
    readonly out: Output;
    readonly mayStart: boolean;
  },
): Promise<LoadedConfig> {
  const overridden = Object.keys(ENV_OVERRIDES).some((name) => (options.env[name] ?? '') !== '');
  if (loaded.origin.kind !== 'defaults' || overridden || loaded.sourceUrl.kind !== 'mysql') return loaded;
  if (await reachable(loaded.sourceUrl)) return loaded;

  const dir = join(options.cwd, '.shifu-migrate', 'mysql');
  const where = `${loaded.sourceUrl.host}:${loaded.sourceUrl.port}`;
  let server: PrivateServer | undefined = await findPrivateServer(dir);
  if (server === undefined && options.mayStart) {
    options.out.info(`Nothing answers at ${where}; starting a private demo server under ${dir}…`);
    try {
      server = await ensurePrivateServer({ dir });
    } catch (error) {
      options.out.info(`Could not start one: ${(error as Error).message}`);
    }
  }
  if (server === undefined)
    throw new DatabaseUnreachable(withDatabase(loaded.sourceUrl, 'information_schema').raw);
  options.out.info(
    server.started
      ? `Started a private demo server (${server.binary}) on 127.0.0.1:${server.port}, data in ${server.dir}. Stop it with: ${server.stopCommand}`
      : `Nothing answers at ${where}; using the private demo server on 127.0.0.1:${server.port} (stop it with: ${server.stopCommand}).`,
  );
  const source = onPort(loaded.sourceUrl, server.port);
  const target = onPort(loaded.targetUrl, server.port);
  return {
    ...loaded,
    config: { ...loaded.config, source: { url: source }, target: { url: target } },
    sourceUrl: parseDatabaseUrl(source),
    targetUrl: parseDatabaseUrl(target),
  };
}
