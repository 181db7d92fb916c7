import type { Config, ReferenceRuleConfig, TenantRuleConfig } from '../config/schema.ts';
import { tenantRules } from '../config/schema.ts';
import type { SqlValue } from '../sql/port.ts';

/**
 * Tenant rules (docs/configuration.md) evaluated in JS, for rows the client-side copy holds. They must give what the
 * SQL form (sql.ts) gives for the same row: comparisons are exact (no collation), e-mail domains are trimmed
 * of spaces and lower-cased the way `LOWER(TRIM(SUBSTRING_INDEX(TRIM(c), '@', -1)))` does. A test checks the
 * two agree on every demo row.
 */

/** Text the way SQL compares it in our rules: numbers as their decimal text, bytes as UTF-8. */
export function asText(value: SqlValue): string | null {
  if (value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return String(value);
}

const trimSpaces = (s: string): string => s.replace(/^ +| +$/g, '');

/** The domain part of an e-mail address, as the SQL rule reads it; null when there is no `@`. */
export function emailDomain(value: string): string | null {
  if (!value.includes('@')) return null;
  return trimSpaces(trimSpaces(value).split('@').at(-1) ?? '').toLowerCase();
}

/**
 * Looks up the tenant of a referenced row already in the target (for a key that is not unique, the row the rule's
 * `whenNotUnique` picks).
 */
export type ReferenceLookup = (rule: ReferenceRuleConfig, value: string) => string | undefined;

function ruleTenant(
  rule: TenantRuleConfig,
  row: Readonly<Record<string, SqlValue>>,
  lookup: ReferenceLookup,
): string | null {
  if (rule.by === 'fixed') return rule.tenant;
  const text = asText(row[rule.column] ?? null);
  if (text === null) return null;
  switch (rule.by) {
    case 'emailDomain': {
      const domain = emailDomain(text);
      if (domain === null) return null;
      let best: { domain: string; tenant: string } | undefined;
      for (const [listed, tenant] of Object.entries(rule.domains)) {
        const d = listed.toLowerCase();
        const hit = domain === d || (rule.subdomains && domain.endsWith(`.${d}`));
        if (hit && (best === undefined || d.length > best.domain.length)) best = { domain: d, tenant };
      }
      return best?.tenant ?? null;
    }
    case 'value':
      for (const [value, tenant] of Object.entries(rule.values)) {
        if (rule.caseSensitive ? text === value : text.toLowerCase() === value.toLowerCase()) return tenant;
      }
      return null;
    case 'keys':
      for (const [tenant, keys] of Object.entries(rule.tenants)) if (keys.includes(text)) return tenant;
      return null;
    case 'reference':
      return text === '' ? null : (lookup(rule, text) ?? null);
  }
}

/** The tenant the rules give a row (first rule that maps it wins), or null when none does. */
export function rowTenant(
  config: Config,
  table: string,
  row: Readonly<Record<string, SqlValue>>,
  lookup: ReferenceLookup,
): string | null {
  const rules = config.tables[table];
  if (rules === undefined) return null;
  for (const rule of tenantRules(rules)) {
    const tenant = ruleTenant(rule, row, lookup);
    if (tenant !== null) return tenant;
  }
  return null;
}

/** Why no rule mapped a row, for the quarantine table. */
export function unmappedReason(
  config: Config,
  table: string,
  row: Readonly<Record<string, SqlValue>>,
): string {
  const rules = config.tables[table];
  const reasons = (rules === undefined ? [] : tenantRules(rules)).map((rule) => {
    if (rule.by === 'fixed') return 'fixed';
    const text = asText(row[rule.column] ?? null);
    if (rule.by === 'reference') {
      if (text === null || text === '') return `${rule.column} is ${text === null ? 'NULL' : 'empty'}`;
      return `${rule.column} ${JSON.stringify(text)} has no row in ${rule.references.table} on the target`;
    }
    return `${rule.column} ${text === null ? 'is NULL' : `${JSON.stringify(text.slice(0, 60))} matches no ${rule.by} rule`}`;
  });
  return `no tenant rule maps the row: ${reasons.join('; ')}`.slice(0, 255);
}
