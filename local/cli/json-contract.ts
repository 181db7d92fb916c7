import { z } from 'zod';
import { VERSION } from './commands.ts';

/**
 * The `--json` contract: every command prints exactly one object on stdout, the same envelope around the command's
 * own fields. Its version goes up only when a field is removed or changes meaning; fields are added freely.
 */
export const JSON_CONTRACT_VERSION = 1;

/** One vocabulary for every command's `status`; the command's own word, where it has one, is `outcome`. */
export const CLI_STATUSES = [
  /** Done as asked, nothing wrong found. Exit 0. */
  'SUCCEEDED',
  /** Nothing to do, verify, report or roll back. Exit 0, or 1 where the command was asked for something absent. */
  'NOTHING_TO_DO',
  /** A preview: what would be done (plan, cleanup-legacy without --confirm); nothing was changed. */
  'PREVIEWED',
  /** Done, but it found what a person must look at: an assessment BLOCKED, verify differences, tables kept. Exit 1. */
  'NEEDS_ATTENTION',
  /** Stopped before its end, nothing undone, resumable by running it again (Ctrl-C, critical load, a lost lock). Exit 1. */
  'INTERRUPTED',
  /** The work failed; `problems` says why, and a failed phase says whether it rolled back. Exit 1. */
  'FAILED',
  /** Refused before anything changed: bad input or config, a refusal, a question answered no. Exit 2 (or 1 when declined). */
  'REFUSED',
] as const;
export type CliStatus = (typeof CLI_STATUSES)[number];

const Iso = z.iso.datetime({ offset: false }).describe('ISO 8601, UTC (ends in Z)');

export const Problem = z
  .object({
    severity: z.enum(['blocking', 'error', 'warning', 'info']),
    /** A stable name to match on: an error's name or an assessment check's code. */
    code: z.string().min(1),
    message: z.string(),
    table: z.string().optional(),
  })
  .strict();
export type Problem = z.infer<typeof Problem>;

export const Envelope = z
  .object({
    version: z.literal(JSON_CONTRACT_VERSION),
    tool: z.object({ name: z.literal('shifu-migrate'), version: z.string() }).strict(),
    /** The command as typed, without options: `run data`, `status`, `rollback`. */
    command: z.string(),
    status: z.enum(CLI_STATUSES),
    exitCode: z.union([z.literal(0), z.literal(1), z.literal(2)]),
    startedAt: Iso,
    endedAt: Iso,
    durationSeconds: z.number().nonnegative(),
    /** Which config and which databases the command used; null when it failed before reading the config. */
    config: z
      .object({
        origin: z.enum(['file', 'built-in demo config']),
        path: z.string().nullable(),
        source: z.string(),
        target: z.string(),
      })
      .strict()
      .nullable(),
    problems: z.array(Problem),
    /** The command's own word for how it ended (`READY`, `DIFFERENCES`, `DROPPED`…), when it has one. */
    outcome: z.string().optional(),
  })
  .loose();

const RunId = z.string().min(1);
const PhaseRun = z.object({ executionId: z.string(), eventLog: z.string() }).loose();

/** The command-specific part: required fields each command's output always has (more may come). */
const COMMANDS = {
  error: z.object({ error: z.string(), message: z.string() }).loose(),
  'run assess': PhaseRun.extend({
    runId: RunId,
    ready: z.boolean(),
    blocking: z.number().int(),
    warnings: z.number().int(),
    tables: z.number().int(),
    rows: z.number().int(),
  }),
  'run foundation': PhaseRun.extend({ runId: RunId, tables: z.number().int(), tenants: z.number().int() }),
  'run data': PhaseRun.extend({
    runId: RunId,
    tables: z.number().int(),
    chunks: z.number().int(),
    rows: z.number().int(),
    quarantined: z.number().int(),
  }),
  'run failed': z
    .object({
      executionId: z.string(),
      error: z.string().nullable(),
      rolledBack: z.boolean().nullable(),
      eventLog: z.string(),
    })
    .loose(),
  rollback: z.object({ phase: z.string().nullable().optional() }).loose(),
  status: z.union([
    z
      .object({
        runs: z.array(z.object({ runId: z.string(), phase: z.string(), status: z.string() }).loose()),
        tables: z.array(z.object({ table: z.string() }).loose()),
        lock: z.unknown(),
        paused: z.unknown().optional(),
      })
      .loose(),
    // status --tenant <bid>: one tenant.
    z.object({ tenant: z.object({ tenant: z.string() }).loose() }).loose(),
  ]),
  verify: z
    .object({
      differences: z.number().int(),
      tables: z.array(
        z
          .object({
            table: z.string(),
            sourceRows: z.number(),
            targetRows: z.number(),
            checksum: z.object({ equal: z.boolean() }).loose(),
          })
          .loose(),
      ),
    })
    .loose(),
  pause: z.object({ since: Iso.nullable() }).loose(),
  resume: z.object({ wasPaused: z.boolean() }).loose(),
  plan: z
    .object({
      phase: z.string(),
      tables: z.array(z.object({ table: z.string(), mode: z.string() }).loose()),
    })
    .loose(),
} as const;
export type ContractCommand = keyof typeof COMMANDS;

