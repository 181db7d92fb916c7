import { InvalidIdentifier } from './errors.ts';

/**
 * Every SQL identifier this project puts into a statement passes through here.
 *
 * Names come from information_schema or from the validated config, and are still checked: we accept
 * the characters MySQL allows in unquoted identifiers (ASCII letters, digits, `_`, `$`), at most 64 of
 * them and not all digits, then quote with backticks. Anything else is refused rather than escaped, so
 * a strange name is a clear error instead of a subtle one.
 */
const IDENTIFIER = /^[A-Za-z0-9_$]{1,64}$/;
const ALL_DIGITS = /^[0-9]+$/;

/** True when `name` is an identifier we are willing to quote. */
export function isSafeIdentifier(name: string): boolean {
  return IDENTIFIER.test(name) && !ALL_DIGITS.test(name);
}

/**
 * Throws {@link InvalidIdentifier} unless `name` is safe to quote.
 * @param what says where the name came from, for the error ("table", "column of user_users", ...).
 */
export function assertIdentifier(name: string, what = 'identifier'): string {
  if (!isSafeIdentifier(name)) {
    throw new InvalidIdentifier(
      `unsupported ${what} name ${JSON.stringify(name)}: use 1 to 64 characters of A-Z, a-z, 0-9, _ or $, not only digits`,
    );
  }
  return name;
}

/** Quotes one identifier: `user_users` → `` `user_users` ``. */
export function ident(name: string, what?: string): string {
  return `\`${assertIdentifier(name, what)}\``;
}

/** Quotes a schema-qualified name: `` `shifu_legacy`.`user_users` ``. */
export function qualified(schema: string, table: string): string {
  return `${ident(schema, 'database')}.${ident(table, 'table')}`;
}

/** Quotes a comma-separated column list. */
export function identList(names: readonly string[], what = 'column'): string {
  return names.map((n) => ident(n, what)).join(', ');
}
