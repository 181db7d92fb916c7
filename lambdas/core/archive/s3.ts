import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type ArchiveStore, assertArchiveKey } from './port.ts';

export interface S3ArchiveOptions {
  /** The SDK client, created once per container by the caller. */
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/`; '' for the bucket's root. */
  readonly prefix: string;
  /**
   * Part size for streamed uploads (multipart beyond one part).
   * @default 8 MiB
   */
  readonly partSize?: number;
}

/**
 * The archive in S3. Whole bodies go up with one PutObject; streams with a multipart upload that holds one
 * part in memory at a time (lib-storage `Upload`), so archiving a large table never buffers it. Encryption,
 * versioning and lifecycle are the bucket's (the stack sets them).
 */
export function createS3Archive(options: S3ArchiveOptions): ArchiveStore {
  const { client, bucket } = options;
  const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
  const keyOf = (key: string) =>
    prefix === '' ? assertArchiveKey(key) : `${prefix}/${assertArchiveKey(key)}`;
  return {
    location: `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`,
    address: (key) => ({ bucket, key: keyOf(key) }),
    keyAt(address) {
      if (address.bucket !== bucket) return undefined;
      if (prefix === '') return address.key;
      return address.key.startsWith(`${prefix}/`) ? address.key.slice(prefix.length + 1) : undefined;
    },
    async put(key, body, put = {}) {
      const target = {
        Bucket: bucket,
        Key: keyOf(key),
        ...(put.contentType === undefined ? {} : { ContentType: put.contentType }),
        ...(put.retainUntil === undefined
          ? {}
          : { ObjectLockMode: 'COMPLIANCE' as const, ObjectLockRetainUntilDate: put.retainUntil }),
      };
      if (body instanceof Readable) {
        await new Upload({
          client,
          params: { ...target, Body: body },
          partSize: options.partSize ?? 8 * 1024 * 1024,
          queueSize: 1,
        }).done();
        return;
      }
      await client.send(new PutObjectCommand({ ...target, Body: body }));
    },
    async get(key) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(key) }));
        if (out.Body === undefined) return Buffer.alloc(0);
        return Buffer.from(await out.Body.transformToByteArray());
      } catch (error) {
        if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
        throw error;
      }
    },
    async list(listPrefix) {
      const keys: string[] = [];
      const full = prefix === '' ? listPrefix : `${prefix}/${listPrefix}`;
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: full,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined)
            keys.push(prefix === '' ? object.Key : object.Key.slice(prefix.length + 1));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return keys.sort();
    },
  };
}
