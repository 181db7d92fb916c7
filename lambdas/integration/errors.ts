/** A secret the config references does not exist (or cannot be checked): the phase fails and rolls back. */
export class SecretMissing extends Error {
  override name = 'SecretMissing';
}

/** The integration tables are not on the target: foundation makes them. */
export class IntegrationNotReady extends Error {
  override name = 'IntegrationNotReady';
}

/** The end-of-phase validation found a tenant without its providers or its one active subscription. */
export class IntegrationInvalid extends Error {
  override name = 'IntegrationInvalid';
}

/** The legacy login settings the config names are not in the legacy table. */
export class LegacyLoginMissing extends Error {
  override name = 'LegacyLoginMissing';
}
