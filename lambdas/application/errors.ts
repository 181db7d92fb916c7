/** The application phase cannot start: what the switch needs is not there (the routing state, a data run). */
export class ApplicationNotReady extends Error {
  override name = 'ApplicationNotReady';
}

/** A gate is closed (an alarm, sync lag, validation, a probe): the wave stops, or is rolled back in its bake. */
export class GateClosed extends Error {
  override name = 'GateClosed';
}

/** A switch or a route back found no sync pass that drained the tenants after their writes were paused. */
export class NotDrained extends Error {
  override name = 'NotDrained';
}

/** A rollback to legacy after cleanup-legacy dropped its tables: refused before anything is paused. */
export class LegacyDropped extends Error {
  override name = 'LegacyDropped';
}
