import { runGoLive } from './run.ts';
import { GoLiveInput } from './schema.ts';

/** The golive phase's tasks: one input schema (a union on `step`) and one dispatch. */
export const task = { name: 'golive', input: GoLiveInput, run: runGoLive };
