import { runApplication } from './run.ts';
import { ApplicationInput } from './schema.ts';

/** The application phase's tasks: one input schema (a union on `step`) and one dispatch. */
export const task = { name: 'application', input: ApplicationInput, run: runApplication };
