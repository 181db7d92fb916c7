/** A part of the archive changed while it was read (the legacy database is still written): archived again. */
export class ArchiveChanged extends Error {
  override name = 'ArchiveChanged';
}

/** The archive is not whole: parts not archived, a plan or manifest missing. */
export class ArchiveIncomplete extends Error {
  override name = 'ArchiveIncomplete';
}

/** The run is stopping: the part in progress ends without being recorded. */
export class ArchiveStopped extends Error {
  override name = 'ArchiveStopped';
}

/** An archive object's bytes are not those its manifest records (SHA-256): it was altered or damaged. */
export class ArchiveTampered extends Error {
  override name = 'ArchiveTampered';
}

/** A restored table's checksum differs from the one taken on the source at archive time. */
export class RestoreMismatch extends Error {
  override name = 'RestoreMismatch';
}

/** Go-live cannot start or go on: a tenant not switched, rows quarantined or in conflict, a chunk that differs. */
export class GoLiveRefused extends Error {
  override name = 'GoLiveRefused';
}

/** A health check failed: go-live rolls back. */
export class HealthCheckFailed extends Error {
  override name = 'HealthCheckFailed';
}
