import { statfs } from 'node:fs/promises';
import { hostname } from 'node:os';
import { idSeries } from '../application/gates.ts';
import { rulesFingerprint } from '../core/config/fingerprint.ts';
import { tenantRules } from '../core/config/schema.ts';
import { DatabaseUnreachable } from '../core/errors.ts';
import { ident, isSafeIdentifier, qualified } from '../core/identifiers.ts';
import { newRunId } from '../core/ledger/runs.ts';
import { assertSourceIsNotTarget, configProblems, SourceIsTarget } from '../core/preflight.ts';
import { introspect, readServerInfo } from '../core/schema/introspect.ts';
import { chunkKey, isUniqueColumn } from '../core/schema/keys.ts';
import type { SchemaInfo } from '../core/schema/types.ts';
import type { Row } from '../core/sql/port.ts';
import { num, scalarNumber, strOrNull } from '../core/sql/rows.ts';
import type { DatabaseUrl } from '../core/sql/url.ts';
import type { TaskDeps } from '../core/task.ts';
import { type RuleContext, referenceChain, tenantExpression } from '../core/tenant/sql.ts';
import { sourceChecks, syncChecks, targetFreeSpace } from './checks.ts';
import { duplicateKeyTenants } from './duplicates.ts';
import { renderMarkdown } from './report.ts';
import type {
  AssessInput,
  AssessOutput,
  AssessReport,
  ComplexityFactor,
  Problem,
  TableFinding,
  TableSummary,
} from './schema.ts';

const prefix = (runId: string) => `reports/assess/${runId}`;

async function readSchema(deps: TaskDeps, runId: string): Promise<SchemaInfo> {
  const body = await deps.archive.get(`${prefix(runId)}/schema.json`);
  if (body === undefined)
    throw new Error(`assessment ${runId} has no schema.json in the archive: run its plan step first`);
  return JSON.parse(body.toString('utf8')) as SchemaInfo;
}

/** Step 1: read the source's structure once, for every table step to share. */
export async function planAssessment(deps: TaskDeps): Promise<{ runId: string; tables: string[] }> {
  const runId = newRunId('assess');
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  await deps.archive.put(`${prefix(runId)}/schema.json`, JSON.stringify(schema, null, 2), {
    contentType: 'application/json',
  });
  return { runId, tables: schema.tables.map((t) => t.name) };
}

function level(score: number): string {
  if (score <= 1) return 'Low';
  if (score <= 3) return 'Medium';
  if (score <= 5) return 'High';
  return 'Very High';
}

