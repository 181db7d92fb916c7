import {
  ExecutionDoesNotExist,
  ListExecutionsCommand,
  SFNClient,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { sfnExecutions, stateMachineArns } from '../../lambdas/control/executions.ts';
import { RollbackRequest } from '../../lambdas/control/schema.ts';
import { InputError } from '../../lambdas/core/errors.ts';

const sfn = mockClient(SFNClient);
const data = 'arn:aws:states:eu-west-1:123456789012:stateMachine:PhasesdataABC';
const execution = (n: number) => `arn:aws:states:eu-west-1:123456789012:execution:PhasesdataABC:run-${n}`;

beforeEach(() => sfn.reset());

describe('phase executions on Step Functions', () => {
  it('lists every page of RUNNING executions of the phase’s own state machine', async () => {
    sfn
      .on(ListExecutionsCommand, { stateMachineArn: data, statusFilter: 'RUNNING', nextToken: undefined })
      .resolves({ executions: [{ executionArn: execution(1) } as never], nextToken: 'page-2' })
      .on(ListExecutionsCommand, { stateMachineArn: data, statusFilter: 'RUNNING', nextToken: 'page-2' })
      .resolves({ executions: [{ executionArn: execution(2) } as never] });
    const executions = sfnExecutions(new SFNClient({ region: 'eu-west-1' }), { data });
    expect(await executions.running('data')).toEqual([execution(1), execution(2)]);
    expect(sfn.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: data, statusFilter: 'RUNNING', nextToken: undefined },
      { stateMachineArn: data, statusFilter: 'RUNNING', nextToken: 'page-2' },
    ]);
    // A phase without a deployed machine has nothing running, and nothing is asked.
    expect(await executions.running('foundation')).toEqual([]);
    expect(sfn.commandCalls(ListExecutionsCommand)).toHaveLength(2);
  });

  it('stops an execution with RunStopped and its cause; one that is gone is not an error', async () => {
    sfn
      .on(StopExecutionCommand, { executionArn: execution(1) })
      .resolves({ stopDate: new Date() })
      .on(StopExecutionCommand, { executionArn: execution(2) })
      .rejects(new ExecutionDoesNotExist({ message: 'gone', $metadata: {} }));
    const executions = sfnExecutions(new SFNClient({ region: 'eu-west-1' }), { data });
    await executions.stop(execution(1), 'rollback of data started by alarm api-5xx');
    await executions.stop(execution(2), 'rollback of data');
    expect(sfn.commandCalls(StopExecutionCommand)[0]?.args[0].input).toEqual({
      executionArn: execution(1),
      error: 'RunStopped',
      cause: 'rollback of data started by alarm api-5xx',
    });
    sfn.on(StopExecutionCommand).rejects(new Error('AccessDenied'));
    await expect(executions.stop(execution(3), 'x')).rejects.toThrow('AccessDenied');
  });

  it('reads the state machine ARNs the stack sets, naming the variable when they are wrong', () => {
    expect(stateMachineArns(undefined)).toEqual({});
    expect(stateMachineArns(JSON.stringify({ data }))).toEqual({ data });
    expect(() => stateMachineArns('{')).toThrow(InputError);
    expect(() => stateMachineArns(JSON.stringify({ data: 'arn:aws:lambda:x' }))).toThrow(
      /SHIFU_MIGRATE_STATE_MACHINES: data must be a state machine ARN/,
    );
  });

  it('accepts what the EventBridge rule and the CLI send, and nothing else', () => {
    expect(RollbackRequest.parse({ alarm: 'api-5xx' })).toEqual({ alarm: 'api-5xx' });
    expect(RollbackRequest.parse({ phase: 'data' })).toEqual({ phase: 'data' });
    expect(RollbackRequest.safeParse({ phase: 'assess' }).success).toBe(false);
    expect(RollbackRequest.safeParse({ phsae: 'data' }).success).toBe(false);
  });
});
