import {
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../../lambdas/core/errors.ts';
import { eventBridgeSchedule, scheduleName, setSyncSchedule } from '../../lambdas/core/schedule.ts';

const scheduler = mockClient(SchedulerClient);
beforeEach(() => scheduler.reset());

/** What GetSchedule answers for the stack's schedule: every field UpdateSchedule must send back. */
const current = {
  Arn: 'arn:aws:scheduler:eu-west-1:123456789012:schedule/default/PhasesSyncSchedule1A2B3C',
  Name: 'PhasesSyncSchedule1A2B3C',
  GroupName: 'default',
  ScheduleExpression: 'rate(5 minutes)',
  ScheduleExpressionTimezone: 'Etc/UTC',
  Description: 'shifu-migrate: a sync pass every 5m (enabled when data succeeds)',
  State: 'DISABLED' as const,
  FlexibleTimeWindow: { Mode: 'OFF' as const },
  Target: {
    Arn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Phasessync',
    RoleArn: 'arn:aws:iam::123456789012:role/PhasesSyncRole',
    Input: '{"startedBy":"schedule"}',
    RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 },
    DeadLetterConfig: { Arn: 'arn:aws:sqs:eu-west-1:123456789012:PassesNotStarted' },
  },
};
const where = { name: current.Name, group: 'default' };

describe('the sync schedule on EventBridge Scheduler', () => {
  it('enables it with UpdateSchedule carrying every field GetSchedule gave (nothing reset to a default)', async () => {
    scheduler.on(GetScheduleCommand).resolves(current);
    scheduler.on(UpdateScheduleCommand).resolves({ ScheduleArn: current.Arn });
    const schedule = eventBridgeSchedule(new SchedulerClient({ region: 'eu-west-1' }), where);
    expect(await schedule.set('ENABLED')).toBe('changed');
    expect(scheduler.commandCalls(GetScheduleCommand).map((c) => c.args[0].input)).toEqual([
      { Name: current.Name, GroupName: 'default' },
    ]);
    expect(scheduler.commandCalls(UpdateScheduleCommand).map((c) => c.args[0].input)).toEqual([
      {
        Name: current.Name,
        GroupName: 'default',
        ScheduleExpression: 'rate(5 minutes)',
        ScheduleExpressionTimezone: 'Etc/UTC',
        StartDate: undefined,
        EndDate: undefined,
        Description: current.Description,
        KmsKeyArn: undefined,
        Target: current.Target,
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: undefined,
        State: 'ENABLED',
      },
    ]);
  });

  it('sends nothing when the schedule is in that state already', async () => {
    scheduler.on(GetScheduleCommand).resolves({ ...current, State: 'ENABLED' });
    const schedule = eventBridgeSchedule(new SchedulerClient({ region: 'eu-west-1' }), where);
    expect(await schedule.set('ENABLED')).toBe('unchanged');
    expect(scheduler.commandCalls(UpdateScheduleCommand)).toHaveLength(0);
  });

  it('says a missing schedule is missing, and how to make it', async () => {
    scheduler.on(GetScheduleCommand).rejects(
      new ResourceNotFoundException({
        message: 'Schedule not found',
        Message: 'Schedule not found',
        $metadata: {},
      }),
    );
    const schedule = eventBridgeSchedule(new SchedulerClient({ region: 'eu-west-1' }), where);
    await expect(schedule.set('DISABLED')).rejects.toThrow(/does not exist: deploy the stack again/);
  });

  it('never lets a schedule error fail the copy or its rollback: it says what happened instead', async () => {
    expect(await setSyncSchedule(undefined, 'ENABLED')).toBe('none');
    scheduler.on(GetScheduleCommand).rejects(new Error('AccessDeniedException: not authorized'));
    const schedule = eventBridgeSchedule(new SchedulerClient({ region: 'eu-west-1' }), where);
    expect(await setSyncSchedule(schedule, 'DISABLED')).toMatch(/^failed: Error: AccessDeniedException/);
    scheduler.reset();
    scheduler.on(GetScheduleCommand).resolves(current);
    scheduler.on(UpdateScheduleCommand).resolves({});
    expect(await setSyncSchedule(schedule, 'ENABLED')).toBe('enabled');
    expect(await setSyncSchedule(schedule, 'DISABLED')).toBe('unchanged');
  });

  it('reads where the schedule is from the environment the stack sets, refusing anything else', () => {
    expect(scheduleName(undefined)).toBeUndefined();
    expect(scheduleName('{"name":"PhasesSyncSchedule1A2B3C","group":"default"}')).toEqual(where);
    expect(scheduleName('{"name":"PhasesSyncSchedule1A2B3C"}')).toEqual(where);
    expect(() => scheduleName('{')).toThrow(InputError);
    expect(() => scheduleName('{"name":"has spaces"}')).toThrow(/must be a schedule name/);
  });
});