/** Step 2, once per table (a Map iteration): counts, tenant mapping under the config, orphans, complexity. */
export async function assessTable(deps: TaskDeps, runId: string, name: string): Promise<TableSummary> {
  const schema = await readSchema(deps, runId);
  const tables = new Map(schema.tables.map((t) => [t.name, t]));
  const info = tables.get(name);
  if (info === undefined) throw new Error(`table ${name} is not in the source schema read by ${runId}`);
  const { config } = deps;
  const db = deps.sourceUrl.database;
  const rules = config.tables[name];
  const mode: TableFinding['mode'] =
    rules === undefined
      ? 'uncovered'
      : rules.global
        ? 'global'
        : rules.exclude !== undefined
          ? 'exclude'
          : 'tenant';
  const problems: Problem[] = [];
  const factors: ComplexityFactor[] = [];
  // A name we will not quote is counted by the server's estimate, and blocks below (unsupported-name).
  const rows = isSafeIdentifier(name)
    ? scalarNumber(await deps.source.query(`SELECT COUNT(*) AS n FROM ${qualified(db, name)}`))
    : info.rowsEstimate;
  const key = chunkKey(info);
  const tenants: Record<string, number> = {};
  let unmapped = 0;
  const orphans = { emptyReference: 0, missingReference: 0 };
  const chain = mode === 'tenant' ? referenceChain(config, name) : [];
  const onUnmapped = mode === 'tenant' ? (rules?.onUnmapped ?? config.onUnmapped) : null;

  if (mode === 'uncovered') {
    problems.push({
      severity: 'blocking',
      code: 'uncovered-table',
      table: name,
      message: isSafeIdentifier(name)
        ? `${name} (${rows} rows) is not in the config: add tables.${name} with "global": true, a "tenant" rule, or "exclude": "<reason>"`
        : `${JSON.stringify(name)} (about ${rows} rows) is not in the config, and its name cannot be migrated (only A-Z, a-z, 0-9, _ and $ are used unquoted): add "tables": { ${JSON.stringify(name)}: { "exclude": "<reason>" } }, or rename it on the source`,
    });
  }
  if (mode === 'exclude') {
    problems.push({
      severity: 'info',
      code: 'excluded-table',
      table: name,
      message: `${name} is excluded: ${rules?.exclude}`,
    });
  }
  if ((mode === 'tenant' || mode === 'global') && key === null) {
    problems.push({
      severity: 'blocking',
      code: 'no-chunk-key',
      table: name,
      message: `${name} has no primary key and no unique key of NOT NULL columns: rows cannot be copied idempotently. Add a primary key to the source table`,
    });
    factors.push({ factor: 'No usable primary or unique key', points: 3 });
  } else if (
    (mode === 'tenant' || mode === 'global') &&
    key !== null &&
    key.some((k) => /binary|blob|^bit$/.test(info.columns.find((c) => c.name === k)?.dataType ?? ''))
  ) {
    problems.push({
      severity: 'blocking',
      code: 'binary-chunk-key',
      table: name,
      message: `${name}'s key (${key?.join(', ')}) has ${key?.some((k) => info.columns.find((c) => c.name === k)?.dataType === 'bit') ? 'BIT' : 'binary'} columns: chunk bounds and quarantined keys are kept as JSON text, which binary values do not survive. Give the table a primary key or NOT NULL unique key of non-binary columns, or exclude it`,
    });
  } else if ((mode === 'tenant' || mode === 'global') && info.primaryKey === null) {
    factors.push({ factor: `No primary key: chunks use unique key (${key?.join(', ')})`, points: 1 });
  }

  if (mode === 'global') {
    const outgoing = schema.references.filter(
      (r) => r.fromTable === name && config.tables[r.toTable]?.tenant !== undefined,
    );
    for (const ref of outgoing) {
      problems.push({
        severity: 'warning',
        code: 'global-table-with-owner',
        table: name,
        message: `${name} is global but ${name}.${ref.fromColumn} points at ${ref.toTable}.${ref.toColumn}: its rows may belong to tenants`,
      });
    }
  }

  // What the config asks of the source that it lacks, for this table and every table its tenant comes through:
  // blocking findings (foundation and data refuse to start on them), never a failed query.
  const mismatches = mode === 'tenant' || mode === 'global' ? configProblems(config, schema) : [];
  const ownProblems = mismatches.filter((p) => p.table === name);
  const chainProblems = mismatches.filter((p) => chain.includes(p.table));
  for (const problem of ownProblems) {
    problems.push({
      severity: 'blocking',
      code: /does not handle/.test(problem.message) ? 'unsupported-name' : 'rule-column-missing',
      table: name,
      message: `${problem.path}: ${problem.message}`,
    });
  }
  if (mode === 'tenant' && rules !== undefined) {
    for (const rule of tenantRules(rules)) {
      if (rule.by !== 'reference') continue;
      const parent = tables.get(rule.references.table);
      if (
        parent?.columns.some((c) => c.name === rule.references.column) &&
        !parent.indexes.some((i) => i.columns[0] === rule.references.column)
      ) {
        problems.push({
          severity: 'warning',
          code: 'unindexed-reference',
          table: name,
          message: `${rule.references.table}.${rule.references.column} has no index: resolving ${name}'s tenant scans it for every row. Add an index on the source`,
        });
      }
    }
    if (chainProblems.length > 0) {
      problems.push({
        severity: 'blocking',
        code: 'rule-column-missing',
        table: name,
        message: `${name} takes its tenant through ${chain.join(' → ')}, whose rules do not fit the source: ${chainProblems.map((p) => p.path).join(', ')}. Fix the config`,
      });
    }
    if (ownProblems.length + chainProblems.length > 0) {
      // Nothing to count: the rules cannot be evaluated.
    } else {
      const ctx: RuleContext = { config, database: db, tables };
      const expression = tenantExpression(ctx, name, 'a');
      const counted = await deps.source.query(
        `SELECT t AS tenant, COUNT(*) AS n FROM (SELECT ${expression.sql} AS t FROM ${qualified(db, name)} a) x GROUP BY t`,
        expression.params,
      );
      for (const row of counted) {
        const tenant = strOrNull(row, 'tenant');
        if (tenant === null) unmapped += num(row, 'n');
        else tenants[tenant] = (tenants[tenant] ?? 0) + num(row, 'n');
      }
      if (onUnmapped === 'default' && unmapped > 0) {
        tenants[config.defaultTenant] = (tenants[config.defaultTenant] ?? 0) + unmapped;
      }
      const reference = tenantRules(rules).find((r) => r.by === 'reference');
      if (reference?.by === 'reference') {
        const col = `a.${ident(reference.column, 'column')}`;
        const parentKey = `p.${ident(reference.references.column, 'column')}`;
        const [row] = await deps.source.query(
          `SELECT COALESCE(SUM(${col} = ''), 0) AS empty_ref,
                  COALESCE(SUM(${col} <> '' AND NOT EXISTS (SELECT 1 FROM ${qualified(db, reference.references.table)} p WHERE ${parentKey} = ${col})), 0) AS missing_ref
             FROM ${qualified(db, name)} a`,
        );
        orphans.emptyReference = row === undefined ? 0 : num(row, 'empty_ref');
        orphans.missingReference = row === undefined ? 0 : num(row, 'missing_ref');
      }
      if (unmapped > 0) {
        const what = `${unmapped} of ${rows} rows of ${name} get no tenant from the rules`;
        if (onUnmapped === 'fail') {
          problems.push({
            severity: 'blocking',
            code: 'unmapped-rows-fail',
            table: name,
            message: `${what} and onUnmapped is "fail": extend the rules, or set onUnmapped to "quarantine" or "default"`,
          });
        } else if (onUnmapped === 'quarantine') {
          problems.push({
            severity: 'warning',
            code: 'unmapped-rows-quarantined',
            table: name,
            message: `${what}: they will be copied to migration_quarantine with the reason`,
          });
        } else {
          problems.push({
            severity: 'info',
            code: 'unmapped-rows-default',
            table: name,
            message: `${what}: they go to the default tenant ${config.defaultTenant}`,
          });
        }
        factors.push({ factor: `${unmapped} rows no rule maps`, points: 1 });
      }
      if (orphans.emptyReference + orphans.missingReference > 0) {
        factors.push({
          factor: `${orphans.emptyReference} empty and ${orphans.missingReference} dangling references`,
          points: 1,
        });
      }
    }
    if (ownProblems.length + chainProblems.length === 0)
      problems.push(...(await duplicateKeyTenants(deps, config, tables, info)));
    if (chain.length > 0)
      factors.push({ factor: `Tenant derived through ${chain.join(' → ')}`, points: chain.length });
    const nonUnique = [name, ...chain].flatMap((t) =>
      tenantRules(config.tables[t] ?? {}).flatMap((r) =>
        r.by === 'reference' && !isUniqueColumn(tables.get(r.references.table), r.references.column)
          ? [`${r.references.table}.${r.references.column}`]
          : [],
      ),
    );
    if (nonUnique.length > 0) {
      factors.push({
        factor: `Referenced key ${nonUnique.join(', ')} is not unique: the reference rule's whenNotUnique picks the row that decides`,
        points: 1,
      });
    }
  }

  if (mode === 'tenant' || mode === 'global') {
    if (rows >= 10_000_000) factors.push({ factor: `Large table (${rows} rows)`, points: 2 });
    else if (rows >= 100_000) factors.push({ factor: `Sizeable table (${rows} rows)`, points: 1 });
    const large = info.columns.filter(
      (c) => /^(medium|long)(text|blob)$|^json$/.test(c.dataType) || c.isJson,
    );
    if (large.length > 0) {
      factors.push({
        factor: `Large values (${large.map((c) => c.name).join(', ')}): paged by bytes on the Data API`,
        points: 1,
      });
    }
    const dependents = Object.keys(config.tables).filter(
      (t) => t !== name && referenceChain(config, t)[0] === name,
    );
    if (dependents.length > 0) {
      factors.push({
        factor: `${dependents.length} tables take their tenant from this one: it is copied first`,
        points: 1,
      });
    }
  }
  const score = factors.reduce((s, f) => s + f.points, 0);
  const finding: TableFinding = {
    table: name,
    mode,
    rows,
    dataBytes: info.dataBytes,
    indexBytes: info.indexBytes,
    primaryKey: info.primaryKey,
    chunkKey: key,
    businessKey: info.businessKey?.column ?? null,
    tenantChain: chain,
    tenants,
    unmapped,
    onUnmapped,
    orphans,
    complexity: { score, level: level(score), factors },
    problems,
  };
  await deps.archive.put(`${prefix(runId)}/tables/${name}.json`, JSON.stringify(finding, null, 2), {
    contentType: 'application/json',
  });
  return {
    table: name,
    rows,
    unmapped,
    blocking: problems.filter((p) => p.severity === 'blocking').length,
    level: level(score),
  };
}

