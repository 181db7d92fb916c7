/** The CloudWatch namespace of every metric our functions emit; the stack's alarms and dashboard read it. */
export const METRICS_NAMESPACE = 'ShifuMigrate';

/**
 * The service every metric, log line and trace names (Powertools' `service`): a dimension of every metric, so
 * the stack's alarms and dashboard name it with the phase ({@link metricDimensions}).
 */
export const SERVICE_NAME = 'shifu-migrate';

/** The dimensions of a phase's metrics, as the functions emit them and the alarms read them. */
export function metricDimensions(phase: string): { service: string; Phase: string };
export function metricDimensions(
  phase: string,
  tenant: string,
): { service: string; Phase: string; Tenant: string };
export function metricDimensions(phase: string, tenant?: string): Record<string, string> {
  return tenant === undefined
    ? { service: SERVICE_NAME, Phase: phase }
    : { service: SERVICE_NAME, Phase: phase, Tenant: tenant };
}

/** The metrics, with their units: the stack builds its alarms and dashboard from this list. */
export const METRICS = {
  RowsCopied: 'Count',
  RowsQuarantined: 'Count',
  ChunkDuration: 'Milliseconds',
  /** Chunks that differed at once and were copied again (healed). */
  ChunksRecopied: 'Count',
  /** Chunks that still differ after a re-copy: the phase fails on each. */
  ChecksumMismatches: 'Count',
  /** Sync: the largest table lag of a pass (seconds from the oldest change it may not have applied). */
  SyncLagSeconds: 'Seconds',
  SyncRowsApplied: 'Count',
  SyncRowsDeleted: 'Count',
  /** Sync: chunks whose checksums differed and were repaired row by row. */
  SyncChunksRepaired: 'Count',
  /** Sync: rows whose tenant would change, open (not moved). */
  TenantConflicts: 'Count',
  /** Reverse sync (switched tenants, target → legacy): legacy rows written and deleted, and the largest lag. */
  ReverseSyncRowsApplied: 'Count',
  ReverseSyncRowsDeleted: 'Count',
  ReverseSyncLagSeconds: 'Seconds',
  /** Per tenant (dimension Tenant): its rows on the target once data has copied. */
  TenantRows: 'Count',
  /** Go-live: legacy rows written to the archive, and health checks that failed. */
  ArchivedRows: 'Count',
  HealthChecksFailed: 'Count',
} as const;
export type MetricName = keyof typeof METRICS;

/** Where a task's metrics go: CloudWatch on Lambda (Powertools Metrics); locally nowhere, or a test's list. */
export interface MetricsSink {
  /** With `tenant`, the values are that tenant's (an extra dimension, Tenant): series of their own. */
  put(phase: string, values: Partial<Record<MetricName, number>>, tenant?: string): void;
}

export const noMetrics: MetricsSink = { put() {} };
