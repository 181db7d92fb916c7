/** Sync has nothing to follow: no data run succeeded (or it was rolled back). */
export class SyncNotReady extends Error {
  override name = 'SyncNotReady';
}

/** The source's structure moved away from the target's since the copy: a column sync cannot write. */
export class SourceSchemaChanged extends Error {
  override name = 'SourceSchemaChanged';
}

/** A row's tenant would change under the rules and `sync.onTenantChange` is `fail`. */
export class TenantChangeConflict extends Error {
  override name = 'TenantChangeConflict';
}