/** Step 3: gathers the table findings, adds what spans tables and servers, writes JSON and Markdown. */
export async function writeReport(deps: TaskDeps, runId: string): Promise<AssessOutput> {
  const schema = await readSchema(deps, runId);
  const findings: TableFinding[] = [];
  for (const key of await deps.archive.list(`${prefix(runId)}/tables/`)) {
    const body = await deps.archive.get(key);
    if (body !== undefined) findings.push(JSON.parse(body.toString('utf8')) as TableFinding);
  }
  findings.sort((a, b) => a.table.localeCompare(b.table));
  const problems: Problem[] = [];
  const assessed = new Set(findings.map((f) => f.table));
  for (const t of schema.tables) {
    if (!assessed.has(t.name)) {
      problems.push({
        severity: 'blocking',
        code: 'table-not-assessed',
        table: t.name,
        message: `${t.name} was not assessed`,
      });
    }
  }
  for (const configured of Object.keys(deps.config.tables)) {
    if (!schema.tables.some((t) => t.name === configured)) {
      problems.push({
        severity: 'warning',
        code: 'unknown-configured-table',
        table: configured,
        message: `tables.${configured} is in the config but not in the source ${schema.database}: a typo, or a table since dropped`,
      });
    }
  }
  for (const view of schema.views) {
    problems.push({
      severity: 'info',
      code: 'view-not-migrated',
      table: view,
      message: `${view} is a view: views are not migrated; recreate it on the target if the application needs it`,
    });
  }
  for (const a of schema.ambiguousReferences) {
    problems.push({
      severity: 'info',
      code: 'ambiguous-reference',
      table: a.fromTable,
      message: `${a.fromTable}.${a.fromColumn} could point at ${a.candidates.join(' or ')}: name the one meant in a reference rule if its tenant depends on it`,
    });
  }

  problems.push(...(await sourceChecks(deps.source, schema)));
  problems.push(...syncChecks(deps.config, schema));
  // The application phase: the two sides must allocate ids from disjoint series once both take writes.
  const ids = await idSeries(deps.source, deps.targetServer, deps.config);
  problems.push({
    severity: ids.open ? 'info' : 'warning',
    code: ids.open ? 'id-series' : 'id-series-overlap',
    message: ids.open
      ? `ids while both sides take writes: ${ids.detail}`
      : `before the application phase switches a tenant, the two sides must allocate AUTO_INCREMENT ids from disjoint series, and they do not: ${ids.detail}`,
  });
  const writes = await sourceWritePrivileges(deps);
  if (writes.length > 0)
    problems.push({
      severity: 'warning',
      code: 'source-user-can-write',
      message: `the source's database user may write (${writes.join(', ')}): the tool opens the source read-only, but on AWS the Data API cannot be made read-only, so the user should be. Give the source its own secret for a user with SELECT only (GRANT SELECT ON \`${deps.sourceUrl.database}\`.* TO …)`,
    });
  const missing = await missingTargetPrivileges(deps);
  if (missing !== null && missing.privileges.length > 0)
    problems.push({
      // Privileges through roles are not expanded here: then a warning, not a block.
      severity: missing.roles ? 'warning' : 'blocking',
      code: 'target-privileges',
      message: `the target's database user may not ${missing.privileges.join(', ')} on ${deps.targetUrl.database}${missing.roles ? ' (as far as its own grants say; its roles were not looked into)' : ''}: foundation creates and alters tables, data writes and builds indexes, rollbacks delete and drop. Fix: GRANT ${missing.privileges.join(', ')} ON \`${deps.targetUrl.database}\`.* TO <the target user>`,
    });
  problems.push(await estimatedDuration(deps, schema, new Map(findings.map((f) => [f.table, f.rows]))));
  problems.push(await freeSpace(deps, schema));

  let target: AssessReport['target'] = {
    database: deps.targetUrl.database,
    at: serverAddress(deps.targetUrl),
    server: null,
    flavor: null,
    exists: false,
  };
  try {
    const server = await readServerInfo(deps.targetServer);
    try {
      await assertSourceIsNotTarget(deps);
    } catch (error) {
      if (!(error instanceof SourceIsTarget)) throw error;
      problems.push({ severity: 'blocking', code: 'target-is-source', message: error.message });
    }
    const exists = await deps.targetServer.query(
      'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [deps.targetUrl.database],
    );
    target = {
      database: deps.targetUrl.database,
      at: serverAddress(deps.targetUrl),
      server: server.version,
      flavor: server.flavor,
      exists: exists.length > 0,
    };
    if (target.exists) {
      const clashes = await deps.targetServer.query(
        'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_ROWS > 0',
        [deps.targetUrl.database],
      );
      const migrated = new Set(
        findings.filter((f) => f.mode === 'tenant' || f.mode === 'global').map((f) => f.table),
      );
      for (const row of clashes) {
        const name = strOrNull(row, 'name') ?? '';
        if (migrated.has(name)) {
          problems.push({
            severity: 'warning',
            code: 'target-table-has-rows',
            table: name,
            message: `the target already holds rows in ${name}`,
          });
        }
      }
    } else {
      problems.push({
        severity: 'info',
        code: 'target-database-missing',
        message: `the target database ${deps.targetUrl.database} does not exist yet: foundation creates it`,
      });
    }
    if (server.flavor !== schema.server.flavor) {
      problems.push({
        severity: 'warning',
        code: 'server-flavors-differ',
        message: `source is ${schema.server.flavor} ${schema.server.version}, target ${server.flavor} ${server.version}: JSON is LONGTEXT on MariaDB and normalised JSON on MySQL, so JSON columns compare by value, not text`,
      });
    }
    const instant =
      server.flavor === 'mariadb'
        ? server.major > 10 || (server.major === 10 && server.minor >= 3)
        : server.major > 8 || (server.major === 8 && (server.minor > 0 || server.patch >= 29));
    problems.push({
      severity: 'info',
      code: 'target-ddl',
      message: `foundation creates new tables on the target (no change to live tables). ALTER on an existing target table uses ${instant ? 'ALGORITHM=INSTANT' : 'ALGORITHM=INPLACE, LOCK=NONE'} on ${server.flavor} ${server.version}`,
    });
  } catch (error) {
    if (!(error instanceof DatabaseUnreachable)) throw error;
    problems.push({
      severity: 'blocking',
      code: 'target-unreachable',
      message: `nothing answers at the target (${error.url})`,
    });
  }

  const all = [...problems, ...findings.flatMap((f) => f.problems)];
  const order = { blocking: 0, warning: 1, info: 2 } as const;
  all.sort((a, b) => order[a.severity] - order[b.severity]);
  const blocking = all.filter((p) => p.severity === 'blocking').length;
  const report: AssessReport = {
    runId,
    generatedAt: new Date().toISOString(),
    configHash: rulesFingerprint(deps.config),
    ready: blocking === 0,
    source: {
      database: schema.database,
      server: schema.server.version,
      flavor: schema.server.flavor,
      at: serverAddress(deps.sourceUrl),
    },
    target,
    totals: {
      tables: findings.length,
      rows: findings.reduce((s, f) => s + f.rows, 0),
      bytes: findings.reduce((s, f) => s + f.dataBytes + f.indexBytes, 0),
      blocking,
      warnings: all.filter((p) => p.severity === 'warning').length,
    },
    problems: all,
    tables: findings,
  };
  const reportJson = `${prefix(runId)}/report.json`;
  const reportMarkdown = `${prefix(runId)}/report.md`;
  await deps.archive.put(reportJson, JSON.stringify(report, null, 2), { contentType: 'application/json' });
  await deps.archive.put(reportMarkdown, renderMarkdown(report), { contentType: 'text/markdown' });
  return {
    runId,
    ready: report.ready,
    blocking,
    warnings: report.totals.warnings,
    tables: report.totals.tables,
    rows: report.totals.rows,
    reportJson,
    reportMarkdown,
  };
}

