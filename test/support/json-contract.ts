import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { contractOf } from '../../local/cli/json-contract.ts';

const dir = join(import.meta.dirname, '..', '..', 'schema', 'cli');
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats.default(ajv);
/** The schema files as published (schema/cli/), compiled by a validator of their own, not by the code that made them. */
const validators = new Map(
  readdirSync(dir)
    .filter((f) => f.endsWith('.schema.json'))
    .map((f) => [f.replace('.schema.json', ''), ajv.compile(JSON.parse(readFileSync(join(dir, f), 'utf8')))]),
);

/** A time without a zone anywhere in the output (the ledger's own form) breaks the contract. */
function zonelessTimes(value: unknown, path = '$'): string[] {
  if (typeof value === 'string')
    return /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(\.\d+)?$/.test(value) ? [`${path}: ${value}`] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => zonelessTimes(v, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) => zonelessTimes(v, `${path}.${k}`));
  return [];
}

/**
 * Checks one printed --json object against schema/cli/: the envelope's schema, and its command's where it has one.
 * Returns what is wrong (empty when it holds).
 */
export function contractErrors(output: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const check = (name: string) => {
    const validate = validators.get(name);
    if (validate === undefined) return errors.push(`no schema/cli/${name}.schema.json`);
    if (!validate(output))
      errors.push(
        ...(validate.errors ?? []).map(
          (e) => `${name}: ${e.instancePath || '$'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
        ),
      );
    return 0;
  };
  check('envelope');
  const command = contractOf(output);
  if (command !== null) check(command.replace(' ', '-'));
  errors.push(...zonelessTimes(output).map((t) => `a time without its zone at ${t}`));
  return errors;
}
