import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createS3Archive } from '../../lambdas/core/archive/s3.ts';

const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
const archive = createS3Archive({
  client,
  bucket: 'shifu-archive',
  prefix: 'prod/',
  partSize: 5 * 1024 * 1024,
});

beforeEach(() => s3.reset());

describe('S3 archive store', () => {
  it('puts a whole body with one PutObject under the prefix', async () => {
    s3.on(PutObjectCommand).resolves({});
    await archive.put('reports/assess/run-1/report.json', '{"ready":true}', {
      contentType: 'application/json',
    });
    expect(s3.commandCalls(PutObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'shifu-archive',
      Key: 'prod/reports/assess/run-1/report.json',
      ContentType: 'application/json',
      Body: '{"ready":true}',
    });
    expect(archive.location).toBe('s3://shifu-archive/prod');
  });

  it('writes an object under Object Lock in compliance mode when a retention is given (whole and streamed)', async () => {
    s3.on(PutObjectCommand).resolves({});
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-2' });
    s3.on(UploadPartCommand).resolves({ ETag: '"e"' });
    s3.on(CompleteMultipartUploadCommand).resolves({});
    const until = new Date('2027-01-01T00:00:00.000Z');
    await archive.put('legacy-archive/golive-1/manifest.json', '{}', {
      contentType: 'application/json',
      retainUntil: until,
    });
    expect(s3.commandCalls(PutObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'shifu-archive',
      Key: 'prod/legacy-archive/golive-1/manifest.json',
      ContentType: 'application/json',
      ObjectLockMode: 'COMPLIANCE',
      ObjectLockRetainUntilDate: until,
      Body: '{}',
    });
    await archive.put('legacy-archive/golive-1/t/part-00001.jsonl.gz', Readable.from([Buffer.alloc(10)]), {
      retainUntil: until,
    });
    // A small stream goes up as one PutObject, a large one as a multipart upload: the lock travels either way.
    const locked = [
      ...s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input),
      ...s3.commandCalls(CreateMultipartUploadCommand).map((c) => c.args[0].input),
    ].filter((input) => input.Key === 'prod/legacy-archive/golive-1/t/part-00001.jsonl.gz');
    expect(locked).toHaveLength(1);
    expect(locked[0]).toMatchObject({ ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: until });
  });

  it('streams a large body as a multipart upload, one part at a time', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' });
    s3.on(UploadPartCommand).callsFake(async (input: { PartNumber?: number }) => ({
      ETag: `"etag-${input.PartNumber}"`,
    }));
    s3.on(CompleteMultipartUploadCommand).resolves({});
    const eleven = Buffer.alloc(11 * 1024 * 1024, 7);
    await archive.put(
      'legacy/order_orders/part-0001.jsonl',
      Readable.from([eleven.subarray(0, 6_000_000), eleven.subarray(6_000_000)]),
    );
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
      Bucket: 'shifu-archive',
      Key: 'prod/legacy/order_orders/part-0001.jsonl',
    });
    const parts = s3.commandCalls(UploadPartCommand).map((c) => c.args[0].input);
    expect(parts.map((p) => p.PartNumber)).toEqual([1, 2, 3]);
    expect(parts.every((p) => p.UploadId === 'upload-1')).toBe(true);
    expect(s3.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input.MultipartUpload?.Parts).toEqual([
      { ETag: '"etag-1"', PartNumber: 1 },
      { ETag: '"etag-2"', PartNumber: 2 },
      { ETag: '"etag-3"', PartNumber: 3 },
    ]);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('reads an object back, and a missing key as undefined', async () => {
    // The SDK's body stream, as far as the adapter uses it.
    const body = {
      transformToByteArray: async () => new Uint8Array(Buffer.from('{"a":1}')),
    } as unknown as NonNullable<GetObjectCommandOutput['Body']>;
    s3.on(GetObjectCommand, { Key: 'prod/a.json' }).resolves({ Body: body });
    s3.on(GetObjectCommand, { Key: 'prod/missing.json' }).rejects(
      new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }),
    );
    expect((await archive.get('a.json'))?.toString()).toBe('{"a":1}');
    expect(await archive.get('missing.json')).toBeUndefined();
  });

  it('lists every page of keys under a prefix, without the store prefix, sorted', async () => {
    s3.on(ListObjectsV2Command)
      .resolvesOnce({
        Contents: [{ Key: 'prod/runs/r2/x.json' }, { Key: 'prod/runs/r1/x.json' }],
        IsTruncated: true,
        NextContinuationToken: 't-2',
      })
      .resolvesOnce({ Contents: [{ Key: 'prod/runs/r3/x.json' }], IsTruncated: false });
    expect(await archive.list('runs/')).toEqual(['runs/r1/x.json', 'runs/r2/x.json', 'runs/r3/x.json']);
    expect(s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'shifu-archive', Prefix: 'prod/runs/' },
      { Bucket: 'shifu-archive', Prefix: 'prod/runs/', ContinuationToken: 't-2' },
    ]);
  });

  it('refuses a key that would climb out of its prefix', async () => {
    await expect(archive.put('../other-tenant/secrets.json', 'x')).rejects.toThrow(/unsafe archive key/);
    expect(s3.calls()).toHaveLength(0);
  });
});