/** The contract's command a printed object belongs to (failed runs and errors have their own shapes). */
export function contractOf(output: Record<string, unknown>): ContractCommand | null {
  const command = String(output.command);
  if (output.exitCode !== 0 && typeof output.error === 'string' && typeof output.message === 'string')
    return 'error';
  if (/^(plan|run) /.test(command) && output.status === 'PREVIEWED') return 'plan';
  // A phase run (or a rollback) that started an execution and did not succeed: what happened to it.
  if (
    (command.startsWith('run ') || command === 'rollback') &&
    typeof output.executionId === 'string' &&
    ['FAILED', 'INTERRUPTED', 'REFUSED'].includes(String(output.status))
  )
    return 'run failed';
  return command in COMMANDS ? (command as ContractCommand) : null;
}

/** The JSON Schema files under schema/cli/: the envelope, and per command the envelope with its own fields. */
export function contractSchemas(): Record<string, unknown> {
  const json = (schema: z.ZodType, title: string, description: string) => ({
    ...z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'output' }),
    title,
    description,
  });
  const files: Record<string, unknown> = {
    'schema/cli/envelope.schema.json': json(
      Envelope,
      'shifu-migrate --json output',
      'What every command prints with --json: one object, this envelope with the command’s own fields beside it. Generated from local/cli/json-contract.ts by `npm run generate`; see docs/cli-json.md.',
    ),
  };
  for (const [name, fields] of Object.entries(COMMANDS))
    files[`schema/cli/${name.replace(' ', '-')}.schema.json`] = json(
      Envelope.and(fields),
      `shifu-migrate ${name} --json output`,
      `The envelope and the fields of ${name === 'error' ? 'any command that ended in an error' : name === 'run failed' ? 'a phase run that did not succeed' : name}. Generated from local/cli/json-contract.ts by \`npm run generate\`; see docs/cli-json.md.`,
    );
  return files;
}

const LEDGER_TIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)$/;

/**
 * Times as the ledger keeps them (UTC, without a zone: `2026-12-01 13:35:17.123`) made ISO 8601 UTC, anywhere in
 * the output; Dates become ISO strings.
 */
export function isoTimes(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') {
    const m = LEDGER_TIME.exec(value);
    return m === null ? value : `${m[1]}T${m[2]}Z`;
  }
  if (Array.isArray(value)) return value.map(isoTimes);
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isoTimes(v)]));
  return value;
}

const NOTHING = new Set(['NO_DATA', 'EMPTY', 'NOT_NEEDED']);
/** Errors that refuse a start because of the state things are in (exit 1): nothing was changed. */
const REFUSALS = new Set([
  'RunLocked',
  'AlarmRaised',
  'RollbackInProgress',
  'TenantsSwitched',
  'GoLiveRefused',
  'SyncNotReady',
]);
const INTERRUPTED_ERRORS = new Set([
  'Interrupted',
  'CriticalLoad',
  'TimeRunningOut',
  'Taken Over',
  'TakenOver',
]);

/** The one status word for a command's own result and exit code. */
export function statusOf(payload: Record<string, unknown>, code: number): CliStatus {
  const own = typeof payload.status === 'string' ? payload.status : '';
  // A sync loop ends as its last pass did.
  const last = payload.last;
  if (code !== 0 && typeof last === 'object' && last !== null) {
    const pass = statusOf(last as Record<string, unknown>, code);
    if (pass === 'REFUSED' || pass === 'INTERRUPTED') return pass;
  }
  if (own === 'NOT_CONFIRMED' || own === 'PREVIEWED') return 'PREVIEWED';
  const run = payload.run as { status?: unknown } | null | undefined;
  if (
    code === 2 ||
    own === 'DECLINED' ||
    own === 'INVALID_INPUT' ||
    own === 'REFUSED' ||
    REFUSALS.has(String(payload.error ?? '')) ||
    (code !== 0 && run?.status === 'refused')
  )
    return 'REFUSED';
  if (
    INTERRUPTED_ERRORS.has(String(payload.error ?? '')) ||
    (code !== 0 && run !== null && run !== undefined && run.status === 'interrupted')
  )
    return 'INTERRUPTED';
  if (NOTHING.has(own) || payload.nothingToDo === true) return 'NOTHING_TO_DO';
  if (code === 0) return 'SUCCEEDED';
  if (['FAILED', 'ABORTED', 'TIMED_OUT'].includes(own) || typeof payload.error === 'string') return 'FAILED';
  return 'NEEDS_ATTENTION';
}