export async function runAssess(input: AssessInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'plan':
      return planAssessment(deps);
    case 'table':
      return assessTable(deps, input.runId, input.table);
    case 'report':
      return writeReport(deps, input.runId);
  }
}

const WRITE_PRIVILEGES =
  /\b(ALL PRIVILEGES|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|INDEX|TRIGGER|REFERENCES|EVENT|LOCK TABLES)\b/g;

/**
 * The write privileges the source's user holds on the source database (or on every database), from SHOW GRANTS:
 * none for a read-only user. A server that will not say (a proxy, a missing privilege) gives none: nothing to warn.
 */
export async function sourceWritePrivileges(deps: TaskDeps): Promise<string[]> {
  let grants: Row[];
  try {
    grants = await deps.source.query('SHOW GRANTS FOR CURRENT_USER()');
  } catch {
    return [];
  }
  const db = deps.sourceUrl.database;
  // Grants name the database as written, or with its _ escaped (a grant on a pattern).
  const scopes = [' ON *.* ', ` ON \`${db}\`.`, ` ON \`${db.replaceAll('_', '\\_')}\`.`];
  const found = new Set<string>();
  for (const row of grants) {
    const text = String(Object.values(row)[0] ?? '');
    const on = text.toUpperCase().indexOf(' ON ');
    if (!/^GRANT /i.test(text) || on === -1 || !scopes.some((scope) => text.includes(scope))) continue;
    for (const m of text.slice(6, on).toUpperCase().matchAll(WRITE_PRIVILEGES))
      if (m[1] !== undefined) found.add(m[1]);
  }
  return [...found].sort();
}

