import { runFoundation } from './foundation.ts';
import { FoundationInput } from './schema.ts';

/**
 * The foundation phase's tasks: one input schema (a union on `step`) and one dispatch. Each function of the registry runs
 * the steps its entry names (`lambdas/foundation/handler.ts` on Lambda; the local runtime serves the same task).
 */
export const task = { name: 'foundation', input: FoundationInput, run: runFoundation };
