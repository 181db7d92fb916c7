import { z } from 'zod';

const runId = z.string().regex(/^foundation-[0-9TZ]+-[0-9a-f]+$/);
const table = z.string().min(1).max(64);
const mode = z.enum(['tenant', 'global']);
/** The execution the run belongs to (`$$.Execution.Id`): the rollback finds and stops it by this. */
export const execution = z.string().min(1).max(255);
/** What a Catch puts at `$.error`. */
const caught = z.object({ Error: z.string(), Cause: z.string().optional() }).optional();

export const FoundationInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution: execution.optional() }),
  z.object({ step: z.literal('tenants'), runId }),
  z.object({ step: z.literal('table'), runId, table, mode }),
  z.object({ step: z.literal('verify'), runId }),
  z.object({ step: z.literal('rollback'), runId: runId.nullable().optional(), error: caught }),
  z.object({ step: z.literal('rollback-phase') }),
]);
export type FoundationInput = z.output<typeof FoundationInput>;

export interface PlannedTable {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
}
