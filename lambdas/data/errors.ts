/** Foundation has not made the target tables this run would copy into. */
export class DataNotReady extends Error {
  override name = 'DataNotReady';
}

/** A chunk's rows differ between source and target after one re-copy. */
export class ChunkChecksumMismatch extends Error {
  override name = 'ChunkChecksumMismatch';
}

/** Rows no tenant rule maps, in a table whose onUnmapped is `fail`. */
export class UnmappedRows extends Error {
  override name = 'UnmappedRows';
}

/** A row's tenant_bid is unknown, or not what the rules give, or not its parent's. */
export class TenantIsolationViolation extends Error {
  override name = 'TenantIsolationViolation';
}

/** The chunk stopped because its execution wants no new work (a sibling failed, or the run was stopped). */
export class ChunkCancelled extends Error {
  override name = 'ChunkCancelled';
}

/** A key that cannot travel through state as JSON (binary columns). */
export class UnsupportedKey extends Error {
  override name = 'UnsupportedKey';
}