/** What the target's user needs on its database: foundation, data, sync, integration, and their rollbacks. */
const TARGET_NEEDS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'ALTER', 'INDEX', 'DROP'] as const;

/**
 * The privileges the target's user lacks on the target database, from its grants (global, or on the database as
 * written or as a pattern); null when the grants cannot be read.
 */
export async function missingTargetPrivileges(
  deps: TaskDeps,
): Promise<{ privileges: string[]; roles: boolean } | null> {
  let grants: Row[];
  try {
    grants = await deps.targetServer.query('SHOW GRANTS FOR CURRENT_USER()');
  } catch {
    return null;
  }
  const db = deps.targetUrl.database;
  const scopes = [' ON *.* ', ` ON \`${db}\`.`, ` ON \`${db.replaceAll('_', '\\_')}\`.`];
  const held = new Set<string>();
  let roles = false;
  for (const row of grants) {
    const text = String(Object.values(row)[0] ?? '');
    const on = text.toUpperCase().indexOf(' ON ');
    if (/^GRANT /i.test(text) && on === -1) roles = true;
    if (!/^GRANT /i.test(text) || on === -1 || !scopes.some((scope) => text.includes(scope))) continue;
    const granted = text.slice(6, on).toUpperCase();
    if (/\bALL PRIVILEGES\b/.test(granted)) return { privileges: [], roles };
    for (const need of TARGET_NEEDS) if (new RegExp(`\\b${need}\\b`).test(granted)) held.add(need);
  }
  return { privileges: TARGET_NEEDS.filter((need) => !held.has(need)), roles };
}

