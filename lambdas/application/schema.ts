import { z } from 'zod';
import { tenantBid } from '../core/config/schema.ts';
import { caught } from '../data/schema.ts';
import { execution } from '../foundation/schema.ts';

const runId = z.string().regex(/^application-[0-9TZ]+-[0-9a-f]+$/);
const anyRunId = z.string().regex(/^(application|golive|rollback)-[0-9TZ]+-[0-9a-f]+$/);
/** A run whose own Catch routes its tenants back: an application run (its wave in flight), or go-live (every tenant). */
const ownRunId = z.string().regex(/^(application|golive)-[0-9TZ]+-[0-9a-f]+$/);
const rollbackRunId = z.string().regex(/^rollback-[0-9TZ]+-[0-9a-f]+$/);
const wave = z.object({ wave: z.int().min(1).max(1_000), tenants: z.array(tenantBid).min(1).max(1_000) });
const time = z.string().regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/);

/** Who undoes: the phase's own Catch (its run), or the rollback state machine (its rollback run, and scope). */
const scope = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('own'), runId: ownRunId, error: caught }),
  z.object({
    kind: z.enum(['runs', 'phase', 'tenant']),
    rollbackRunId,
    runs: z.array(z.string().max(64)).max(100),
    tenant: tenantBid.nullable().optional(),
  }),
]);

/** Every step names the execution it works for: a task works only while that execution holds the run lock. */
export const ApplicationInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('start'), execution }),
  z.object({ step: z.literal('gate'), runId, execution, wave }),
  z.object({ step: z.literal('pause'), runId, execution, wave }),
  z.object({ step: z.literal('switch'), runId, execution, wave, pausedAt: time }),
  z.object({
    step: z.literal('bake'),
    runId,
    execution,
    wave,
    round: z.int().min(0),
    rounds: z.int().min(1).max(10_000),
  }),
  z.object({ step: z.literal('finish'), runId, execution }),
  /** A rollback's first step: the tenants it takes back, their writes paused for the reverse drain. */
  z.object({ step: z.literal('rollback-pause'), execution, scope }),
  /** After the reverse drain: routed back to legacy, the run ended. */
  z.object({
    step: z.literal('rollback-route-back'),
    execution,
    scope,
    runId: anyRunId,
    tenants: z.array(tenantBid).max(1_000),
    pausedAt: time,
  }),
  /** The start failed, or a rollback was refused: the run (if any) ends, the lock is given up. */
  z.object({ step: z.literal('end'), runId: anyRunId.nullable(), execution, error: caught }),
]);
export type ApplicationInput = z.output<typeof ApplicationInput>;
