import { GetObjectCommand, type GetObjectCommandOutput, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { lambdaDeps } from '../../lambdas/core/deps.ts';
import { demoConfig } from '../../local/demo/config.ts';

const s3 = mockClient(S3Client);
const cluster = 'arn:aws:rds:eu-west-1:123456789012:cluster:saas';
const secret = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:saas-AbCdEf';
const body = (value: unknown) =>
  ({
    transformToByteArray: async () => new Uint8Array(Buffer.from(JSON.stringify(value))),
  }) as unknown as NonNullable<GetObjectCommandOutput['Body']>;
/** A stored config version: no archive (the stack's bucket, from the environment). */
const stored = (database: string) => {
  const { archive: _archive, ...rest } = demoConfig();
  return {
    ...rest,
    source: { url: `rdsdata://${cluster}/shifu_legacy?secret=${secret}` },
    target: { url: `rdsdata://${cluster}/${database}?secret=${secret}` },
  };
};
const saved = { ...process.env };

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.SHIFU_MIGRATE_ARCHIVE = 's3://shifu-archive/migration';
  process.env.SHIFU_MIGRATE_CONFIG_KEY = 'config/00000000000000aa.json';
});
afterAll(() => {
  process.env = saved;
});
beforeEach(() => s3.reset());

describe('the config on Lambda', () => {
  it('reads the version the payload names from the archive, once per container and version', async () => {
    s3.on(GetObjectCommand, { Key: 'migration/config/1111111111111111.json' }).resolves({
      Body: body(stored('saas_one')),
    });
    s3.on(GetObjectCommand, { Key: 'migration/config/2222222222222222.json' }).resolves({
      Body: body(stored('saas_two')),
    });
    const one = await lambdaDeps('config/1111111111111111.json');
    expect(one.targetUrl.database).toBe('saas_one');
    // The archive is the stack's bucket, whatever the stored config said.
    expect(one.config.archive.url).toBe('s3://shifu-archive/migration');
    expect(await lambdaDeps('config/1111111111111111.json')).toBe(one);
    // A deployment since: the next execution names its own version, and gets it.
    const two = await lambdaDeps('config/2222222222222222.json');
    expect(two.targetUrl.database).toBe('saas_two');
    expect(s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'shifu-archive', Key: 'migration/config/1111111111111111.json' },
      { Bucket: 'shifu-archive', Key: 'migration/config/2222222222222222.json' },
    ]);
  });

  it('uses the deployed version when the payload names none', async () => {
    s3.on(GetObjectCommand, { Key: 'migration/config/00000000000000aa.json' }).resolves({
      Body: body(stored('saas_deployed')),
    });
    expect((await lambdaDeps()).targetUrl.database).toBe('saas_deployed');
  });

  it('says which version is missing, and tries again on the next call', async () => {
    s3.on(GetObjectCommand).rejectsOnce(new NoSuchKey({ message: 'no such key', $metadata: {} }));
    await expect(lambdaDeps('config/3333333333333333.json')).rejects.toThrow(
      /the config config\/3333333333333333\.json is not in s3:\/\/shifu-archive\/migration: deploy the stack again/,
    );
    s3.on(GetObjectCommand).resolves({ Body: body(stored('saas_three')) });
    expect((await lambdaDeps('config/3333333333333333.json')).targetUrl.database).toBe('saas_three');
  });

  it('refuses a version that is not a config key, and a stored config that is not valid', async () => {
    await expect(lambdaDeps('../secrets.json')).rejects.toThrow(
      /is not a key of the form config\/<16 hex>\.json/,
    );
    s3.on(GetObjectCommand).resolves({ Body: body({ ...stored('x'), tenants: 'none' }) });
    await expect(lambdaDeps('config/4444444444444444.json')).rejects.toThrow(
      /config\/4444444444444444\.json is not a valid config:[\s\S]*tenants/,
    );
  });
});