/** Rows read for the duration estimate: one keyset page of the largest table. */
const SAMPLE_ROWS = 2_000;

/**
 * How long the data phase may take, from a measured sample: one page of the largest table read as the copy reads
 * it, its rate scaled to every row, with the copy's writes, both sides' checksums, index builds and isolation checks
 * about six times the reading, parallel chunks helping up to two at once. An estimate, said as one.
 */
/**
 * The target's free disk space against what the copy needs: read from the server's data directory when the server
 * runs on this machine (a local run against a local server); Aurora's volume grows by itself; otherwise it cannot be
 * read through SQL, and the finding says what to check.
 */
async function freeSpace(deps: TaskDeps, schema: SchemaInfo): Promise<Problem> {
  const migrated = schema.tables.filter((t) => deps.config.tables[t.name]?.exclude === undefined);
  const sourceBytes = migrated.reduce((sum, t) => sum + t.dataBytes + t.indexBytes, 0);
  const url = deps.targetUrl;
  const aurora = async (): Promise<boolean> =>
    (await deps.targetServer.query('SELECT @@aurora_version AS v').catch(() => [])).length > 0;
  if (url.kind === 'rdsdata' || (await aurora()))
    return targetFreeSpace({ sourceBytes, free: null, where: '', aurora: true });
  let server: Row | undefined;
  let unreadable = '';
  try {
    [server] = await deps.targetServer.query('SELECT @@datadir AS d, @@hostname AS h, @@log_bin AS b');
  } catch (error) {
    unreadable = (error as Error).message;
  }
  const datadir = server === undefined ? null : strOrNull(server, 'd');
  // What the target holds already of the migrated tables (a resumed or repeated copy) needs no more room.
  const present = new Set(migrated.map((t) => t.name));
  const held = await deps.targetServer
    .query(
      'SELECT TABLE_NAME AS t, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [url.database],
    )
    .catch(() => [] as Row[]);
  const inputs = {
    sourceBytes,
    targetBytes: held.reduce(
      (sum, r) => sum + (present.has(strOrNull(r, 't') ?? '') ? Number(r.n ?? 0) : 0),
      0,
    ),
    // With the binary log on, the copy is written to it too.
    binlog: server !== undefined && Number(server.b ?? 0) === 1,
  };
  if (server === undefined || datadir === null)
    return targetFreeSpace({
      ...inputs,
      free: null,
      where: `the server did not say its data directory${unreadable === '' ? '' : ` (${unreadable})`}`,
      aurora: false,
    });
  // Only a server on this very machine: a loopback port may lead to a container or a tunnel, whose disk is not ours.
  const here = LOOPBACK.test(url.host) && strOrNull(server, 'h') === hostname();
  if (!here)
    return targetFreeSpace({
      ...inputs,
      free: null,
      where: `${url.host} is ${LOOPBACK.test(url.host) ? 'a port of another machine or container (the server names another host)' : 'another machine'}, and SQL does not tell a disk's free space`,
      aurora: false,
    });
  try {
    const fs = await statfs(datadir);
    return targetFreeSpace({ ...inputs, free: fs.bavail * fs.bsize, where: datadir, aurora: false });
  } catch (error) {
    return targetFreeSpace({
      ...inputs,
      free: null,
      where: `its data directory ${datadir} could not be read: ${(error as Error).message}`,
      aurora: false,
    });
  }
}

