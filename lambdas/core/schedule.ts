import {
  GetScheduleCommand,
  type GetScheduleCommandOutput,
  ResourceNotFoundException,
  type SchedulerClient,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import { InputError } from './errors.ts';

/**
 * The EventBridge Scheduler schedule that starts a sync pass every `sync.every`: created disabled by the stack,
 * enabled when a data run succeeds, disabled by a rollback of data (and by go-live). Locally there is none: `sync
 * --every` is the loop.
 */
export interface SyncSchedule {
  /** Sets the schedule's state; says whether it changed. */
  set(state: 'ENABLED' | 'DISABLED'): Promise<'changed' | 'unchanged'>;
}

/** Where the stack says the schedule is: `{"name": "…", "group": "default"}` in SHIFU_MIGRATE_SYNC_SCHEDULE. */
export function scheduleName(raw: string | undefined): { name: string; group: string } | undefined {
  if (raw === undefined || raw === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InputError('environment variable SHIFU_MIGRATE_SYNC_SCHEDULE is not valid JSON');
  }
  const { name, group } = (parsed ?? {}) as { name?: unknown; group?: unknown };
  if (typeof name !== 'string' || !/^[0-9a-zA-Z._-]{1,64}$/.test(name))
    throw new InputError(
      `environment variable SHIFU_MIGRATE_SYNC_SCHEDULE: name must be a schedule name, got ${JSON.stringify(name)}`,
    );
  return { name, group: typeof group === 'string' && group !== '' ? group : 'default' };
}

/**
 * GetSchedule, then UpdateSchedule with every field it returned and the new state: UpdateSchedule replaces the
 * whole schedule, and a field left out would be reset to its default (the target, its input, its retry policy and
 * dead-letter queue). Already in that state: nothing is sent.
 */
export function eventBridgeSchedule(
  client: SchedulerClient,
  where: { name: string; group: string },
): SyncSchedule {
  return {
    async set(state) {
      let got: GetScheduleCommandOutput;
      try {
        got = await client.send(new GetScheduleCommand({ Name: where.name, GroupName: where.group }));
      } catch (error) {
        if (error instanceof ResourceNotFoundException)
          throw new InputError(
            `the sync schedule ${where.group}/${where.name} does not exist: deploy the stack again (it creates it)`,
          );
        throw error;
      }
      if (got.State === state) return 'unchanged';
      if (
        got.ScheduleExpression === undefined ||
        got.Target === undefined ||
        got.FlexibleTimeWindow === undefined
      )
        throw new Error(
          `GetSchedule ${where.group}/${where.name} answered without its expression, target or time window: not updated`,
        );
      await client.send(
        new UpdateScheduleCommand({
          Name: where.name,
          GroupName: got.GroupName ?? where.group,
          ScheduleExpression: got.ScheduleExpression,
          ScheduleExpressionTimezone: got.ScheduleExpressionTimezone,
          StartDate: got.StartDate,
          EndDate: got.EndDate,
          Description: got.Description,
          KmsKeyArn: got.KmsKeyArn,
          Target: got.Target,
          FlexibleTimeWindow: got.FlexibleTimeWindow,
          ActionAfterCompletion: got.ActionAfterCompletion,
          State: state,
        }),
      );
      return 'changed';
    },
  };
}

/**
 * What became of the schedule, for the result and the log: `none` (no schedule: locally, or a stack without one),
 * `enabled`/`disabled`, `unchanged`, or `failed: <why>`. Never throws: the copy (or its rollback) stands either way;
 * a schedule left disabled only means no scheduled passes, one left enabled only passes that refuse to start.
 */
export async function setSyncSchedule(
  schedule: SyncSchedule | undefined,
  state: 'ENABLED' | 'DISABLED',
): Promise<string> {
  if (schedule === undefined) return 'none';
  try {
    const result = await schedule.set(state);
    return result === 'unchanged' ? 'unchanged' : state.toLowerCase();
  } catch (error) {
    return `failed: ${(error as Error).name}: ${(error as Error).message}`;
  }
}
