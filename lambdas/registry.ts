import type { Config } from './core/config/schema.ts';

/**
 * What a function reaches; the stack grants exactly these, and the local runtime refuses the rest to each task.
 * - `source`: the legacy database, read (Data API statements and read-only transactions on its cluster, never
 *   batches; read on its secret);
 * - `source:write`: the legacy database, written: reverse sync only (rows of tenants the multi-tenant side owns,
 *   carried back to legacy; Data API statements and transactions on its cluster);
 * - `target`: the multi-tenant database, read and write (Data API with transactions, its secret);
 * - `archive:get`, `archive:put`, `archive:list`: objects in the archive (never delete: it keeps the legacy data's
 *   last copy); every function also reads its config version there;
 * - `archive:lock`: put the legacy archive's objects under S3 Object Lock (compliance mode, `legacy-archive/` only);
 * - `executions`: list and stop the phases' Step Functions executions;
 * - `schedule`: read and update the sync schedule (enable it, disable it; EventBridge Scheduler);
 * - `alarms`: read the state of the stack's alarms and the operator's (CloudWatch DescribeAlarms);
 * - `load-balancer`: the listener rules of the configured load balancer listener (create, delete; describe);
 * - `secrets`: whether the secrets the config references exist (DescribeSecret on those ARNs only; never a value).
 */
export type Reach =
  | 'source'
  | 'source:write'
  | 'target'
  | 'archive:get'
  | 'archive:put'
  | 'archive:list'
  | 'archive:lock'
  | 'executions'
  | 'schedule'
  | 'alarms'
  | 'load-balancer'
  | 'secrets';

/** The folders under `lambdas/` whose `task.ts` holds tasks and whose `handler.ts` holds Lambda entry points. */
export type TaskModule =
  | 'assess'
  | 'foundation'
  | 'data'
  | 'sync'
  | 'application'
  | 'integration'
  | 'golive'
  | 'control';

export interface FunctionSpec {
  /** The function's short name: `shifu-migrate-<name>` locally, its construct id in the stack. */
  readonly name: string;
  /** `lambdas/<module>/task.ts` has its task (the local runtime's) and `lambdas/<module>/handler.ts` its entry. */
  readonly module: TaskModule;
  /** The export of `lambdas/<module>/handler.ts` that Lambda calls, and of `tasks` in `task.ts`. */
  readonly handler: string;
  /** The `step`s of the module's input this function runs; any other is refused as a wiring error. */
  readonly steps: readonly string[];
  readonly timeoutMinutes: number;
  readonly memoryMb: number;
  /**
   * Reserved concurrency, for the functions whose copies run side by side against the databases: at most as many
   * at once as the data state machine starts (tables at once × the config's `chunking.maxConcurrency`), so a
   * redrive or a retry storm cannot put more load on them than the operator chose.
   */
  readonly reservedConcurrency?: (config: Config) => number;
  readonly reaches: readonly Reach[];
}

/** Tables the data state machine copies at once (the `Copy Level` Map's MaxConcurrency; a test holds them equal). */
export const TABLES_AT_ONCE = 2;

const copies = (config: Config) => TABLES_AT_ONCE * config.chunking.maxConcurrency;

/**
 * One Lambda function per task a state machine calls, by the `${…FunctionArn}` substitution its ASL files use.
 * The CDK stack deploys these with the grants, timeout and memory stated here; the local runtime serves them.
 */
