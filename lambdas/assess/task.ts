import { runAssess } from './assess.ts';
import { AssessInput } from './schema.ts';

/**
 * The assess phase's tasks: one input schema (a union on `step`) and one dispatch. Each function of the registry runs
 * the steps its entry names (`lambdas/assess/handler.ts` on Lambda; the local runtime serves the same task).
 */
export const task = { name: 'assess', input: AssessInput, run: runAssess };
