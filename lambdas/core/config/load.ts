import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { type DatabaseUrl, parseDatabaseUrl } from '../sql/url.ts';
import { jsonErrorPosition } from './json-position.ts';
import { type Config, type ConfigInput, ConfigSchema } from './schema.ts';

/** The config file read when none is named. */
export const DEFAULT_CONFIG_FILE = 'shifu-migrate.config.json';

/** Environment variables that override config fields, so secrets need not live in the file. */
export const ENV_OVERRIDES = {
  SOURCE_DATABASE_URL: ['source', 'url'],
  TARGET_DATABASE_URL: ['target', 'url'],
  ARCHIVE_URL: ['archive', 'url'],
} as const;

export interface LoadedConfig {
  readonly config: Config;
  /** Where it came from: the file read, or the built-in demo defaults. */
  readonly origin: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'defaults' };
  readonly sourceUrl: DatabaseUrl;
  readonly targetUrl: DatabaseUrl;
}

export interface LoadConfigOptions {
  /** A file named by the user (`--config`); it must exist. */
  readonly file?: string | undefined;
  /** Used when no file is named and the default file is absent. */
  readonly defaults: () => ConfigInput;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

/**
 * Reads, overrides and validates the config. Every problem becomes one line naming the field, what is
 * wrong and how to fix it, in an {@link InputError} (exit code 2).
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  let raw: unknown;
  let origin: LoadedConfig['origin'];
  let label: string;
  if (options.file === '')
    throw new InputError('--config needs a file name: --config shifu-migrate.config.json');
  if (options.file !== undefined || existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))) {
    const path = resolve(cwd, options.file ?? DEFAULT_CONFIG_FILE);
    label = options.file ?? DEFAULT_CONFIG_FILE;
    if (!existsSync(path)) {
      throw new InputError(`config file ${label} not found (looked at ${path}): check the --config path`);
    }
    if (statSync(path).isDirectory()) {
      throw new InputError(
        `${options.file === undefined ? DEFAULT_CONFIG_FILE : `--config ${label}`} is a directory (${path}): name the config file itself, e.g. --config ${join(label, DEFAULT_CONFIG_FILE)}`,
      );
    }
    raw = parseJson(readFileSync(path, 'utf8'), label);
    origin = { kind: 'file', path };
  } else {
    raw = options.defaults();
    origin = { kind: 'defaults' };
    label = 'the built-in demo config';
  }

  const overridden: string[] = [];
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const record = raw as Record<string, unknown>;
    for (const [name, [section, field]] of Object.entries(ENV_OVERRIDES)) {
      const value = env[name];
      if (value === undefined || value === '') continue;
      const current = record[section];
      record[section] = {
        ...(typeof current === 'object' && current !== null ? current : {}),
        [field]: value,
      };
      overridden.push(`${section}.${field}`);
    }
  }

  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new InputError(
      `${label} is not valid:`,
      parsed.error.issues.map((issue) => describeIssue(issue, overridden)),
    );
  }
  const config = parsed.data;
  const problems: string[] = [];
  const url = (path: 'source' | 'target'): DatabaseUrl | undefined => {
    try {
      return parseDatabaseUrl(config[path].url);
    } catch (error) {
      problems.push(`${path}.url${fromEnv(`${path}.url`, overridden)}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const sourceUrl = url('source');
  const targetUrl = url('target');
  if (sourceUrl && targetUrl && sameDatabase(sourceUrl, targetUrl)) {
    problems.push(
      `target.url: names the same database as source.url (${sourceUrl.database}): the target must be another database`,
    );
  }
  if (problems.length > 0 || sourceUrl === undefined || targetUrl === undefined) {
    throw new InputError(`${label} is not valid:`, problems);
  }
  return { config, origin, sourceUrl, targetUrl };
}

function sameDatabase(a: DatabaseUrl, b: DatabaseUrl): boolean {
  if (a.kind === 'mysql' && b.kind === 'mysql') {
    return a.host === b.host && a.port === b.port && a.database === b.database;
  }
  if (a.kind === 'rdsdata' && b.kind === 'rdsdata')
    return a.resourceArn === b.resourceArn && a.database === b.database;
  return false;
}

function parseJson(text: string, label: string): unknown {
  try {
    // Editors on Windows save UTF-8 with a byte order mark; JSON.parse does not take it.
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    const message = (error as Error).message.replace(/\s+/g, ' ');
    const position = jsonErrorPosition(text);
    const where = position === undefined ? '' : ` at line ${position.line}, column ${position.column}`;
    throw new InputError(
      `${label} is not valid JSON${where}: ${message}. Fix the syntax (no comments or trailing commas).`,
    );
  }
}

/** `tables.order_orders.tenant[0].references` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

function fromEnv(path: string, overridden: readonly string[]): string {
  if (!overridden.includes(path)) return '';
  const name = Object.entries(ENV_OVERRIDES).find(([, p]) => p.join('.') === path)?.[0];
  return name === undefined ? '' : ` (from ${name})`;
}

let knownFields: string[] | undefined;

// Every property name the schema knows, for "did you mean" suggestions.
function fieldNames(): string[] {
  if (knownFields === undefined) {
    const names = new Set<string>();
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) {
        node.forEach(walk);
      } else if (typeof node === 'object' && node !== null) {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'properties' && typeof value === 'object' && value !== null) {
            for (const name of Object.keys(value)) names.add(name);
          }
          walk(value);
        }
      }
    };
    walk(z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }));
    knownFields = [...names];
  }
  return knownFields;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const current = row[j] ?? 0;
      row[j] = Math.min(current + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] ?? 0;
}

function suggestion(key: string): string {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of fieldNames()) {
    const d = distance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : '';
}

function describeIssue(issue: z.core.$ZodIssue, overridden: readonly string[]): string {
  return describe(issue, [], overridden).join('\n  - ');
}

// One line per problem; unions are explained through the branch that fits the input's shape.
function describe(
  issue: z.core.$ZodIssue,
  prefix: readonly PropertyKey[],
  overridden: readonly string[],
): string[] {
  const fullPath = [...prefix, ...issue.path];
  const path = formatPath(fullPath);
  const where = `${path}${fromEnv(path, overridden)}`;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map(
        (key) => `${formatPath([...fullPath, key])}: unknown field. Fix: remove it${suggestion(key)}`,
      );
    case 'invalid_type':
      return /received undefined/.test(issue.message)
        ? [`${where}: missing. Fix: add it (${issue.expected})`]
        : [`${where}: ${issue.message}. Fix: give a ${issue.expected}`];
    case 'invalid_value':
      return [
        `${where}: ${issue.message}. Fix: use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`,
      ];
    case 'invalid_key':
      return issue.issues.map((inner) => `${where}: ${inner.message}`);
    case 'invalid_union': {
      if (fullPath.at(-1) === 'whenNotUnique') {
        return [
          `${where}: not a choice. Fix: use "highestKey", "lowestKey", { "newest": "<column>" } or { "oldest": "<column>" } (one key)`,
        ];
      }
      if ('discriminator' in issue || ('note' in issue && issue.note === 'No matching discriminator')) {
        const byPath = fullPath.at(-1) === 'by' ? fullPath : [...fullPath, 'by'];
        return [
          `${formatPath(byPath)}: unknown rule kind. Fix: set "by" to one of "emailDomain", "value", "keys", "reference", "fixed"`,
        ];
      }
      // The branch whose complaints are not about the value's own type is the one the author meant.
      const branches = issue.errors.filter(
        (branch) => !branch.some((inner) => inner.code === 'invalid_type' && inner.path.length === 0),
      );
      const [meant] = branches.length > 0 ? branches : issue.errors;
      if (meant !== undefined && meant.length > 0)
        return meant.flatMap((inner) => describe(inner, fullPath, overridden));
      return [`${where}: ${issue.message}. Fix: see docs/configuration.md for the accepted forms`];
    }
    case 'too_small':
    case 'too_big':
      return [`${where}: ${issue.message}. Fix: change the value to fit`];
    default:
      return [`${where}: ${issue.message}`];
  }
}
