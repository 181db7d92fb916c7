import { targetHasTable } from '../ledger/runs.ts';
import { str } from '../sql/rows.ts';
import type { TaskDeps } from '../task.ts';

/** The multi-tenant side owns some tenants' writes: what would overwrite or delete them is refused. */
export class TenantsSwitched extends Error {
  override name = 'TenantsSwitched';
}

/**
 * Refuses `what` while any tenant is switched to the multi-tenant side or paused: a new copy or a data rollback
 * would overwrite or delete the writes that side owns. Their owner takes them back first: `rollback --phase
 * application` (their writes drained to legacy, then routed there).
 */
export async function assertLegacyOwnsEveryTenant(deps: TaskDeps, what: string): Promise<void> {
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'tenant_migration_status'))) return;
  const rows = await deps.target.query(
    `SELECT s.tenant_bid FROM tenant_migration_status s
       LEFT JOIN traffic_routing r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid
      WHERE s.status = 'switched' OR r.target IN ('saas', 'paused') ORDER BY s.tenant_bid`,
  );
  if (rows.length === 0) return;
  throw new TenantsSwitched(
    `${what} is refused: the multi-tenant side owns the writes of ${rows.map((r) => str(r, 'tenant_bid')).join(', ')} (switched or paused), and ${what} would overwrite or delete them. Take them back first: npx shifu-migrate rollback --phase application (their writes are drained to legacy, then routed there)`,
  );
}
