/** The source has tables the config does not cover: the assessment says which. */
export class MigrationNotReady extends Error {
  override name = 'MigrationNotReady';
}

/** A target table exists but is not what foundation would create. */
export class SchemaDrift extends Error {
  override name = 'SchemaDrift';
}

/** A rollback would drop a table that holds rows a later phase copied. */
export class TableHoldsData extends Error {
  override name = 'TableHoldsData';
}

/** Verification found an object foundation should have made missing. */
export class FoundationIncomplete extends Error {
  override name = 'FoundationIncomplete';
}
