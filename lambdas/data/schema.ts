import { z } from 'zod';
import { execution } from '../foundation/schema.ts';

export const runId = z.string().regex(/^data-[0-9TZ]+-[0-9a-f]+$/);
const table = z.string().min(1).max(64);
const mode = z.enum(['tenant', 'global']);
/** Key values travel through state as JSON: numbers (within 2^53), strings (BIGINT beyond, DECIMAL, dates, text). */
const keyTuple = z.array(z.union([z.string(), z.number()])).min(1);
export const Chunk = z.object({ n: z.int().min(0), after: keyTuple.nullable(), upTo: keyTuple.nullable() });
export type Chunk = z.output<typeof Chunk>;
const caught = z.object({ Error: z.string(), Cause: z.string().optional() }).optional();

export const DataInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution: execution.optional() }),
  z.object({ step: z.literal('plan-chunks'), runId, table, mode }),
  z.object({ step: z.literal('copy-chunk'), runId, table, mode, chunk: Chunk }),
  z.object({
    step: z.literal('build-indexes'),
    runId,
    table,
    /** Only the indexes later levels look rows up by; the rest at the end. */
    for: z.literal('lookups').optional(),
  }),
  z.object({ step: z.literal('validate-table'), runId, table, mode }),
  z.object({ step: z.literal('verify-isolation'), runId, table }),
  z.object({ step: z.literal('finish'), runId }),
  z.object({ step: z.literal('rollback'), runId: runId.nullable().optional(), error: caught }),
  z.object({ step: z.literal('rollback-phase') }),
]);
export type DataInput = z.output<typeof DataInput>;

export interface PlannedTable {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
  /** A later level's reference rule looks rows up in this table: its indexes are built before that level. */
  readonly referenced: boolean;
}
