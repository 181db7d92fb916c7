import { z } from 'zod';
import { caught } from '../data/schema.ts';
import { execution } from '../foundation/schema.ts';

const runId = z.string().regex(/^integration-[0-9TZ]+-[0-9a-f]+$/);

/** Every step names the execution it works for: a task works only while that execution holds the run lock. */
export const IntegrationInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution }),
  /** Plans, subscriptions, then each tenant's providers (secret references checked, values never read). */
  z.object({ step: z.literal('apply'), runId, execution }),
  /** Every tenant's providers and one active subscription; the report to the archive. */
  z.object({ step: z.literal('validate'), runId, execution }),
  z.object({ step: z.literal('finish'), runId, execution }),
  /** The phase's own Catch: the rows this run wrote are deleted. `runId` null when the start failed. */
  z.object({ step: z.literal('rollback'), runId: runId.nullable(), execution, error: caught }),
  /** The rollback state machine (`rollback --phase integration`), holding the lock as `rollbackRunId`. */
  z.object({
    step: z.literal('rollback-phase'),
    rollbackRunId: z.string().regex(/^rollback-[0-9TZ]+-[0-9a-f]+$/),
    execution,
  }),
]);
export type IntegrationInput = z.output<typeof IntegrationInput>;
