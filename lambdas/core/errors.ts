/**
 * Errors that callers (the CLI, the state machines' Retry/Catch) must tell apart.
 * The literal `name` of each class is part of the API: Step Functions matches on it.
 */

/** Bad input from a person: a config field, a CLI argument, an event payload. The CLI exits with code 2. */
export class InputError extends Error {
  override name = 'InputError';
  /** One line per problem, each naming the field and the fix. */
  readonly problems: readonly string[];

  constructor(summary: string, problems: readonly string[] = [], options?: ErrorOptions) {
    super(
      problems.length > 0 ? `${summary}\n${problems.map((p) => `  - ${p}`).join('\n')}` : summary,
      options,
    );
    this.problems = problems;
  }
}

/** A SQL identifier (schema, table, column, index name) that is not safe to quote. */
export class InvalidIdentifier extends InputError {
  override name = 'InvalidIdentifier';
}

/** A database URL that cannot be used. */
export class InvalidDatabaseUrl extends InputError {
  override name = 'InvalidDatabaseUrl';
}

/**
 * The database answered, but the statement failed: syntax, constraint, missing table.
 * Not retried: running it again gives the same answer.
 */
export class DatabaseError extends Error {
  override name = 'DatabaseError';
  /** Server error code (e.g. `ER_DUP_ENTRY`) when the driver reports one. */
  readonly code: string | undefined;

  constructor(message: string, code?: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A failure that may pass: connection reset, deadlock, lock wait timeout, the Data API throttling
 * or resuming a paused cluster. State machines retry this name with backoff.
 */
export class TransientDatabaseError extends DatabaseError {
  override name = 'TransientDatabaseError';
}

/**
 * A result set larger than the adapter can return in one response (the Data API's 1 MiB limit).
 * Paged readers catch it and halve their page.
 */
export class ResponseTooLarge extends DatabaseError {
  override name = 'ResponseTooLarge';
}

/**
 * One row of the result is larger than the adapter can return (the Data API's 64 KB per row): smaller pages do not
 * help; the reader fetches that row's values in slices.
 */
export class RowTooLarge extends ResponseTooLarge {
  override name = 'RowTooLarge';
}

/**
 * A statement ran longer than the adapter waits for one (the Data API's 45 s). Work that may take longer is split
 * (per chunk range) so that this means a defect, not a slow day.
 */
export class StatementTimedOut extends DatabaseError {
  override name = 'StatementTimedOut';
}

/**
 * A DDL statement outlived the call but goes on running on the server (`continueAfterTimeout`): the caller waits
 * for it to end and checks its effect.
 */
export class StatementStillRunning extends StatementTimedOut {
  override name = 'StatementStillRunning';
}

/**
 * The archive store (S3, or its folder locally) failed a read, a write or a listing: a store that is not there or
 * not writable, throttling, the network. It may pass: a run that meets it is left resumable, never undone.
 */
export class ArchiveUnavailable extends Error {
  override name = 'ArchiveUnavailable';
}

/** The server refused the login (user, password, grants): a config problem, exit code 2. */
export class DatabaseAccessDenied extends InputError {
  override name = 'DatabaseAccessDenied';

  constructor(message: string, options?: ErrorOptions) {
    super(message, [], options);
  }
}

/** Nothing answers at the database's address. */
export class DatabaseUnreachable extends Error {
  override name = 'DatabaseUnreachable';
  readonly url: string;

  /** `label`: which database this is (`source`, `target`), so the message names the config field to check. */
  constructor(url: string, options?: ErrorOptions & { label?: string | undefined }) {
    super(
      options?.label === undefined
        ? `no database answers at ${url}`
        : `no database answers at the ${options.label} database's address ${url}: is the server up, and is ${options.label}.url (or ${options.label.toUpperCase()}_DATABASE_URL) right?`,
      options,
    );
    this.url = url;
  }
}
