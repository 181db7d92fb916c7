import { DescribeSecretCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretRefConfig } from '../core/config/schema.ts';

/** Whether a referenced secret exists, never its value. */
export interface SecretCheck {
  /** null when it exists; otherwise why not, for an error message (never the value). */
  missing(ref: SecretRefConfig): Promise<string | null>;
}

/** How a reference is kept in the target and reports: the ARN, or `env:<NAME>`. Never a value. */
export function refText(ref: SecretRefConfig): string {
  return 'secretArn' in ref ? ref.secretArn : `env:${ref.env}`;
}

/**
 * Locally: an environment variable reference must be set (non-empty); a Secrets Manager ARN is asked with
 * DescribeSecret when a client is given (the CLI on a machine with AWS credentials), else refused as unknowable.
 */
export function secretCheck(env: NodeJS.ProcessEnv, client?: SecretsManagerClient): SecretCheck {
  return {
    async missing(ref) {
      if ('env' in ref)
        return env[ref.env] === undefined || env[ref.env] === ''
          ? `environment variable ${ref.env} is not set`
          : null;
      if (client === undefined) return `${ref.secretArn} cannot be checked here (no AWS access)`;
      try {
        const described = await client.send(new DescribeSecretCommand({ SecretId: ref.secretArn }));
        return described.DeletedDate === undefined ? null : `${ref.secretArn} is scheduled for deletion`;
      } catch (error) {
        const e = error as Error;
        return e.name === 'ResourceNotFoundException'
          ? `${ref.secretArn} does not exist`
          : `${ref.secretArn} could not be described (${e.name})`;
      }
    },
  };
}
