import { z } from 'zod';
import { Chunk, caught, explainCopyFailure } from '../data/schema.ts';
import { execution } from '../foundation/schema.ts';

export const runId = z.string().regex(/^sync-[0-9TZ]+-[0-9a-f]+$/);
const table = z.string().min(1).max(64);
const mode = z.enum(['tenant', 'global']);

/** Every step names the execution it works for: a task works only while that execution holds the run lock. */
export const SyncInput = z.discriminatedUnion('step', [
  z.object({
    step: z.literal('start'),
    execution,
    /** The execution's input: a scheduled pass gives none of these. */
    options: z
      .looseObject({
        /** Reconcile every chunk, not this pass's slice (a drain before a switch, or a rollback). */
        full: z.boolean().optional(),
        /** The run this pass works for (application): it holds the lock and hands it over. */
        under: z
          .object({ runId: z.string().min(1).max(64), execution })
          .nullable()
          .optional(),
      })
      .default({}),
  }),
  /** Rows changed since the table's watermark (minus the overlap), compared and repaired. */
  z.object({ step: z.literal('catch-up'), runId, execution, table, mode }),
  /** The chunks this pass reconciles (the table's slice), published for the Distributed Map. */
  z.object({ step: z.literal('plan-chunks'), runId, execution, table }),
  /** One chunk's checksums compared, and its differing rows repaired in one transaction. */
  z.object({ step: z.literal('reconcile-chunk'), runId, execution, table, mode, chunk: Chunk }),
  z.object({ step: z.literal('finish'), runId, execution }),
  /** The reconciliation's map run failed: ends with the error of the child that failed. */
  explainCopyFailure(runId),
  /** The pass stopped on an error that may pass: left resumable. */
  z.object({ step: z.literal('interrupt'), runId: runId.nullable(), execution, error: caught }),
  /** The pass failed: nothing to undo (each repair was its own transaction); the next pass starts afresh. */
  z.object({ step: z.literal('fail'), runId: runId.nullable(), execution, error: caught }),
]);
export type SyncInput = z.output<typeof SyncInput>;

/** A table's totals for one pass, as the ledger (migration_sync_passes) keeps them. */
export interface TablePass {
  readonly table: string;
  readonly changeColumn: string | null;
  readonly rowsLookedAt: number;
  readonly rowsApplied: number;
  readonly rowsDeleted: number;
  readonly rowsQuarantined: number;
  /** Rows whose parent had not reached the target yet: left for the next pass. */
  readonly rowsWaiting: number;
  readonly conflicts: number;
  readonly chunksChecked: number;
  readonly chunksRepaired: number;
  readonly chunksChanging: number;
  /** Seconds from the oldest change the pass may not have applied to the end of its catch-up; null: unknown. */
  readonly lagSeconds: number | null;
  readonly pendingRows: number | null;
  /** Reverse sync (switched tenants' rows, target → legacy): legacy rows written and deleted, and its lag. */
  readonly reverseApplied: number;
  readonly reverseDeleted: number;
  readonly reverseLagSeconds: number | null;
}
