import { z } from 'zod';

const runId = z.string().regex(/^foundation-[0-9TZ]+-[0-9a-f]+$/);
const rollbackRunId = z.string().regex(/^rollback-[0-9TZ]+-[0-9a-f]+$/);
const table = z.string().min(1).max(64);
const mode = z.enum(['tenant', 'global']);
/**
 * The execution a step works for (`$$.Execution.Id`): it holds the run lock while it works, the rollback finds
 * and stops it by this, and a task of an execution whose lock was taken over starts no work.
 */
export const execution = z.string().min(1).max(255);
/** What a Catch puts at `$.error`. */
const caught = z.object({ Error: z.string(), Cause: z.string().optional() }).optional();

export const FoundationInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution }),
  z.object({ step: z.literal('tenants'), runId, execution }),
  z.object({ step: z.literal('table'), runId, execution, table, mode }),
  z.object({ step: z.literal('verify'), runId, execution }),
  /** The phase's own Catch; `runId` null when the start failed (it closed its run itself). */
  z.object({ step: z.literal('rollback'), runId: runId.nullable(), execution, error: caught }),
  /** The rollback state machine (holding the lock as `rollbackRunId`): the runs it found unfinished. */
  z.object({
    step: z.literal('rollback-runs'),
    runs: z.array(runId).min(1).max(100),
    rollbackRunId,
    execution,
  }),
  /** The rollback state machine, for `rollback --phase foundation`: every foundation object not rolled back. */
  z.object({ step: z.literal('rollback-phase'), rollbackRunId, execution }),
]);
export type FoundationInput = z.output<typeof FoundationInput>;

export interface PlannedTable {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
}
