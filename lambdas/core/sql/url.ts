import { InvalidDatabaseUrl } from '../errors.ts';
import { isSafeIdentifier } from '../identifiers.ts';

/** `mysql://user:pass@host:port/db`: a direct connection through mysql2. */
export interface MysqlUrl {
  readonly kind: 'mysql';
  readonly raw: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  readonly database: string;
  /**
   * TLS from the URL's query: `?ssl=true` (the certificate verified against Node's CAs, or `ssl-ca`),
   * `?ssl=skip-verify` (encrypted, the certificate not verified), `?ssl-ca=/path/ca.pem` (a CA bundle file, e.g.
   * the RDS one; implies ssl=true). Absent or `?ssl=false`: none.
   */
  readonly tls?: { readonly caFile: string | undefined; readonly verify: boolean };
}

/** `rdsdata://<cluster-arn>/<db>?secret=<secret-arn>`: the RDS Data API. */
export interface DataApiUrl {
  readonly kind: 'rdsdata';
  readonly raw: string;
  readonly resourceArn: string;
  readonly secretArn: string;
  readonly database: string;
  /** The region, read from the cluster ARN. */
  readonly region: string;
}

export type DatabaseUrl = MysqlUrl | DataApiUrl;

const CLUSTER_ARN = /^arn:aws[a-z-]*:rds:([a-z0-9-]+):\d{12}:cluster:[A-Za-z][A-Za-z0-9-]{0,62}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;

const FORMS =
  'use mysql://user:password@host:3306/database or rdsdata://<cluster-arn>/<database>?secret=<secret-arn>';

/** Parses a database URL, with errors that say what is wrong and what form is expected. */
export function parseDatabaseUrl(raw: string): DatabaseUrl {
  const trimmed = raw.trim();
  if (trimmed.startsWith('mysql://')) return parseMysql(trimmed);
  if (trimmed.startsWith('rdsdata://')) return parseDataApi(trimmed);
  throw new InvalidDatabaseUrl(`unsupported database URL ${JSON.stringify(redactUrl(raw))}: ${FORMS}`);
}

const MYSQL_PARAMETERS = ['ssl', 'ssl-ca'];

function parseMysql(raw: string): MysqlUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidDatabaseUrl(`malformed database URL ${JSON.stringify(redactUrl(raw))}: ${FORMS}`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '') {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))} names no database: add it as the path, e.g. mysql://root@127.0.0.1:3306/shifu_legacy`,
    );
  }
  checkDatabaseName(database, raw);
  const port = url.port === '' ? 3306 : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '')
    throw new InvalidDatabaseUrl(`database URL ${JSON.stringify(redactUrl(raw))} names no host`);
  const unknown = [...url.searchParams.keys()].filter((k) => !MYSQL_PARAMETERS.includes(k));
  if (unknown.length > 0) {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))} has parameters shifu-migrate does not know (${unknown.map((k) => JSON.stringify(k)).join(', ')}): mysql:// URLs take ?ssl=true, ?ssl=skip-verify and ?ssl-ca=<CA bundle file>`,
    );
  }
  const repeated = [...new Set(url.searchParams.keys())].filter((k) => url.searchParams.getAll(k).length > 1);
  if (repeated.length > 0) {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))} gives ${repeated.map((k) => JSON.stringify(k)).join(', ')} more than once: keep one`,
    );
  }
  const ssl = url.searchParams.get('ssl');
  const caFile = url.searchParams.get('ssl-ca') ?? undefined;
  if (ssl !== null && !['true', 'false', 'skip-verify'].includes(ssl)) {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))} has ssl=${JSON.stringify(ssl)}: use ssl=true (TLS, certificate verified), ssl=skip-verify (TLS, not verified) or ssl=false`,
    );
  }
  if (caFile === '' || (caFile !== undefined && ssl === 'false')) {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))}: ssl-ca must name a CA bundle file, and goes with TLS (not ssl=false)`,
    );
  }
  const tls =
    (ssl === null || ssl === 'false') && caFile === undefined
      ? undefined
      : { caFile, verify: ssl !== 'skip-verify' };
  return {
    kind: 'mysql',
    raw,
    host,
    port,
    user: url.username === '' ? 'root' : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    database,
    ...(tls === undefined ? {} : { tls }),
  };
}

function parseDataApi(raw: string): DataApiUrl {
  // ARNs hold colons, so this is not a WHATWG URL: split it by hand.
  const rest = raw.slice('rdsdata://'.length);
  const [path = '', query = ''] = rest.split('?', 2);
  const slash = path.lastIndexOf('/');
  const resourceArn = decodeURIComponent(slash === -1 ? path : path.slice(0, slash));
  const database = decodeURIComponent(slash === -1 ? '' : path.slice(slash + 1));
  const parameters = new URLSearchParams(query);
  const secretArn = parameters.get('secret') ?? '';
  const unknown = [...parameters.keys()].filter((k) => k !== 'secret');
  if (unknown.length > 0) {
    throw new InvalidDatabaseUrl(
      `rdsdata URL has parameters shifu-migrate does not know (${unknown.map((k) => JSON.stringify(k)).join(', ')}): it takes only ?secret=<secret-arn>`,
    );
  }
  const region = CLUSTER_ARN.exec(resourceArn)?.[1];
  if (region === undefined) {
    throw new InvalidDatabaseUrl(
      `rdsdata URL has ${JSON.stringify(resourceArn)} where an Aurora cluster ARN (arn:aws:rds:<region>:<account>:cluster:<name>) belongs: ${FORMS}`,
    );
  }
  if (database === '') {
    throw new InvalidDatabaseUrl(`rdsdata URL names no database: put it after the cluster ARN, ${FORMS}`);
  }
  checkDatabaseName(database, raw);
  if (!SECRET_ARN.test(secretArn)) {
    throw new InvalidDatabaseUrl(
      `rdsdata URL needs ?secret=<Secrets Manager ARN> (arn:aws:secretsmanager:<region>:<account>:secret:<name>), got ${JSON.stringify(secretArn)}`,
    );
  }
  return { kind: 'rdsdata', raw, resourceArn, secretArn, database, region };
}

function checkDatabaseName(database: string, raw: string): void {
  if (!isSafeIdentifier(database)) {
    throw new InvalidDatabaseUrl(
      `database URL ${JSON.stringify(redactUrl(raw))} names database ${JSON.stringify(database)}: use 1 to 64 characters of A-Z, a-z, 0-9, _ or $`,
    );
  }
}

/** The URL with any password replaced by `***`, for messages and logs. */
export function redactUrl(raw: string): string {
  // Up to the last @: a password may hold @ (and / or :) unencoded, and none of it may show.
  return raw.replace(/^(mysql:\/\/[^:/@]*:)[\s\S]*@/, '$1***@');
}

/** The same server with another database, e.g. the target next to the source. */
export function withDatabase(url: DatabaseUrl, database: string): DatabaseUrl {
  checkDatabaseName(database, url.raw);
  if (url.kind === 'mysql') {
    const u = new URL(url.raw);
    u.pathname = `/${database}`;
    return { ...url, raw: u.toString(), database };
  }
  const raw = `rdsdata://${url.resourceArn}/${database}?secret=${url.secretArn}`;
  return { ...url, raw, database };
}
