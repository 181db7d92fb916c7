import { runIntegration } from './run.ts';
import { IntegrationInput } from './schema.ts';

/** The integration phase's tasks: one input schema (a union on `step`) and one dispatch. */
export const task = { name: 'integration', input: IntegrationInput, run: runIntegration };
