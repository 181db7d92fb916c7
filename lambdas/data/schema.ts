import { z } from 'zod';
import { execution } from '../foundation/schema.ts';

export const runId = z.string().regex(/^data-[0-9TZ]+-[0-9a-f]+$/);
const rollbackRunId = z.string().regex(/^rollback-[0-9TZ]+-[0-9a-f]+$/);
const table = z.string().min(1).max(64);
const mode = z.enum(['tenant', 'global']);
/**
 * Key values travel through state as JSON: numbers (within 2^53), strings (BIGINT beyond 2^53 as its digits,
 * DECIMAL, dates, text).
 */
const keyTuple = z.array(z.union([z.string(), z.number()])).min(1);
export const Chunk = z.object({ n: z.int().min(0), after: keyTuple.nullable(), upTo: keyTuple.nullable() });
export type Chunk = z.output<typeof Chunk>;
const undoneBefore = z.int().min(0).optional();
const truncatedBefore = z.array(z.string()).optional();
/** What a Catch puts at `$.error`. */
export const caught = z.object({ Error: z.string(), Cause: z.string().optional() }).optional();

/**
 * A Distributed Map's run failed (data's copy, sync's reconciliation): the step that ends with the error of the child
 * that failed, for the phase's own run ids.
 */
export function explainCopyFailure<R extends z.ZodString>(runIdOf: R) {
  return z.object({
    step: z.literal('explain-copy-failure'),
    runId: runIdOf,
    execution,
    table,
    results: z.object({ bucket: z.string().min(1), prefix: z.string() }),
    error: caught,
  });
}

/**
 * Every step names the execution it works for (`$$.Execution.Id`): a task works only while that execution holds
 * the run lock for its run.
 */
export const DataInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution }),
  z.object({ step: z.literal('plan-chunks'), runId, execution, table, mode }),
  z.object({ step: z.literal('copy-chunk'), runId, execution, table, mode, chunk: Chunk }),
  /** The chunk Copy Chunk just copied, compared on both sides. */
  z.object({ step: z.literal('validate-chunk'), runId, execution, table, mode, chunk: Chunk }),
  z.object({
    step: z.literal('build-indexes'),
    runId,
    execution,
    table,
    /** Only the indexes later levels look rows up by; the rest at the end. */
    for: z.literal('lookups').optional(),
  }),
  /** The copy's map run failed: ends with the error that stopped it (a child's own, the run's stop). */
  explainCopyFailure(runId),
  z.object({ step: z.literal('validate-table'), runId, execution, table, mode }),
  z.object({ step: z.literal('verify-isolation'), runId, execution, table }),
  z.object({ step: z.literal('finish'), runId, execution }),
  /** The run stopped on an error that may pass: left resumable, nothing undone. */
  z.object({ step: z.literal('interrupt'), runId: runId.nullable(), execution, error: caught }),
  /** The phase's own Catch: undo the phase's copies; `runId` null when the start failed (nothing to undo). */
  z.object({
    step: z.literal('rollback'),
    runId: runId.nullable(),
    execution,
    error: caught,
    /** Rows the steps before this one deleted (a rollback works in bounded steps). */
    undoneBefore,
    /** Tables the steps before this one truncated. */
    truncatedBefore,
  }),
  /** The rollback state machine, holding the lock as `rollbackRunId`: undo every data run not rolled back. */
  z.object({ step: z.literal('rollback-phase'), rollbackRunId, execution, undoneBefore, truncatedBefore }),
]);
export type DataInput = z.output<typeof DataInput>;

export interface PlannedTable {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
  /** A later level's reference rule looks rows up in this table: its indexes are built before that level. */
  readonly referenced: boolean;
}
