import { runData } from './data.ts';
import { DataInput } from './schema.ts';

/**
 * The data phase's tasks: one input schema (a union on `step`) and one dispatch. Each function of the registry runs
 * the steps its entry names (`lambdas/data/handler.ts` on Lambda; the local runtime serves the same task).
 */
export const task = { name: 'data', input: DataInput, run: runData };
