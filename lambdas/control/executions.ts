import {
  ExecutionDoesNotExist,
  ListExecutionsCommand,
  type SFNClient,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { STATE_MACHINE_ARN } from '../core/config/schema.ts';
import { InputError } from '../core/errors.ts';
import { STOPPED_BY_ROLLBACK } from '../registry.ts';

type RollbackPhase = (typeof STOPPED_BY_ROLLBACK)[number];

/** The phase executions the rollback stops: Step Functions on AWS; locally the ledger alone stops a run. */
export interface PhaseExecutions {
  /** ARNs of the phase's executions that are RUNNING. */
  running(phase: RollbackPhase): Promise<string[]>;
  /** Stops one execution; one that has ended already is not an error. */
  stop(executionArn: string, cause: string): Promise<void>;
}

/**
 * Reads `SHIFU_MIGRATE_STATE_MACHINES` (the stack sets it): `{"foundation": "<arn>", "data": "<arn>", "sync": "<arn>"}`.
 * Unset means none: the function runs without Step Functions (locally, or in a test).
 */
export function stateMachineArns(raw: string | undefined): Partial<Record<RollbackPhase, string>> {
  if (raw === undefined || raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InputError('environment variable SHIFU_MIGRATE_STATE_MACHINES is not valid JSON');
  }
  const arns: Partial<Record<RollbackPhase, string>> = {};
  for (const phase of STOPPED_BY_ROLLBACK) {
    const arn = (parsed as Record<string, unknown>)[phase];
    if (arn === undefined) continue;
    if (typeof arn !== 'string' || !STATE_MACHINE_ARN.test(arn))
      throw new InputError(
        `environment variable SHIFU_MIGRATE_STATE_MACHINES: ${phase} must be a state machine ARN, got ${JSON.stringify(arn)}`,
      );
    arns[phase] = arn;
  }
  return arns;
}

/** Step Functions: ListExecutions (every page) and StopExecution. */
export function sfnExecutions(
  client: SFNClient,
  arns: Partial<Record<RollbackPhase, string>>,
): PhaseExecutions {
  return {
    async running(phase) {
      const stateMachineArn = arns[phase];
      if (stateMachineArn === undefined) return [];
      const found: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await client.send(
          new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING', nextToken }),
        );
        for (const execution of page.executions ?? [])
          if (execution.executionArn !== undefined) found.push(execution.executionArn);
        nextToken = page.nextToken;
      } while (nextToken !== undefined);
      return found;
    },
    async stop(executionArn, cause) {
      try {
        await client.send(
          new StopExecutionCommand({ executionArn, error: 'RunStopped', cause: cause.slice(0, 32_768) }),
        );
      } catch (error) {
        if (!(error instanceof ExecutionDoesNotExist)) throw error;
      }
    },
  };
}
