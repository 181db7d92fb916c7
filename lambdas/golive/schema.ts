import { z } from 'zod';
import { caught, explainCopyFailure } from '../data/schema.ts';
import { execution } from '../foundation/schema.ts';

const runId = z.string().regex(/^golive-[0-9TZ]+-[0-9a-f]+$/);
const bound = z
  .array(z.union([z.string().max(1_000), z.number()]))
  .max(16)
  .nullable();
const part = z.object({ table: z.string().min(1).max(64), n: z.int().min(0), after: bound, upTo: bound });

/** Every step names the execution it works for: a task works only while that execution holds the run lock. */
export const GoLiveInput = z.discriminatedUnion('step', [
  /** Before the lock: the tenants the application phase must switch first. */
  z.object({ step: z.literal('remaining'), execution }),
  z.object({ step: z.literal('start'), execution }),
  /** After the final nested sync pass: it succeeded. */
  z.object({ step: z.literal('check-drained'), runId, execution }),
  z.object({ step: z.literal('verify'), runId, execution, round: z.int().min(0).max(100) }),
  z.object({ step: z.literal('health'), runId, execution }),
  z.object({ step: z.literal('plan-archive'), runId, execution }),
  z.object({ step: z.literal('plan-table'), runId, execution, table: z.string().min(1).max(64) }),
  /** A table's Distributed Map failed: ends with the failed child's own error. */
  explainCopyFailure(runId),
  /** An error that may pass: the run is left interrupted, resumable. */
  z.object({ step: z.literal('interrupt'), runId, execution, error: caught }),
  /** A Distributed Map child: its batch of parts (BatchInput and Items, as ItemBatcher makes them). */
  z.object({
    step: z.literal('archive-parts'),
    BatchInput: z.object({ runId, execution }),
    Items: z.array(part).min(1).max(1_000),
  }),
  z.object({ step: z.literal('finish-archive'), runId, execution }),
  z.object({ step: z.literal('end-sync'), runId, execution }),
  z.object({ step: z.literal('report'), runId, execution }),
  /** The run succeeds; `schedule` is what End Sync did to the sync schedule, said again in the output. */
  z.object({ step: z.literal('finish'), runId, execution, schedule: z.string().max(1_000) }),
  /** After a failed go-live went back to legacy: the sync schedule runs again. */
  z.object({ step: z.literal('resume-sync'), execution }),
]);
export type GoLiveInput = z.output<typeof GoLiveInput>;
