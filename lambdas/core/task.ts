import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import type { AlarmWatch } from '../application/gates.ts';
import type { SecretCheck } from '../integration/secrets.ts';
import type { ArchiveStore } from './archive/port.ts';
import { formatPath } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { InputError } from './errors.ts';
import { heartbeat, keepAlive } from './ledger/lock.ts';
import type { MetricsSink } from './metrics.ts';
import type { SyncSchedule } from './schedule.ts';
import type { SqlClient } from './sql/port.ts';
import type { DatabaseUrl } from './sql/url.ts';

/** What every task's logic gets: the same shape on Lambda (from the environment) and locally (from the CLI). */
export interface TaskDeps {
  readonly config: Config;
  readonly sourceUrl: DatabaseUrl;
  readonly targetUrl: DatabaseUrl;
  /** The legacy database, read only (opened read-only at the server). */
  readonly source: SqlClient;
  /**
   * The legacy database, for writing: only reverse sync has it (the rows of tenants the multi-tenant side owns,
   * carried back so a rollback loses nothing). Present for the functions granted `source:write`.
   */
  readonly sourceWriter?: SqlClient;
  /** The multi-tenant database. It may not exist before foundation: use `targetServer` to look first. */
  readonly target: SqlClient;
  /** The target's server, through information_schema: for checking and creating the target database. */
  readonly targetServer: SqlClient;
  readonly archive: ArchiveStore;
  /**
   * Aborted when the execution wants no new work started: a sibling Map iteration failed, or the run was
   * stopped. Long tasks check it between units of work.
   */
  readonly signal: AbortSignal;
  /** Rows copied, chunk durations, checksum mismatches: CloudWatch on Lambda. */
  readonly metrics: MetricsSink;
  /**
   * Whether each task refreshes its execution's run-lock heartbeat while it works (on Lambda; locally the process
   * that runs the execution does it, between tasks too).
   * @default false
   */
  readonly heartbeat?: boolean;
  /** The sync schedule (on AWS, when the stack made one): data's finish enables it, data's rollback disables it. */
  readonly syncSchedule?: SyncSchedule;
  /** CloudWatch alarms the application phase's gates watch (on AWS; locally the ledger's alarms alone). */
  readonly alarms?: AlarmWatch;
  /** Whether referenced secrets exist (never their values): the integration function only. */
  readonly secrets?: SecretCheck;
  /** The load balancer client, when the config has `application.loadBalancer` (the switch functions only). */
  readonly loadBalancer?: ElasticLoadBalancingV2Client;
}

/**
 * The function's time is running out (on Lambda, a margin before its timeout): the task stops taking new work and
 * ends with this, which every state retries (the work is idempotent and resumes where it stood).
 */
export class TimeRunningOut extends Error {
  override name = 'TimeRunningOut';
}

/** The config version local executions name in their payloads: the runtime gives the config itself. */
export const LOCAL_CONFIG = 'local';

/** Time kept back before a Lambda function's timeout: enough to end a page and say so. */
export const TIME_MARGIN_MS = 30_000;

/**
 * Throws when the task should stop: the signal's reason when it is {@link TimeRunningOut} (retried), otherwise the
 * error `stopped` makes (the execution wants no new work: a sibling failed, or the run was stopped).
 */
export function throwIfStopping(signal: AbortSignal, stopped: () => Error): void {
  if (!signal.aborted) return;
  throw signal.reason instanceof TimeRunningOut ? signal.reason : stopped();
}

/** An event payload that does not match the task's schema: a wiring bug or a hand-started execution. */
export class InvalidTaskInput extends InputError {
  override name = 'InvalidTaskInput';
}

/** One task: its name (for errors and logs), its input schema, and its logic. */
export interface TaskDefinition<S extends z.ZodType, O> {
  readonly name: string;
  readonly input: S;
  readonly run: (input: z.output<S>, deps: TaskDeps) => Promise<O>;
  /** The `step`s this function runs (its registry entry's); any other is refused. All, when omitted. */
  readonly steps?: readonly string[];
}

/** A module's task as one function of the registry runs it: under the function's name, only its steps. */
export function forFunction<S extends z.ZodType, O>(
  task: TaskDefinition<S, O>,
  spec: { readonly name: string; readonly steps: readonly string[] },
): TaskDefinition<S, O> {
  return { ...task, name: spec.name, steps: spec.steps };
}

/**
 * Wires a task as a Lambda handler: the event is parsed with zod at the edge, then the logic runs with the
 * dependencies `deps` gives for the config version the event names (created once per container and version on
 * Lambda, once per execution locally).
 */
export function taskHandler<S extends z.ZodType, O>(
  task: TaskDefinition<S, O>,
  deps: (config: string | undefined) => Promise<TaskDeps>,
) {
  return middy<unknown, O>().handler(async (event: unknown, context: Context) => {
    const parsed = task.input.safeParse(event);
    if (!parsed.success) {
      throw new InvalidTaskInput(
        `${task.name} received an invalid event:`,
        parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`),
      );
    }
    const step = (parsed.data as { step?: unknown }).step;
    if (task.steps !== undefined && (typeof step !== 'string' || !task.steps.includes(step))) {
      throw new InvalidTaskInput(
        `${task.name} runs ${task.steps.join(', ')}, not step ${JSON.stringify(step)}: the state machine names the wrong function`,
      );
    }
    // Every payload names the config version its state machine was deployed with (`config`); locally, "local".
    const config = (event as { config?: unknown } | null)?.config;
    const base = await deps(typeof config === 'string' && config !== LOCAL_CONFIG ? config : undefined);
    // On Lambda the signal also fires a margin before the function's timeout, so long work stops cleanly.
    const deadline = deadlineSignal(context, base.heartbeat === true);
    const resolved =
      deadline === undefined ? base : { ...base, signal: AbortSignal.any([base.signal, deadline.signal]) };
    const execution = (parsed.data as { execution?: unknown }).execution;
    if (resolved.heartbeat !== true || typeof execution !== 'string') {
      try {
        return await task.run(parsed.data, resolved);
      } finally {
        deadline?.clear();
      }
    }
    // The run lock stays this execution's while a long task works (an index build, a big chunk).
    await heartbeat(resolved.target, execution).catch(() => undefined);
    const stop = keepAlive(resolved.target, execution);
    try {
      return await task.run(parsed.data, resolved);
    } finally {
      stop();
      deadline?.clear();
    }
  });
}

/** An AbortSignal that fires {@link TIME_MARGIN_MS} before the invocation's time is up (Lambda only). */
function deadlineSignal(
  context: Context | undefined,
  onLambda: boolean,
): { signal: AbortSignal; clear(): void } | undefined {
  const remaining = onLambda ? context?.getRemainingTimeInMillis?.() : undefined;
  if (remaining === undefined) return undefined;
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(
        new TimeRunningOut(
          `the function has ${Math.round(TIME_MARGIN_MS / 1000)} s left: it stops here, to be retried`,
        ),
      ),
    Math.max(0, remaining - TIME_MARGIN_MS),
  );
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