/** Where a database is, without credentials: `host:port`, or the cluster's ARN (the Data API). */
export function serverAddress(url: DatabaseUrl): string {
  return url.kind === 'mysql' ? `${url.host}:${url.port}` : url.resourceArn;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

export interface DurationEstimate {
  readonly seconds: number;
  readonly rows: number;
  readonly sample: { readonly table: string; readonly rows: number; readonly seconds: number };
}

/** The data phase's time, from one timed page of the largest table; null when there is nothing to time. */
export async function estimateDataSeconds(
  deps: TaskDeps,
  schema: SchemaInfo,
  /** Rows counted exactly, by table (the assessment's counts, the plan's); the server's estimate otherwise. */
  counted: ReadonlyMap<string, number> = new Map(),
): Promise<DurationEstimate | null> {
  // The tables the copy takes: the config's, less those it excludes.
  const copied = schema.tables.filter(
    (t) => deps.config.tables[t.name] !== undefined && deps.config.tables[t.name]?.exclude === undefined,
  );
  const rowsOf = (t: { name: string; rowsEstimate: number }) => counted.get(t.name) ?? t.rowsEstimate;
  const rows = copied.reduce((sum, t) => sum + rowsOf(t), 0);
  const largest = [...copied].sort((a, b) => rowsOf(b) - rowsOf(a))[0];
  const key = largest === undefined ? null : chunkKey(largest);
  if (largest === undefined || key === null || rows === 0) return null;
  const began = performance.now();
  const sample = await deps.source.query(
    `SELECT * FROM ${qualified(deps.sourceUrl.database, largest.name)} ORDER BY ${key.map((k) => ident(k)).join(', ')} LIMIT ?`,
    [SAMPLE_ROWS],
  );
  const seconds = Math.max((performance.now() - began) / 1000, 0.001);
  const rate = sample.length / seconds;
  return {
    // The copy, its checksums, index builds and isolation checks take about six times the reading; chunks in
    // parallel help up to about two at once (calibrated on the 1M-row demo: 18 s estimated, 19 s taken).
    seconds: ((rows / Math.max(rate, 1)) * 6) / Math.min(2, Math.max(1, deps.config.chunking.maxConcurrency)),
    rows,
    sample: { table: largest.name, rows: sample.length, seconds },
  };
}

async function estimatedDuration(
  deps: TaskDeps,
  schema: SchemaInfo,
  counted: ReadonlyMap<string, number>,
): Promise<Problem> {
  const estimate = await estimateDataSeconds(deps, schema, counted);
  if (estimate === null)
    return {
      severity: 'info',
      code: 'estimated-duration',
      message: 'no rows to time a sample of: no estimate',
    };
  const { sample, rows } = estimate;
  const rate = sample.rows / sample.seconds;
  const said =
    estimate.seconds < 90
      ? `${Math.max(1, Math.round(estimate.seconds))} s`
      : `${Math.round(estimate.seconds / 60)} min`;
  return {
    severity: 'info',
    code: 'estimated-duration',
    message: `the data phase may take about ${said} for ${rows.toLocaleString('en-US')} rows: ${sample.rows.toLocaleString('en-US')} rows of ${sample.table} read in ${(sample.seconds * 1000).toFixed(0)} ms (${Math.round(rate).toLocaleString('en-US')} rows/s), the copy, its checksums, indexes and isolation about six times the reading, at most two chunks' worth at once; an estimate from one sample`,
  };
}