export const FUNCTIONS = {
  AssessPlanFunctionArn: {
    name: 'assess-plan',
    module: 'assess',
    handler: 'plan',
    steps: ['plan'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'archive:put'],
  },
  AssessTableFunctionArn: {
    name: 'assess-table',
    module: 'assess',
    handler: 'table',
    steps: ['table'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'archive:get', 'archive:put'],
  },
  AssessReportFunctionArn: {
    name: 'assess-report',
    module: 'assess',
    handler: 'report',
    steps: ['report'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'target', 'archive:get', 'archive:put', 'archive:list'],
  },
  FoundationStartFunctionArn: {
    name: 'foundation-start',
    module: 'foundation',
    handler: 'start',
    steps: ['start'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target'],
  },
  FoundationCreateFunctionArn: {
    name: 'foundation-create',
    module: 'foundation',
    handler: 'create',
    steps: ['tenants', 'table'],
    timeoutMinutes: 15,
    memoryMb: 512,
    reaches: ['source', 'target'],
  },
  FoundationVerifyFunctionArn: {
    name: 'foundation-verify',
    module: 'foundation',
    handler: 'verify',
    steps: ['verify'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target'],
  },
  FoundationRollbackFunctionArn: {
    name: 'foundation-rollback',
    module: 'foundation',
    handler: 'rollback',
    steps: ['rollback', 'rollback-runs', 'rollback-phase'],
    // Dropping tables on a large target takes minutes.
    timeoutMinutes: 15,
    memoryMb: 512,
    reaches: ['target'],
  },
  DataStartFunctionArn: {
    name: 'data-start',
    module: 'data',
    handler: 'start',
    steps: ['start'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'target', 'archive:get', 'archive:put'],
  },
  DataPlanChunksFunctionArn: {
    name: 'data-plan-chunks',
    module: 'data',
    handler: 'planChunks',
    steps: ['plan-chunks'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'target', 'archive:get', 'archive:put'],
  },
  DataCopyChunkFunctionArn: {
    name: 'data-copy-chunk',
    module: 'data',
    handler: 'copyChunk',
    steps: ['copy-chunk'],
    timeoutMinutes: 15,
    // A page of rows in memory, and the statements built from it.
    memoryMb: 2048,
    reservedConcurrency: copies,
    reaches: ['source', 'target', 'archive:get'],
  },
  DataValidateFunctionArn: {
    name: 'data-validate',
    module: 'data',
    handler: 'validate',
    steps: ['validate-chunk', 'validate-table'],
    timeoutMinutes: 15,
    // Validate Table copies a differing chunk again, exactly.
    memoryMb: 2048,
    reservedConcurrency: copies,
    reaches: ['source', 'target', 'archive:get'],
  },
  DataExplainCopyFailureFunctionArn: {
    name: 'data-explain-copy-failure',
    module: 'data',
    handler: 'explainCopyFailure',
    steps: ['explain-copy-failure'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['target', 'archive:get', 'archive:list'],
  },
  DataBuildIndexesFunctionArn: {
    name: 'data-build-indexes',
    module: 'data',
    handler: 'buildIndexes',
    steps: ['build-indexes'],
    timeoutMinutes: 15,
    memoryMb: 512,
    reaches: ['target'],
  },
  DataVerifyIsolationFunctionArn: {
    name: 'data-verify-isolation',
    module: 'data',
    handler: 'verifyIsolation',
    steps: ['verify-isolation'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['target', 'archive:get'],
  },
  DataFinishFunctionArn: {
    name: 'data-finish',
    module: 'data',
    handler: 'finish',
    steps: ['finish', 'interrupt'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target', 'archive:get', 'schedule'],
  },
  DataRollbackFunctionArn: {
    name: 'data-rollback',
    module: 'data',
    handler: 'rollback',
    steps: ['rollback', 'rollback-phase'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['target', 'archive:get', 'schedule'],
  },
  SyncStartFunctionArn: {
    name: 'sync-start',
    module: 'sync',
    handler: 'start',
    steps: ['start'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target', 'archive:get', 'archive:put'],
  },
  SyncCatchUpFunctionArn: {
    name: 'sync-catch-up',
    module: 'sync',
    handler: 'catchUp',
    steps: ['catch-up'],
    timeoutMinutes: 15,
    memoryMb: 1024,
    reaches: ['source', 'source:write', 'target', 'archive:get'],
  },
  SyncPlanChunksFunctionArn: {
    name: 'sync-plan-chunks',
    module: 'sync',
    handler: 'planChunks',
    steps: ['plan-chunks'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['target', 'archive:get', 'archive:put'],
  },
  SyncReconcileChunkFunctionArn: {
    name: 'sync-reconcile-chunk',
    module: 'sync',
    handler: 'reconcileChunk',
    steps: ['reconcile-chunk'],
    timeoutMinutes: 15,
    // A chunk's row hashes of both sides, and the rows it repairs.
    memoryMb: 1024,
    reservedConcurrency: copies,
    reaches: ['source', 'source:write', 'target', 'archive:get'],
  },
  SyncFinishFunctionArn: {
    name: 'sync-finish',
    module: 'sync',
    handler: 'finish',
    steps: ['finish', 'interrupt', 'fail', 'explain-copy-failure'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target', 'archive:get', 'archive:list'],
  },
  ApplicationStartFunctionArn: {
    name: 'application-start',
    module: 'application',
    handler: 'start',
    steps: ['start', 'finish', 'end'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['source', 'target'],
  },
  ApplicationGateFunctionArn: {
    name: 'application-gate',
    module: 'application',
    handler: 'gate',
    steps: ['gate', 'bake'],
    timeoutMinutes: 2,
    memoryMb: 256,
    // The source only for its server's id series settings.
    reaches: ['source', 'target', 'alarms'],
  },
  /** Routes tenants (the routing table, the load balancer): the switch, the pause, and a rollback's route back. */
  ApplicationSwitchFunctionArn: {
    name: 'application-switch',
    module: 'application',
    handler: 'switchTraffic',
    steps: ['pause', 'switch', 'rollback-pause', 'rollback-route-back'],
    timeoutMinutes: 5,
    memoryMb: 256,
    // The schedule for a rollback that undoes a go-live: sync runs again.
    reaches: ['target', 'load-balancer', 'schedule'],
  },
  IntegrationStartFunctionArn: {
    name: 'integration-start',
    module: 'integration',
    handler: 'start',
    steps: ['start', 'finish'],
    timeoutMinutes: 5,
    memoryMb: 256,
    reaches: ['source', 'target'],
  },
  /** Writes the tenants' providers, plans and subscriptions, and validates them: the only one that checks secrets. */
  IntegrationApplyFunctionArn: {
    name: 'integration-apply',
    module: 'integration',
    handler: 'apply',
    steps: ['apply', 'validate'],
    timeoutMinutes: 5,
    memoryMb: 256,
    // The source only for the legacy login settings' client ids.
    reaches: ['source', 'target', 'secrets', 'archive:put'],
  },
  IntegrationRollbackFunctionArn: {
    name: 'integration-rollback',
    module: 'integration',
    handler: 'rollback',
    steps: ['rollback', 'rollback-phase'],
    timeoutMinutes: 5,
    memoryMb: 256,
    reaches: ['target'],
  },
  /** Go-live's own steps: the tenants left, the lock, the drain's result, the end of sync, the end of the run. */
  GoLiveStartFunctionArn: {
    name: 'golive-start',
    module: 'golive',
    handler: 'start',
    steps: ['remaining', 'start', 'check-drained', 'end-sync', 'finish', 'resume-sync', 'interrupt'],
    timeoutMinutes: 5,
    memoryMb: 256,
    reaches: ['source', 'target', 'schedule'],
  },
  /** The full verification (both sides' checksums, isolation) and the health verification. */
  GoLiveCheckFunctionArn: {
    name: 'golive-check',
    module: 'golive',
    handler: 'check',
    steps: ['verify', 'health'],
    timeoutMinutes: 15,
    memoryMb: 512,
    reaches: ['source', 'target', 'alarms', 'archive:get'],
  },
  /** The archive of the legacy tables: the plan, each Distributed Map child's parts, the manifests. */
  GoLiveArchiveFunctionArn: {
    name: 'golive-archive',
    module: 'golive',
    handler: 'archive',
    steps: ['plan-archive', 'plan-table', 'archive-parts', 'explain-copy-failure', 'finish-archive'],
    timeoutMinutes: 15,
    // A page of rows and the gzip stream's buffers; a multipart upload holds one 8 MiB part.
    memoryMb: 1024,
    reaches: ['source', 'target', 'archive:get', 'archive:put', 'archive:list', 'archive:lock'],
  },
  /** The final report: the ledger into JSON, Markdown and one HTML file in the archive. */
  GoLiveReportFunctionArn: {
    name: 'golive-report',
    module: 'golive',
    handler: 'report',
    steps: ['report'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches: ['target', 'archive:get', 'archive:put', 'archive:list'],
  },
  /** The rollback's first steps: finds the phase in flight and stops it (the ledger, and its executions on AWS). */
  RollbackStopFunctionArn: {
    name: 'rollback-stop',
    module: 'control',
    handler: 'stop',
    steps: ['stop'],
    timeoutMinutes: 2,
    memoryMb: 256,
    reaches: ['target', 'executions'],
  },
  RollbackInFlightFunctionArn: {
    name: 'rollback-in-flight',
    module: 'control',
    handler: 'inFlight',
    steps: ['in-flight'],
    timeoutMinutes: 2,
    memoryMb: 256,
    reaches: ['target'],
  },
  RollbackLockFunctionArn: {
    name: 'rollback-lock',
    module: 'control',
    handler: 'lock',
    steps: ['lock'],
    timeoutMinutes: 2,
    memoryMb: 256,
    reaches: ['target'],
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionKey = keyof typeof FUNCTIONS;

/**
 * A chunk marked `copying` longer ago than the timeout of the functions that copy (Copy Chunk, and Validate Table's
 * re-copies) belongs to an invocation that has ended (on Lambda, it cannot run longer): the rollback stops waiting
 * for it.
 */
export const IN_FLIGHT_LIMIT_SECONDS =
  Math.max(
    FUNCTIONS.DataCopyChunkFunctionArn.timeoutMinutes,
    FUNCTIONS.DataValidateFunctionArn.timeoutMinutes,
  ) * 60;

/** The state machine files, by name (`statemachines/<name>.asl.json`). */
export const STATE_MACHINES = [
  'assess',
  'foundation',
  'data',
  'sync',
  'application',
  'integration',
  'golive',
  'rollback',
] as const;

/** Phases whose failure alarms start the rollback state machine with that phase. */
export const ROLLBACK_PHASES = ['foundation', 'data', 'application', 'integration'] as const;

/** Phases whose executions the rollback stops: those it undoes, and a sync pass in flight (nothing to undo). */
export const STOPPED_BY_ROLLBACK = [...ROLLBACK_PHASES, 'sync'] as const;