/** Problems as objects, from what the command's result holds: its error, an assessment's findings, differences. */
export function problemsOf(payload: Record<string, unknown>): Problem[] {
  const problems: Problem[] = [];
  if (typeof payload.error === 'string' && payload.error !== '')
    problems.push({
      severity: 'error',
      code: payload.error,
      message: String(payload.cause ?? payload.message ?? payload.error),
    });
  const report = payload.report as { problems?: unknown } | null | undefined;
  const findings = Array.isArray(report?.problems) ? report.problems : [];
  for (const p of findings as { severity?: unknown; code?: unknown; message?: unknown; table?: unknown }[]) {
    const severity = p.severity === 'blocking' || p.severity === 'warning' ? p.severity : 'info';
    problems.push({
      severity,
      code: String(p.code ?? 'finding'),
      message: String(p.message ?? ''),
      ...(typeof p.table === 'string' ? { table: p.table } : {}),
    });
  }
  if (typeof payload.differences === 'number' && Array.isArray(payload.tables))
    for (const t of payload.tables as {
      table?: unknown;
      checksum?: { equal?: unknown };
      sourceRows?: unknown;
      targetRows?: unknown;
    }[])
      if (t.checksum?.equal === false)
        problems.push({
          severity: 'error',
          code: 'ChecksumDiffers',
          message: `${String(t.table)}: source ${String(t.sourceRows)} rows, target ${String(t.targetRows)} rows, checksums differ`,
          table: String(t.table),
        });
  if (typeof payload.reason === 'string' && payload.reason !== '' && problems.length === 0)
    problems.push({ severity: 'blocking', code: 'Refused', message: payload.reason });
  const last = payload.last as { error?: unknown; cause?: unknown } | null | undefined;
  if (typeof last?.error === 'string' && last.error !== '')
    problems.push({ severity: 'error', code: last.error, message: String(last.cause ?? last.error) });
  if (typeof payload.differences === 'number' && Array.isArray(payload.tables))
    for (const t of payload.tables as {
      table?: unknown;
      isolation?: { unknownTenant?: unknown; ruleMismatch?: unknown; parentMismatch?: unknown } | null;
    }[]) {
      const i = t.isolation;
      const broken =
        i == null
          ? 0
          : Number(i.unknownTenant ?? 0) + Number(i.ruleMismatch ?? 0) + Number(i.parentMismatch ?? 0);
      if (broken > 0)
        problems.push({
          severity: 'error',
          code: 'IsolationBroken',
          message: `${String(t.table)}: ${broken} rows break tenant isolation (unknown tenant ${String(i?.unknownTenant ?? 0)}, not the rules' tenant ${String(i?.ruleMismatch ?? 0)}, not their parent's ${String(i?.parentMismatch ?? 0)})`,
          table: String(t.table),
        });
    }
  if (Array.isArray(payload.tables) && (payload.status === 'REFUSED' || payload.status === 'NOT_CONFIRMED'))
    for (const t of payload.tables as { table?: unknown; drop?: unknown; reason?: unknown }[])
      if (t.drop === false)
        problems.push({
          severity: 'blocking',
          code: 'TableKept',
          message: String(t.reason ?? ''),
          table: String(t.table),
        });
  return problems;
}

/** The object `--json` prints: the envelope, then the command's own fields (its `status` becomes `outcome`). */
export function envelope(
  meta: {
    readonly command: string;
    readonly startedAt: Date;
    readonly endedAt: Date;
    readonly config: z.infer<typeof Envelope>['config'];
  },
  payload: Record<string, unknown>,
  code: 0 | 1 | 2,
): Record<string, unknown> {
  const { status: own, ...fields } = payload;
  const head = {
    version: JSON_CONTRACT_VERSION,
    tool: { name: 'shifu-migrate', version: VERSION },
    command: meta.command,
    status: statusOf(payload, code),
    exitCode: code,
    startedAt: meta.startedAt.toISOString(),
    endedAt: meta.endedAt.toISOString(),
    durationSeconds: Math.max(0, (meta.endedAt.getTime() - meta.startedAt.getTime()) / 1000),
    config: meta.config,
    problems: problemsOf(payload),
    ...(typeof own === 'string' ? { outcome: own } : {}),
  };
  // The envelope's fields first and, should the command's carry one of their names, the envelope's value.
  return { ...head, ...(isoTimes(fields) as Record<string, unknown>), ...head };
}
