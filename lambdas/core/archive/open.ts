import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { ArchiveUnavailable, InputError } from '../errors.ts';
import { createFolderArchive } from './folder.ts';
import type { ArchiveStore } from './port.ts';
import { createS3Archive } from './s3.ts';

let s3: S3Client | undefined;

const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;

/**
 * Opens the archive an `archive.url` names: `s3://bucket/prefix` (S3), a `file://` URL or a folder path.
 * The S3 client is created once per process (per Lambda container; `awsClient` wraps it: X-Ray there); its region
 * comes from the environment.
 */
export function openArchive(
  url: string,
  cwd = process.cwd(),
  awsClient: <T extends object>(client: T) => T = (client) => client,
): ArchiveStore {
  const bucket = S3_URL.exec(url);
  if (bucket !== null) {
    s3 ??= awsClient(new S3Client({}));
    return guarded(createS3Archive({ client: s3, bucket: bucket[1] ?? '', prefix: bucket[2] ?? '' }));
  }
  if (url.startsWith('file://')) return guarded(createFolderArchive(fileURLToPath(url)));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new InputError(
      `archive.url ${JSON.stringify(url)}: use s3://bucket/prefix, a file:// URL or a folder path`,
    );
  }
  return guarded(createFolderArchive(resolve(cwd, url)));
}

/**
 * The store with its failures named: an error of S3 or of the file system becomes {@link ArchiveUnavailable},
 * saying which store, what and which key, so the state machines leave the run resumable instead of undoing it. A
 * key the store refuses (a TypeError: a defect) stays what it is.
 */
export function guarded(store: ArchiveStore): ArchiveStore {
  const wrap =
    <A extends unknown[], R>(what: string, work: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await work(...args);
      } catch (error) {
        if (error instanceof TypeError || error instanceof ArchiveUnavailable) throw error;
        throw new ArchiveUnavailable(
          `the archive ${store.location} failed to ${what} ${String(args[0])}: ${(error as Error).message ?? String(error)}`,
          { cause: error },
        );
      }
    };
  return {
    ...store,
    put: wrap('write', store.put.bind(store)),
    get: wrap('read', store.get.bind(store)),
    list: wrap('list', store.list.bind(store)),
  };
}
