import { createHash } from 'node:crypto';
import type { Config } from './schema.ts';

/** JSON with object keys sorted, so the same content always gives the same text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/**
 * SHA-256 of what decides a row's tenant and whether it is copied (tenants, default tenant, onUnmapped, tables and
 * their rules), not URLs or tuning: a run is resumed only under the rules it started with.
 */
export function rulesFingerprint(config: Config): string {
  const { tenants, defaultTenant, onUnmapped, tables } = config;
  return createHash('sha256').update(canonical({ tenants, defaultTenant, onUnmapped, tables })).digest('hex');
}
