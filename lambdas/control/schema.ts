import { z } from 'zod';
import { tenantBid } from '../core/config/schema.ts';
import { execution } from '../foundation/schema.ts';
import { ROLLBACK_PHASES } from '../registry.ts';

// A go-live run is the application rollback's to take back (every tenant), so its id travels with the runs.
const runId = z.string().regex(/^(foundation|data|application|integration|golive)-[0-9TZ]+-[0-9a-f]+$/);

/**
 * What starts the rollback state machine: `phase` when an operator names it; otherwise the phase in flight or
 * failed half-way is found. `alarm` names the alarm that started it (the EventBridge rule, `alarm raise`).
 */
export const RollbackRequest = z.strictObject({
  phase: z.enum(ROLLBACK_PHASES).optional(),
  /** One tenant of the application phase back to legacy (`rollback --tenant acme`). */
  tenant: tenantBid.optional(),
  alarm: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\p{Cc}]+$/u, { error: 'an alarm name has no control characters' })
    .optional(),
});
export type RollbackRequest = z.output<typeof RollbackRequest>;

export const ControlInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('stop'), request: RollbackRequest, execution: execution.optional() }),
  z.object({ step: z.literal('in-flight'), runs: z.array(runId).max(100) }),
  z.object({
    step: z.literal('lock'),
    phase: z.enum(ROLLBACK_PHASES),
    runs: z.array(runId).max(100),
    /** What was asked (kept on the rollback run: a rollback that dies is finished as asked). */
    scope: z.enum(['runs', 'phase', 'tenant']).optional(),
    tenant: tenantBid.nullable().optional(),
    execution,
  }),
]);
export type ControlInput = z.output<typeof ControlInput>;
